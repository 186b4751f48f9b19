"""``cloudfree mask``: the cloud/shadow mask of a GeoTIFF scene, and the mask flags every
whole-scene command shares.

Only light imports at module level: ``cloudfree --help`` builds every parser."""

from __future__ import annotations

import argparse

from cloudfree.argtypes import positive_int

#: ``--mask-backend`` choices (:data:`cloudfree.masks.backends.MASK_BACKENDS`, kept light here).
MASK_BACKEND_CHOICES = ("auto", "ukis", "dsen2cr", "s2cloudless")


def add_mask_flags(p: argparse.ArgumentParser, dilate_default: str = "the masker's") -> None:
    """``--mask-backend`` and ``--dilate``, as ``mask``, ``predict`` and ``inpaint`` take them."""
    p.add_argument(
        "--mask-backend",
        choices=MASK_BACKEND_CHOICES,
        default="auto",
        help="the cloud/shadow masker: ukis (ukis-csmask's CNN at 10 m and 30 m: clouds and "
        "shadows, L1C and L2A; extra 'masks'), dsen2cr (the DSen2-CR paper's heuristic, as "
        "training and the paper's evaluation use it; flags clear ground as shadow on many "
        "real scenes), s2cloudless (clouds only, L1C; extra 'masks'); auto (default): ukis "
        "where installed, else dsen2cr with a note",
    )
    p.add_argument(
        "--dilate",
        default=None,
        metavar="METRES",
        help="grow the cloud and shadow areas by this distance on the ground, in metres (or "
        f"pixels with 'px', e.g. 6px), so cloud edges and haze rims are masked too (default: "
        f"{dilate_default}: 60 m for ukis, 0 for dsen2cr and s2cloudless)",
    )


def add_mask(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mask",
        help="cloud/shadow mask of a Sentinel-2 GeoTIFF (L1C or L2A, any band layout)",
        description=(
            "Compute the cloud/shadow mask of a Sentinel-2 scene of any size, in windows, and "
            "write a uint8 GeoTIFF on the same grid: 0 clear, 1 cloud, 2 shadow (s2cloudless: "
            "clouds only), grown by --dilate: the mask predict and inpaint use. The file may "
            "be the 13-band L1C stack, the 12-band L2A stack, or any bands named by its band "
            "descriptions or --bands, as long as the masker's are there (ukis: B2, B3, B4, B8)."
        ),
    )
    p.add_argument("s2", help="Sentinel-2 GeoTIFF (DN = reflectance x 10000)")
    p.add_argument("--out", required=True, help="mask GeoTIFF to write")
    add_mask_flags(p)
    # The name this option had before --mask-backend, kept so that scripts keep working.
    p.add_argument("--backend", dest="mask_backend", choices=MASK_BACKEND_CHOICES,
                   help=argparse.SUPPRESS)  # fmt: skip
    p.add_argument(
        "--bands",
        default=None,
        help="the name of each band of the file in order, e.g. B2,B3,B4,B8,B11,B12 or "
        "blue,green,red,nir (default: from the band descriptions, or the 13-band L1C / "
        "12-band L2A order)",
    )
    p.add_argument(
        "--level",
        choices=("l1c", "l2a"),
        default=None,
        help="product level, for the masker's model (default: L1C if B10 is there, L2A for "
        "every band but B10 or 'L2A' in the file name or tags, else L1C)",
    )
    p.add_argument(
        "--window", type=positive_int, default=1024, help="window side in pixels (default 1024)"
    )
    p.set_defaults(func=run_mask)


def run_mask(args: argparse.Namespace) -> int:
    from cloudfree.masks.scene import run_mask_cli

    return run_mask_cli(
        args.s2,
        args.out,
        args.mask_backend,
        args.window,
        bands=args.bands,
        level=args.level,
        dilate=args.dilate,
    )
