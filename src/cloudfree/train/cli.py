"""``cloudfree train``: train a model from a preset or config file with overrides.

Only light imports at module level: ``cloudfree --help`` builds every parser."""

from __future__ import annotations

import argparse
import sys


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (the DSen2-CR recipe by default), on one process or under torchrun",
        description=(
            "Train with a preset or YAML config plus dotted overrides, e.g. 'cloudfree train "
            "--config debug_tiny data.packed=/data/packed train.epochs=2'. Runs the same under "
            "'torchrun --nproc_per_node=N -m cloudfree.cli train ...' (DDP). Prints the run "
            "folder; '--resume RUN_DIR' continues it exactly from its last checkpoint."
        ),
    )
    p.add_argument(
        "--config",
        default=None,
        help="preset name (dsen2cr_sar_carl, dsen2cr_nosar_l1, debug_tiny, ...) or YAML file; "
        "default: the paper's recipe, or RUN_DIR/config.yaml with --resume",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. optim.lr=1e-4"
    )
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="run folder to continue")
    p.add_argument(
        "--init",
        default=None,
        metavar="NAME_OR_FILE",
        help="start from these weights (fine-tuning): a weights name (e.g. dsen2cr-sar-carl), a "
        ".safetensors or Keras .hdf5 file, a checkpoint or run folder; it must be the model "
        "and size the config trains (same as the override train.init=...)",
    )
    p.add_argument(
        "--input-t",
        type=int,
        default=None,
        metavar="N",
        help="dates per sample of a temporal model (uncrtaints_mt_* presets: 3, UnCRtainTS's "
        "--input_t), trained on a SEN12MS-CR-TS index (data.index=ts.csv); same as "
        "data.input_t=N",
    )
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from cloudfree.config import load_config
    from cloudfree.inpaint.registry import BASELINES
    from cloudfree.train.loop import train

    config = args.config
    if config in BASELINES:
        print(
            f"cloudfree train: error: {config!r} is a non-learned baseline, there is nothing to "
            f"train; evaluate it directly: cloudfree evaluate --checkpoint {config} --data DATA "
            "--out DIR",
            file=sys.stderr,
        )
        return 2
    if args.init is not None and args.resume is not None:
        print(
            "cloudfree train: error: --init starts a new run from given weights and --resume "
            "continues a run from its own checkpoint; use one of them",
            file=sys.stderr,
        )
        return 2
    if args.resume is not None and not (Path(args.resume) / "config.yaml").is_file():
        from cloudfree.runs import find_latest

        if not Path(args.resume).is_dir() or find_latest(Path(args.resume)) is None:
            what = "does not exist" if not Path(args.resume).exists() else "is not a run folder"
            print(
                f"cloudfree train: error: --resume {args.resume} {what} (no config.yaml, no "
                "checkpoints/); give the run folder a previous 'cloudfree train' printed "
                "('run folder: ...')",
                file=sys.stderr,
            )
            return 2
    if config is None and args.resume is not None:
        config = Path(args.resume) / "config.yaml"
    overrides = [*args.overrides, *([f"train.init={args.init}"] if args.init else [])]
    if args.input_t is not None:
        overrides.append(f"data.input_t={args.input_t}")
    try:
        # A run folder's own config.yaml: fields it predates keep the behaviour it started with.
        saved_run = args.resume is not None and Path(config) == Path(args.resume) / "config.yaml"
        cfg = load_config(config, overrides, saved_run=saved_run)
    except ValueError as e:
        print(f"cloudfree train: error: {e}", file=sys.stderr)
        return 2
    summary = train(cfg, resume=args.resume)
    # The process group is gone after train(): torchrun's RANK says which process this is.
    if os.environ.get("RANK", "0") == "0":
        print(f"run folder: {summary['run_dir']}")
        print(", ".join(f"{k}={v}" for k, v in summary.items() if k != "run_dir"))
    return 0
