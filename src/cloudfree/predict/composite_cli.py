"""``cloudfree composite``: several dates of one place into one cloud-free GeoTIFF."""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudfree.argtypes import positive_int

# Only light imports here: `cloudfree --help` must not import torch.
from cloudfree.errors import CloudfreeError
from cloudfree.masks.cli import add_mask_flags

#: The temporal methods (cloudfree.methods.temporal.TEMPORAL_METHODS, kept light here).
METHODS = ("composite", "median", "nearest-clear", "least-cloudy", "mosaic")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``composite`` on the ``cloudfree`` subcommand parser."""
    p = sub.add_parser(
        "composite",
        help="combine several dates of one place into one cloud-free Sentinel-2 GeoTIFF",
        description=(
            "Combine the clear observations of several Sentinel-2 dates of one place, pixel "
            "by pixel, into one image on one grid (the --target-date input's, else the oldest "
            "input's; the others reprojected onto it), window by window, any size. Each date's "
            "cloud/shadow mask is computed (--mask-backend, --dilate). Methods: composite "
            "(default: the median of the clear observations, and what no date sees clear filled "
            "by push-pull from around it), median, nearest-clear (the clear date nearest to "
            "--target-date), least-cloudy, mosaic (the SEN12MS-CR-TS benchmark's mosaicing). "
            "Writes OUT and a second file saying per pixel how it was made (clear observations "
            "used; 0 the least cloudy date's value; -1 filled; -2 no data)."
        ),
    )
    p.add_argument(
        "inputs",
        nargs="+",
        help="S2 GeoTIFFs of one place (13-band L1C or 12-band L2A), folders of them, list "
        "files (.txt, one path per line), or a series folder (s2/<YYYY-MM-DD>*.tif)",
    )
    p.add_argument("--out", required=True, help="output GeoTIFF")
    p.add_argument(
        "--made-out",
        default=None,
        help="how each pixel was made, int16 GeoTIFF (default: OUT with _made before .tif)",
    )
    p.add_argument("--method", choices=METHODS, default="composite", help="default composite")
    p.add_argument(
        "--target-date",
        default=None,
        metavar="YYYY-MM-DD",
        help="the date the composite stands for: its input's grid, and the date nearest-clear "
        "measures from (default: the newest input)",
    )
    p.add_argument(
        "--dates",
        default=None,
        help="one date per input file, comma-separated, in the order the files are given "
        "(default: the first YYYY-MM-DD or YYYYMMDD in each file name, else its date tag)",
    )
    p.add_argument("--fill", default="push-pull",
                   help="composite: the inpainting method that fills what no date sees clear "
                   "(default push-pull; mask-fill, biharmonic)")  # fmt: skip
    p.add_argument(
        "--checkpoint",
        default=None,
        help="composite: a model (any predict --checkpoint: a registry name, weights file or run "
        "folder) fills what no date sees clear, instead of --fill. A one-date model works on "
        "the composite and, with SAR, the target date's S1 (--s1, or s1/<date>.tif of a series "
        "folder); a temporal model (uncrtaints-mt) on the dates nearest the target and each "
        "one's S1 (s1/<date>.tif of a series folder)",
    )
    p.add_argument("--s1", default=None, help="S1 (VV, VH dB) of the target date, for --checkpoint")
    p.add_argument(
        "--uncertainty-out",
        default=None,
        help="with a --checkpoint model trained with the Gaussian NLL (uncrtaints-mt-nll, "
        "uncrtaints-demo-sar): its predicted standard deviation where it filled, reflectance, "
        "one float32 band per output band, NaN elsewhere",
    )
    p.add_argument("--device", default="auto", help="where --checkpoint runs (auto, cpu, cuda)")
    p.add_argument(
        "--masks",
        default=None,
        metavar="DIR",
        help="a folder of cloud/shadow masks, one per input with the input's file name (0 "
        "clear, 1 cloud, 2 shadow; any nonzero masked), on the composite's grid: your own "
        "masks (e.g. from the L2A scene classification) instead of computed ones; a series "
        "folder's masks/ is used by itself",
    )
    add_mask_flags(p)
    p.add_argument("--window", type=positive_int, default=512, help="window side, px (512)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--summary", default=None, help="write the summary as JSON here")
    p.set_defaults(func=run)


def made_path(out: str) -> Path:
    """The default ``--made-out``: ``OUT_made.tif`` beside OUT."""
    p = Path(out)
    return p.with_name(f"{p.stem}_made{p.suffix or '.tif'}")


def run(args: argparse.Namespace) -> int:
    """Run ``cloudfree composite``."""
    from cloudfree.outputs import check_outputs
    from cloudfree.predict.cli import write_summary
    from cloudfree.predict.composite import CompositeOptions, composite_scene
    from cloudfree.predict.series import date_in_text, resolve_series

    made_out = args.made_out or str(made_path(args.out))
    dates = None if args.dates is None else args.dates.split(",")
    inputs = resolve_series(args.inputs, dates, args.masks)
    check_outputs(
        {
            "--out": args.out,
            "--made-out": made_out,
            "--summary": args.summary,
            "--uncertainty-out": args.uncertainty_out,
        },
        [str(d.s2) for d in inputs] + args.inputs + [args.s1, args.checkpoint],
    )
    target = None
    if args.target_date is not None:
        target = date_in_text(args.target_date)
        if target is None:
            raise CloudfreeError(f"--target-date {args.target_date!r} is not a date (YYYY-MM-DD)")
    opts = CompositeOptions(
        method=args.method, target_date=target, mask_backend=args.mask_backend,
        dilate=args.dilate, fill=args.fill, window=args.window, progress=not args.no_progress,
        checkpoint=args.checkpoint, s1=args.s1, device=args.device,
        uncertainty_out=args.uncertainty_out,
    )  # fmt: skip
    try:
        summary = composite_scene(inputs, args.out, made_out, opts)
    except ValueError as e:  # bad options: the message says what to do
        if isinstance(e, CloudfreeError):
            raise
        raise CloudfreeError(str(e)) from e
    print(format_summary(summary))
    if args.summary:
        write_summary(args.summary, summary)
    return 0


def format_summary(s: dict) -> str:
    """What a composite did, in a few lines."""
    obs = ", ".join(f"{k}: {100 * v:.1f} %" for k, v in s["clear_observations"].items())
    lines = [
        f"composite of {len(s['dates'])} dates ({s['dates'][0]} .. {s['dates'][-1]}), target "
        f"{s['target_date']}, method {s['method']}, masks: {s['masker']}",
        f"  pixels by clear observations used: {obs or 'none'}",
        f"  filled ({s['fill']}): {100 * s['filled']:.1f} %; least cloudy date's value kept: "
        f"{100 * s['least_cloudy_kept']:.1f} %; no data: {100 * s['no_data']:.1f} %",
    ]
    if s["reprojected"]:
        lines.append(f"  reprojected onto the grid of {s['grid']}: {', '.join(s['reprojected'])}")
    lines.append(f"wrote {s['out']} and {s['made_out']} in {s['seconds']:.1f} s")
    return "\n".join(lines)
