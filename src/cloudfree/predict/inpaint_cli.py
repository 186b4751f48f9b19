"""``cloudfree inpaint``: fill the cloud/shadow area of a whole scene (GeoTIFF in, GeoTIFF out)."""

from __future__ import annotations

import argparse

from cloudfree.argtypes import dn_value, positive_int

# Only light imports here: `cloudfree --help` must not import torch.
from cloudfree.errors import CloudfreeError
from cloudfree.inpaint.registry import DEFAULT_METHOD, INPAINT_METHODS
from cloudfree.masks.cli import add_mask_flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``inpaint`` on the ``cloudfree`` subcommand parser."""
    p = sub.add_parser(
        "inpaint",
        help="inpaint the cloud/shadow area of a Sentinel-2 scene (classical, SAR-matched or "
        "Stable Diffusion)",
        description=(
            "Fill the masked (cloud/shadow) pixels of a Sentinel-2 scene of any size from its "
            "clear pixels, in windows, and write a GeoTIFF on the input's grid. Pixels outside "
            "the (grown) mask are the input, bit for bit. Without --mask the cloud/shadow "
            "mask is computed (--mask-backend; grown by --dilate). Methods: mask-fill (OpenCV Telea, default), "
            "biharmonic (scikit-image), push-pull (multiscale normalised convolution), "
            "sar-match (spectra of the clear pixels alike in S1; needs --s1), stable-diffusion "
            "(diffusers inpainting pipeline from a local folder: --weights DIR; nothing is "
            "downloaded)."
        ),
    )
    p.add_argument("s2", help="S2 GeoTIFF (13 L1C bands, or 12 L2A)")
    p.add_argument("--out", required=True, help="output GeoTIFF")
    p.add_argument(
        "--mask",
        default=None,
        help="1-band mask GeoTIFF on the S2 grid (0 clear, nonzero fill), grown only if "
        "--dilate is given; default: the cloud/shadow mask computed by --mask-backend",
    )
    add_mask_flags(p)
    p.add_argument("--method", choices=INPAINT_METHODS, default=DEFAULT_METHOD)
    p.add_argument("--s1", default=None, help="S1 GeoTIFF (VV, VH in dB), for sar-match")
    p.add_argument(
        "--weights",
        default=None,
        help="stable-diffusion: folder of a diffusers inpainting pipeline (e.g. a local copy of "
        "stable-diffusion-inpainting)",
    )
    p.add_argument(
        "--steps", type=positive_int, default=None, help="stable-diffusion: steps (default 20)"
    )
    p.add_argument("--seed", type=int, default=None, help="stable-diffusion: seed (default 0)")
    p.add_argument("--prompt", default=None, help="stable-diffusion: the text prompt")
    p.add_argument(
        "--guidance", type=float, default=None, help="stable-diffusion: guidance scale (7.5)"
    )
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="stable-diffusion: working side in pixels (default 512; 768 for SD 2 at 768)",
    )
    p.add_argument("--tile", type=int, default=None, help="tile side (default 1024; SD 256)")
    p.add_argument("--overlap", type=int, default=None, help="tile overlap (default 256; SD 64)")
    p.add_argument("--batch-size", type=positive_int, default=4, help="tiles per call (default 4)")
    p.add_argument("--device", default="auto", help="stable-diffusion: auto, cpu, cuda, ...")
    p.add_argument(
        "--mask-out", default=None, help="also write the mask used here, growth included"
    )
    p.add_argument("--b10", type=dn_value, default=None, help="B10 DN for 12-band L2A input")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--summary", default=None, help="write the summary as JSON here")
    p.set_defaults(func=run)


def options_of(args: argparse.Namespace) -> dict[str, object]:
    """The method options given on the command line (the others keep their defaults).

    Raises:
        ValueError: a Stable Diffusion option given to another method.
    """
    opts: dict[str, object] = {}
    sd = {"weights": args.weights, "steps": args.steps, "seed": args.seed,
          "prompt": args.prompt, "guidance": args.guidance, "size": args.size}  # fmt: skip
    given = {k: v for k, v in sd.items() if v is not None}
    if given and args.method != "stable-diffusion":
        raise ValueError(
            f"--{'/--'.join(given)} only apply to --method stable-diffusion, not {args.method}"
        )
    opts.update(given)
    return opts


def run(args: argparse.Namespace) -> int:
    """Run ``cloudfree inpaint``."""
    from cloudfree.outputs import check_outputs
    from cloudfree.predict.cli import format_summary, write_summary
    from cloudfree.predict.inpaint import inpaint_scene

    # --out, --mask-out against the inputs are checked by predict; --summary here, before work.
    check_outputs(
        {"--out": args.out, "--mask-out": args.mask_out, "--summary": args.summary},
        [args.s2, args.mask, args.s1],
    )
    try:
        summary = inpaint_scene(
            args.s2,
            args.out,
            mask=args.mask,
            method=args.method,
            s1=args.s1,
            options=options_of(args),
            tile=args.tile,
            overlap=args.overlap,
            batch_size=args.batch_size,
            device=args.device,
            mask_out=args.mask_out,
            b10=args.b10,
            progress=not args.no_progress,
            mask_backend=args.mask_backend,
            dilate=args.dilate,
        )
    except ValueError as e:  # bad options or inputs: the message says what to do
        if isinstance(e, CloudfreeError):
            raise
        raise CloudfreeError(str(e)) from e
    print(format_summary(summary))
    if args.summary:
        write_summary(args.summary, summary)
    return 0
