"""``cloudfree predict``: cloud removal of whole scenes (one GeoTIFF, a folder or a list file)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cloudfree.argtypes import dn_value, positive_int
from cloudfree.data.sentinel.scene import OUTSIDE_SAR

# Only light imports here: `cloudfree --help` must not import torch.
from cloudfree.errors import CloudfreeError
from cloudfree.masks.cli import add_mask_flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``predict`` on the ``cloudfree`` subcommand parser."""
    p = sub.add_parser(
        "predict",
        help="remove clouds from whole Sentinel-2 scenes (GeoTIFF in, GeoTIFF out)",
        description=(
            "Predict the cloud-free version of a Sentinel-2 scene of any size, in windows "
            "(memory does not grow with the scene), with overlapping blended tiles. The output "
            "has the input's CRS, transform, size, dtype and nodata (tiled, compressed GeoTIFF). "
            "S1 on another grid is reprojected onto the S2 grid. --s2 may also be a folder of "
            "GeoTIFFs or a list file of 's2[,s1]' lines; --out is then a folder "
            "(OUT/<name>_cloudfree.tif), and --shard i/n or torchrun ranks split the scenes."
        ),
    )
    p.add_argument(
        "--s2", required=True, help="S2 GeoTIFF (13 L1C bands or 12 L2A), a folder, or a list file"
    )
    p.add_argument(
        "--s1",
        default=None,
        help="S1 GeoTIFF (VV, VH in dB) on any grid; with a folder --s2, a folder of S1 files named like the S2 files",
    )
    p.add_argument("--out", required=True, help="output GeoTIFF (a folder for several scenes)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="a weights name (e.g. hybrid-sar, hybrid-nosar; see cloudfree.weights), weights "
        "(.safetensors), checkpoint or run folder, or a baseline (identity, mask-fill, "
        "biharmonic, push-pull, sar-match); default: the bundled weights",
    )
    p.add_argument(
        "--mask",
        default=None,
        help="cloud/shadow mask GeoTIFF on the S2 grid (0 clear, nonzero cloud or shadow) used "
        "instead of the computed one (--keep-clear, inpainting and hybrid models); grown only "
        "if --dilate is given",
    )
    add_mask_flags(p)
    p.add_argument(
        "--sd-weights",
        default=None,
        help="folder of a Stable Diffusion inpainting pipeline, for hybrids trained on its "
        "inpainting (and --checkpoint stable-diffusion)",
    )
    p.add_argument(
        "--checkpoint-nosar",
        default=None,
        help="no-SAR model for the pixels a SAR model cannot predict (no S1 there, or no --s1); "
        "default: the no-SAR model of the SAR model's recipe (e.g. hybrid-nosar for "
        "hybrid-sar), else an error: choose one here or with --outside-sar",
    )
    p.add_argument(
        "--outside-sar",
        choices=OUTSIDE_SAR,
        default=None,
        help="where S1 is missing: predict with the no-SAR model (nosar: --checkpoint-nosar, "
        "the recipe's no-SAR model, else the bundled demonstration model) or keep the input "
        "(input); default: nosar when a no-SAR model is named or the recipe has one, else an "
        "error",
    )
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        help="largest tile side fed to the model (default: the largest whose activations fit "
        "40%% of the free memory, up to 2048)",
    )
    p.add_argument(
        "--overlap",
        type=int,
        default=None,
        help="pixels shared by neighbouring tiles (default: 4x the model's measured edge "
        "effect, so tiled = whole-image output within 0.25 DN; measured once per weights)",
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=None,
        help="tiles per forward pass (default: 1 on CPU, what fits on CUDA)",
    )  # fmt: skip
    p.add_argument(
        "--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ..."
    )
    p.add_argument("--precision", default="auto", help="auto (= fp32), fp32, or bf16 (fast on GPU)")
    p.add_argument(
        "--backend",
        default="auto",
        help="a model's inference backend: auto (OpenVINO for UnCRtainTS on the CPU where "
        "installed, pip install 'cloudfree[openvino]'; else PyTorch), torch, openvino",
    )
    p.add_argument(
        "--keep-clear",
        action="store_true",
        help="clear input pixels (cloud mask class 0) keep their input values",
    )
    p.add_argument(
        "--mask-out",
        default=None,
        help="also write the uint8 cloud/shadow mask that was used, growth included (0 clear, "
        "1 cloud, 2 shadow); a folder for several scenes",
    )
    p.add_argument(
        "--uncertainty-out",
        default=None,
        metavar="STD.tif",
        help=(
            "also write the model's predicted standard deviation, reflectance units, float32, "
            "one band per output band (needs a model with a variance: UnCRtainTS trained with "
            "the Gaussian NLL loss, e.g. the bundled --checkpoint uncrtaints-demo-sar); a folder "
            "for several scenes"
        ),
    )
    p.add_argument(
        "--b10",
        type=dn_value,
        default=None,
        help="B10 DN to insert into 12-band L2A input (default 10: a clear sky)",
    )
    p.add_argument(
        "--shard",
        default=None,
        help="i/n: this process predicts scenes i, i+n, ... (default: torchrun RANK/WORLD_SIZE, else all)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="predict scenes whose output already exists (several scenes)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--summary", default=None, help="write the summary as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``cloudfree predict``; 0 on success, 1 if a scene of several failed."""
    from cloudfree.outputs import check_outputs
    from cloudfree.predict.many import is_many, predict_many
    from cloudfree.predict.scene import predict_scene

    kwargs = dict(
        checkpoint=args.checkpoint,
        checkpoint_nosar=args.checkpoint_nosar,
        outside_sar=args.outside_sar,
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        backend=args.backend,
        keep_clear=args.keep_clear,
        b10=args.b10,
        progress=not args.no_progress,
        sd_weights=args.sd_weights,
        mask_backend=args.mask_backend,
        dilate=args.dilate,
    )
    if args.shard is not None and not is_many(args.s2):
        raise CloudfreeError(
            f"--shard {args.shard} splits the scenes of a folder or list file among processes; "
            f"--s2 {args.s2} is one scene: drop --shard"
        )
    if args.mask is not None:
        if is_many(args.s2):
            raise CloudfreeError("--mask takes one mask file: give one --s2 scene with it")
        kwargs["mask"] = args.mask
    # The files this command reads besides the scenes, for the output guard (a weights name
    # that is not a path matches nothing).
    weights = [args.checkpoint, args.checkpoint_nosar, args.sd_weights]
    status = 0
    if is_many(args.s2):
        results = predict_many(
            args.s2,
            args.out,
            args.s1,
            shard=args.shard,
            overwrite=args.overwrite,
            mask_dir=args.mask_out,
            uncertainty_dir=args.uncertainty_out,
            summary=args.summary,
            # A list file is read too; a folder's scenes are listed by predict_many.
            inputs=[*weights, args.s2 if Path(args.s2).is_file() else None],
            **kwargs,
        )
        for row in results:
            line = f"{row['status']:8s} {row['s2']} -> {row['out']}"
            if row["status"] == "failed":
                line += f": {row['error']}"
                status = 1
            print(line)
        summary: object = results
    else:
        check_outputs(
            {"--out": args.out, "--mask-out": args.mask_out,
             "--uncertainty-out": args.uncertainty_out, "--summary": args.summary},
            [args.s2, args.s1, args.mask, *weights], example="summary.json",
        )  # fmt: skip
        summary = predict_scene(
            args.s2,
            args.out,
            s1=args.s1,
            mask_out=args.mask_out,
            uncertainty_out=args.uncertainty_out,
            **kwargs,
        )
        print(format_summary(summary))
    if args.summary:
        write_summary(args.summary, summary)
    return status


def write_summary(path: str, summary: object) -> None:
    """``--summary PATH``: the summary as JSON, written atomically (Paths and dates as text)."""
    from cloudfree.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=str))


def format_summary(summary: Mapping[str, Any]) -> str:
    """A few human-readable lines about a :func:`predict_scene` result."""
    lines = [
        f"wrote {summary['out']} ({summary['height']}x{summary['width']} px) in "
        f"{summary['seconds']:.1f} s ({summary['mpx_per_s']:.3f} Mpx/s, {summary['tiles']} tiles,"
        f" {summary['method']} on {summary['device']}, {summary['precision']}"
        + (f", {summary['backend']}" if summary.get("backend") == "openvino" else "")
        + ")"
    ]
    if summary.get("reprojected"):
        lines.append("S1 was on another grid: reprojected onto the S2 grid (bilinear)")
    if summary.get("sar_coverage") is not None:
        cov = 100 * summary["sar_coverage"]
        lines.append(f"S1 covers {cov:.1f} % of the scene")
    made_by = summary.get("made_by") or {}
    if summary.get("method_nosar") and made_by.get("nosar"):
        lines.append(
            f"{100 * made_by['nosar']:.1f} % of the pixels (no S1 there) predicted with "
            f"{summary['method_nosar']}, {100 * made_by.get('model', 0):.1f} % with "
            f"{summary['method']}"
        )
    if summary.get("l2a"):
        lines.append(f"L2A input: B10 filled with {summary['b10_fill']:g} DN")
    if "cloud_fraction" in summary:
        from cloudfree.masks.report import describe_fractions

        source = summary.get("masker") or f"file {summary.get('mask_source')}"
        grown = f", grown by {summary['dilate_px']:.3g} px" if summary.get("dilate_px") else ""
        lines.append(f"mask ({source}{grown}): {describe_fractions(summary)}")
        if summary.get("mask_out"):
            lines.append(f"wrote {summary['mask_out']}")
    if "changed_fraction" in summary:
        lines.append(f"{100 * summary['changed_fraction']:.2f} % of the pixels with data changed")
    if summary.get("uncertainty_out"):
        lines.append(f"wrote {summary['uncertainty_out']} (standard deviation, reflectance)")
    return "\n".join(lines)
