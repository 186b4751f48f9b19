"""``cloudfree stack SAFE_DIR --out S2.tif``: a .SAFE product's bands as one 10 m GeoTIFF."""

from __future__ import annotations

import argparse

from cloudfree.argtypes import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``stack`` subcommand to a subparsers action."""
    from cloudfree.data.sentinel.safe import RESAMPLINGS

    p = sub.add_parser(
        "stack",
        help="stack a Sentinel-2 .SAFE product's band files into one 10 m GeoTIFF for predict",
        description=(
            "Read the per-band JPEG 2000 files of an unzipped Sentinel-2 .SAFE product, resample "
            "the 20 m and 60 m bands onto the 10 m grid of B02 and write one tiled, compressed "
            "uint16 GeoTIFF in SEN12MS-CR band order (L1C: 13 bands B1..B12 with B8A; L2A: 12, "
            "no B10), nodata 0, window by window. The radiometric offset of processing baseline "
            "04.00+ is removed so that DN = reflectance x 10000 (--no-harmonize keeps raw DN)."
        ),
    )
    p.add_argument("safe_dir", help="unzipped .SAFE folder (L1C, or L2A with a warning)")
    p.add_argument("--out", required=True, help="GeoTIFF to write")
    p.add_argument(
        "--resampling",
        choices=RESAMPLINGS,
        default="bilinear",
        help="resampling of the 20 m and 60 m bands (default bilinear)",
    )
    p.add_argument(
        "--window",
        type=positive_int,
        default=1024,
        help="block side in pixels read at once (default 1024)",
    )
    p.add_argument(
        "--granule", default=None, help="granule folder name, for old multi-granule products"
    )
    p.add_argument(
        "--no-harmonize",
        dest="harmonize",
        action="store_false",
        help="keep the raw DN (do not add the baseline 04.00+ radiometric offset)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``cloudfree stack``; returns 0 (bad input raises DataError)."""
    from cloudfree.data.sentinel.safe import stack_safe

    s = stack_safe(
        args.safe_dir,
        args.out,
        resampling=args.resampling,
        window=args.window,
        granule=args.granule,
        harmonize=args.harmonize,
        progress=not args.quiet,
    )
    offsets = ", ".join(f"{b} {v:+g}" for b, v in s["offsets"].items()) or "none"
    print(
        f"{s['level']} {s['granule']}: {len(s['bands'])} bands, {s['height']}x{s['width']} px, "
        f"{s['crs']}, {s['resampling']} resampling, offsets applied: {offsets}; "
        f"wrote {s['out']} in {s['seconds']:.1f} s"
    )
    return 0
