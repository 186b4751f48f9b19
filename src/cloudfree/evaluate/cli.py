"""``cloudfree evaluate``, ``compare`` and ``replicate``: the command lines of evaluation.

Only light imports at module level: ``cloudfree --help`` builds every parser."""

from __future__ import annotations

import argparse
import sys

from cloudfree.argtypes import positive_int
from cloudfree.bands import SPLITS


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    from cloudfree.evaluate.protocols import PROTOCOLS, SERIES_PROTOCOLS

    p = sub.add_parser(
        "evaluate",
        help="evaluate a checkpoint or a baseline with the paper's metrics, per patch and per area",
        description=(
            "Predict every patch of a split and write per_patch.csv (cloud/shadow fractions and "
            "every metric for the target, reprod (clear) and recon (cloud/shadow) areas), "
            "summary.json and table.md laid out as Table 1 of the paper, with breakdowns by "
            "season and cloud cover. Streams: memory does not grow with the number of patches."
        ),
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="CKPT_OR_METHOD",
        help="a weights name (e.g. hybrid-nosar; see cloudfree.weights), a .safetensors file, a "
        "checkpoint folder, a training run folder, or a baseline: identity, mask-fill, "
        "biharmonic, push-pull, sar-match (stable-diffusion with --sd-weights)",
    )
    p.add_argument(
        "--data",
        required=True,
        help="dataset root, index CSV or packed folder ('cloudfree pack'); or the index CSV of a "
        "SEN12MS-CR-TS copy ('cloudfree index ROOT --out ts.csv'): every method, temporal or "
        "one-date, on the same samples of dates, as UnCRtainTS's test script",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--split",
        default="test",
        choices=(*SPLITS, "all"),
        help="split to evaluate (default test)",
    )
    p.add_argument(
        "--protocol",
        default=None,
        choices=(*PROTOCOLS, *SERIES_PROTOCOLS),
        help=_protocols_help(),
    )
    ts = p.add_argument_group("SEN12MS-CR-TS (--data is its index)")
    ts.add_argument(
        "--input-t", type=positive_int, default=3,
        help="input dates per sample (default 3, as the benchmark's rows)",
    )  # fmt: skip
    ts.add_argument(
        "--coverage",
        default="s2cloudless",
        choices=("s2cloudless", "dsen2cr"),
        help="cloud masker that chooses the dates and masks the inputs: s2cloudless (default, "
        "as upstream; pip install 'cloudfree[masks]') or dsen2cr; computed once, cached beside "
        "the index",
    )
    ts.add_argument(
        "--samples",
        default=None,
        metavar="FILE",
        help="the authors' pre-computed sample file (generic_3_test_all_s2cloudless_mask.npy): "
        "its coverages choose the dates",
    )
    ts.add_argument(
        "--upstream-quirk",
        action="store_true",
        help="the fixed sampler exactly as upstream, whose target may also be an input date",
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=None,
        help="patches per forward pass (default: 4 on CPU, what fits the free memory on CUDA)",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1")
    p.add_argument(
        "--backend",
        default="auto",
        help="a model's inference backend: auto (OpenVINO for UnCRtainTS on the CPU where "
        "installed, pip install 'cloudfree[openvino]'; else PyTorch), torch, openvino",
    )
    p.add_argument(
        "--limit", type=positive_int, default=None, help="evaluate only the first N patches"
    )
    p.add_argument(
        "--mask-backend",
        default="dsen2cr",
        choices=("dsen2cr", "auto", "ukis", "s2cloudless"),
        help="the mask given to the methods that read one (inpainting baselines, hybrids): "
        "dsen2cr (default: each patch's DSen2-CR mask, as in training), or the masker of the "
        "whole-scene commands (auto, ukis, s2cloudless; grown by its default); the metrics' "
        "cloudy and clear areas are the DSen2-CR mask's either way",
    )
    p.add_argument(
        "--no-report",
        action="store_true",
        help="skip report.html and its figures (distributions, best/median/worst patches)",
    )
    p.add_argument(
        "--sd-weights",
        default=None,
        help="folder of a Stable Diffusion inpainting pipeline (--checkpoint stable-diffusion, "
        "hybrids trained on its inpainting)",
    )
    p.add_argument(
        "--save-predictions",
        action="store_true",
        help="also write each patch's prediction as OUT/<id>.tif (uint16 DN, georeferenced), "
        "for 'cloudfree view ROOT --predictions PARENT_OF_OUT' (with the metrics)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from cloudfree.data.source import series_kind
    from cloudfree.errors import CloudfreeError
    from cloudfree.evaluate.run import run_evaluate_cli

    if series_kind(args.data) is not None:
        return _run_evaluate_series(args)
    if args.protocol == "sen12mscr-ts":
        raise CloudfreeError(
            f"--protocol sen12mscr-ts evaluates series: --data must be the index CSV of a "
            f"SEN12MS-CR-TS copy (cloudfree index ROOT --out ts.csv), not {args.data}"
        )
    split = None if args.split == "all" else args.split
    return run_evaluate_cli(
        args.checkpoint,
        args.data,
        args.out,
        split,
        args.protocol or "paper",
        args.batch_size,
        args.device,
        args.limit,
        report=not args.no_report,
        sd_weights=args.sd_weights,
        backend=args.backend,
        mask_backend=args.mask_backend,
        progress=not args.no_progress,
        save_predictions=args.save_predictions,
    )


def _run_evaluate_series(args: argparse.Namespace) -> int:
    """``cloudfree evaluate`` on a SEN12MS-CR-TS index (:mod:`cloudfree.evaluate.series`)."""
    from pathlib import Path

    from cloudfree.errors import CloudfreeError
    from cloudfree.evaluate.series import evaluate_series_dir

    if args.protocol not in (None, "sen12mscr-ts"):
        raise CloudfreeError(
            f"{args.data} is a SEN12MS-CR-TS index: it is evaluated with --protocol "
            f"sen12mscr-ts (UnCRtainTS's test script), not {args.protocol}"
        )
    one_date = {"--mask-backend": args.mask_backend != "dsen2cr", "--sd-weights":
                args.sd_weights, "--save-predictions": args.save_predictions}  # fmt: skip
    used = [flag for flag, on in one_date.items() if on]
    if used:
        raise CloudfreeError(
            f"{', '.join(used)} apply to SEN12MS-CR evaluations; on series the masks are the "
            "coverage's (--coverage): leave them out"
        )
    evaluate_series_dir(
        args.checkpoint, args.data, args.out, split=args.split, input_t=args.input_t,
        coverage=args.coverage, samples=args.samples, limit=args.limit, device=args.device,
        backend=args.backend, upstream_quirk=args.upstream_quirk, progress=not args.no_progress,
    )  # fmt: skip
    print((Path(args.out) / "table.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {Path(args.out) / 'per_patch.csv'}, summary.json, table.md")
    return 0


def add_replicate(sub: argparse._SubParsersAction) -> None:
    from cloudfree.evaluate.protocols import PROTOCOLS

    p = sub.add_parser(
        "replicate",
        help="train and evaluate the five rows of the paper's Table 1 and assemble the table",
        description=(
            "Train the presets dsen2cr_sar_carl, dsen2cr_sar_l1, dsen2cr_nosar_carl, "
            "dsen2cr_nosar_l1 and pix2pix on DATA (OUT/runs/), evaluate each on the test split "
            "(OUT/eval/) and write OUT/table.md beside the published numbers. Runs again where "
            "it stopped. Under 'torchrun --nproc_per_node=N -m cloudfree.cli replicate ...' "
            "training uses N GPUs; evaluation runs on rank 0."
        ),
    )
    p.add_argument("--data", required=True, help="SEN12MS-CR root, index CSV or packed folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--size",
        default="paper",
        choices=("paper", "tiny"),
        help="paper: the published presets; tiny: tiny networks for a smoke run (default paper)",
    )
    p.add_argument(
        "--rows", nargs="+", default=None, metavar="PRESET", help="only these rows (presets)"
    )
    p.add_argument("--eval-data", default=None, help="evaluate on this data (default --data)")
    p.add_argument("--protocol", default="paper", choices=tuple(PROTOCOLS))
    p.add_argument("--device", default="auto", help="evaluation device (default auto)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML reports")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for every row"
    )
    p.set_defaults(func=run_replicate)


def run_replicate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cloudfree.evaluate.replicate import replicate

    try:
        result = replicate(
            args.data,
            args.out,
            size=args.size,
            rows=args.rows,
            eval_data=args.eval_data,
            protocol=args.protocol,
            device=args.device,
            overrides=args.overrides,
            report=not args.no_report,
        )
    except ValueError as e:
        from cloudfree.errors import CloudfreeError

        if isinstance(e, CloudfreeError):  # bad data or outputs: main's exit 1
            raise
        print(f"cloudfree replicate: error: {e}", file=sys.stderr)  # bad rows or overrides
        return 2
    if result["table"] is not None:
        print(Path(result["table"]).read_text())
        print(f"table: {result['table']}")
    return 0


def add_compare(sub: argparse._SubParsersAction) -> None:
    from cloudfree.evaluate.protocols import PROTOCOLS

    p = sub.add_parser(
        "compare",
        help="assemble several evaluations into one table, with the published numbers",
        description=(
            "Read the summary.json of each evaluation folder ('cloudfree evaluate --out') and "
            "print one Table-1 layout table, with the paper's and the leaderboard's published "
            "rows for the same protocol, marked as such."
        ),
    )
    p.add_argument("run_dirs", nargs="*", metavar="EVAL_DIR", help="evaluation folders")
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="CKPT_OR_METHOD",
        help="also evaluate this (a weights name, file, checkpoint or run folder, or a baseline) "
        "on --data and add its row; repeatable, e.g. --checkpoint dsen2cr-sar-carl "
        "--checkpoint mask-fill --checkpoint identity",
    )
    p.add_argument("--data", default=None, help="dataset for --checkpoint (root, index, pack)")
    p.add_argument(
        "--split", default="test", choices=(*SPLITS, "all"),
        help="split for --checkpoint (default test)",
    )  # fmt: skip
    p.add_argument(
        "--protocol", default="paper", choices=tuple(PROTOCOLS),
        help="protocol for --checkpoint (default paper)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=None, help="patches per forward pass")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    p.add_argument(
        "--limit", type=positive_int, default=None, help="evaluate only the first N patches"
    )
    p.add_argument(
        "--eval-out",
        default=None,
        help="keep the --checkpoint evaluations here (EVAL_OUT/<name>/), to compare again "
        "later without re-running them; default: a temporary folder",
    )
    p.add_argument("--out", default=None, help="also write the table to this Markdown file")
    p.add_argument("--no-published", action="store_true", help="leave out the published rows")
    p.add_argument(
        "--coverage",
        default="s2cloudless",
        choices=("s2cloudless", "dsen2cr"),
        help="--data a SEN12MS-CR-TS index or pack: the cloud masker that chooses the dates "
        "(as evaluate's)",
    )
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from cloudfree.evaluate.compare import run_compare_cli

    return run_compare_cli(
        args.run_dirs,
        args.out,
        not args.no_published,
        checkpoints=args.checkpoint,
        data=args.data,
        split=None if args.split == "all" else args.split,
        protocol=args.protocol,
        batch_size=args.batch_size,
        device=args.device,
        limit=args.limit,
        eval_out=args.eval_out,
        coverage=args.coverage,
    )


def _protocols_help() -> str:
    """What each protocol does, read from the protocols themselves (never out of step)."""
    from cloudfree.evaluate.protocols import PROTOCOLS

    parts = []
    for name, proto in PROTOCOLS.items():
        window = "full patches" if proto.crop is None else f"centre {proto.crop}x{proto.crop} crop"
        clip = "predictions clipped to [0, 1]" if proto.clip_prediction else "no clipping"
        psnr = "PSNR per patch" if proto.psnr == "per_image" else "PSNR of the mean RMSE"
        parts.append(f"{name}: {window}, {clip}, {psnr}, SSIM {proto.ssim_padding} padding")
    return "; ".join(parts) + (
        " (default paper: DSen2-CR's Table 1); sen12mscr-ts: SEN12MS-CR-TS as UnCRtainTS's test "
        "script (the default, and the only one, when --data is a SEN12MS-CR-TS index)"
    )
