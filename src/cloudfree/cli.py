"""The ``cloudfree`` command: one entry point, one subcommand per pipeline stage.

Each subcommand defines its parser here and calls library functions, imported lazily so that
``cloudfree --help`` stays fast and optional extras are only needed by the commands that use them.
``main(argv)`` is callable from tests.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cloudfree import __version__
from cloudfree.bands import SPLITS
from cloudfree.errors import CloudfreeError

Handler = Callable[[argparse.Namespace], int]


def _add_index(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="find every SEN12MS-CR patch under ROOT and write an index CSV",
        description=(
            "Find every patch under ROOT (the release layout unpacked, the release .tar.gz "
            "archives, or the flat DSen2-CR layout with its CSV file list) and write one row per "
            "patch: roi_season,scene,patch,split,s1,s2,s2_cloudy (paths relative to ROOT, empty "
            "where missing). Prints what is complete and what is not."
        ),
    )
    p.add_argument("root", help="dataset folder")
    p.add_argument("--out", required=True, help="index CSV to write")
    p.add_argument(
        "--splits",
        default=None,
        help="your own split file (CSV with columns roi_season,scene,split and optionally patch), "
        "or the DSen2-CR authors' file list (Data/datasetfilelist.csv of ameraner/dsen2-cr, tab- "
        "or comma-separated: the paper's own train/val/test patches), instead of the official "
        "SEN12MS-CR ROI split",
    )
    p.add_argument(
        "--file-list",
        default=None,
        help="DSen2-CR CSV file list (split,s1_dir,s2_dir,s2_cloudy_dir,file; tab or ', ' "
        "separated); found automatically as ROOT/*.csv in the flat layout",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="open every file's header and report bad ones (band count, dtype, size, grid)",
    )
    p.add_argument("--strict", action="store_true", help="fail on the first bad file")
    p.set_defaults(func=_run_index)


def _run_index(args: argparse.Namespace) -> int:
    from cloudfree.data.release.discover import build_index
    from cloudfree.data.release.index import format_summary, write_index

    result = build_index(
        args.root,
        split_file=args.splits,
        file_list=args.file_list,
        check=args.check,
        strict=args.strict,
    )
    write_index(result, args.out)
    print(format_summary(result))
    print(f"wrote {len(result.rows)} rows to {args.out}")
    return 0


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="write a synthetic SEN12MS-CR-like dataset in the release layout",
        description=(
            "Synthesise N triplets (S1, cloud-free S2, cloudy S2) in the SEN12MS-CR release "
            "layout: coherent land cover, plausible 13-band L1C reflectances, S1 with speckle, "
            "thick and thin clouds with fractal edges and displaced shadows. For tests and demos."
        ),
    )
    p.add_argument("out", help="output folder (created)")
    p.add_argument("--n", type=int, default=16, help="number of triplets (default 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", type=int, default=256, help="patch side in pixels (default 256)")
    p.add_argument(
        "--clear-from",
        default=None,
        help="put simulated clouds over the real clear 13-band S2 GeoTIFFs found in this folder",
    )
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from cloudfree.data.synthetic.release import synthesize

    written = synthesize(
        args.out, n=args.n, seed=args.seed, size=args.size, clear_from=args.clear_from
    )
    print(f"wrote {written} triplets to {args.out}")
    return 0


def _add_pack(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pack",
        help="convert an index into a few large memory-mapped shard files for fast training",
        description=(
            "Read every usable patch of an index and write them into a few large .npy shards "
            "(memory-mapped at training time: random access, no decoding) with a manifest. "
            "Interrupted runs resume: finished shards are kept."
        ),
    )
    p.add_argument("index", help="index CSV written by 'cloudfree index'")
    p.add_argument("--out", required=True, help="output folder for the shards")
    p.add_argument(
        "--root", default=None, help="dataset root (default: the one the index recorded)"
    )
    p.add_argument("--split", default=None, help="pack only this split (train, val or test)")
    p.add_argument(
        "--shard-size", type=int, default=1024, help="patches per shard (default 1024, ~4 GB)"
    )
    p.add_argument(
        "--require",
        default="s2,s2_cloudy",
        help="kinds a patch must have to be packed (default s2,s2_cloudy; s1,s2,s2_cloudy for "
        "SAR models only)",
    )
    p.add_argument("--workers", type=int, default=2, help="reader processes (default 2)")
    p.add_argument("--strict", action="store_true", help="fail on the first bad patch")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace whatever --out holds (default: resume the same pack, refuse a different one)",
    )
    p.add_argument(
        "--no-mask",
        dest="mask",
        action="store_false",
        help="do not compute the DSen2-CR cloud/shadow mask of each cloudy patch (default: "
        "compute it into the shards, for SampleConfig(mask='cached') and the CARL loss)",
    )
    p.add_argument(
        "--inpaint",
        action="append",
        default=[],
        metavar="METHOD",
        help="also cache each cloudy patch inpainted with METHOD (mask-fill, biharmonic, "
        "push-pull, sar-match, stable-diffusion) in the shards, for the hybrid models; "
        "repeatable; resumes shard by shard",
    )
    p.add_argument(
        "--sd-weights",
        default=None,
        help="folder of a Stable Diffusion inpainting pipeline (for --inpaint stable-diffusion)",
    )
    p.set_defaults(func=_run_pack)


def _run_pack(args: argparse.Namespace) -> int:
    from cloudfree.data.packed.pack import pack

    manifest = pack(
        args.index,
        args.out,
        root=args.root,
        split=args.split,
        shard_size=args.shard_size,
        require=tuple(k.strip() for k in args.require.split(",") if k.strip()),
        workers=args.workers,
        strict=args.strict,
        overwrite=args.overwrite,
        mask=args.mask,
    )
    print(
        f"packed {manifest['num_patches']} patches into {len(manifest['shards'])} shards "
        f"in {args.out} ({manifest['num_skipped']} skipped)"
    )
    if args.inpaint:
        from cloudfree.data.packed.inpaint_cache import fill_inpainting

        for method in args.inpaint:
            options = {"weights": args.sd_weights} if method == "stable-diffusion" else {}
            manifest = fill_inpainting(args.out, method, options, workers=args.workers)
            t = manifest["inpaint_timing"][method]
            per = (
                "" if t["seconds_per_patch"] is None else f", {t['seconds_per_patch']:.3f} s/patch"
            )
            print(f"inpainted {t['patches']} patches with {method} in {t['seconds']:.1f} s{per}")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
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
    if config is None and args.resume is not None:
        config = Path(args.resume) / "config.yaml"
    overrides = [*args.overrides, *([f"train.init={args.init}"] if args.init else [])]
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


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from cloudfree.evaluate.protocols import PROTOCOLS

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
        "--data", required=True, help="dataset root, index CSV or packed folder ('cloudfree pack')"
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
        default="paper",
        choices=tuple(PROTOCOLS),
        help="paper: DSen2-CR Table 1 (full patches, no clipping); leaderboard: SEN12MS-CR "
        "leaderboard (predictions clipped to [0, 1]); glf-cr: centre 128x128 crop (default paper)",
    )
    p.add_argument(
        "--batch-size", type=int, default=None,
        help="patches per forward pass (default: 4 on CPU, what fits the free memory on CUDA)",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1")
    p.add_argument(
        "--backend",
        default="auto",
        help="a model's inference backend: auto (OpenVINO for UnCRtainTS on the CPU where "
        "installed, pip install 'cloudfree[openvino]'; else PyTorch), torch, openvino",
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N patches")
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
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from cloudfree.evaluate.run import run_evaluate_cli

    split = None if args.split == "all" else args.split
    return run_evaluate_cli(
        args.checkpoint,
        args.data,
        args.out,
        split,
        args.protocol,
        args.batch_size,
        args.device,
        args.limit,
        report=not args.no_report,
        sd_weights=args.sd_weights,
        backend=args.backend,
    )


def _add_replicate(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=_run_replicate)


def _run_replicate(args: argparse.Namespace) -> int:
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
        print(f"cloudfree replicate: error: {e}", file=sys.stderr)
        return 2
    if result["table"] is not None:
        print(Path(result["table"]).read_text())
        print(f"table: {result['table']}")
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--batch-size", type=int, default=None, help="patches per forward pass")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N patches")
    p.add_argument(
        "--eval-out",
        default=None,
        help="keep the --checkpoint evaluations here (EVAL_OUT/<name>/), to compare again "
        "later without re-running them; default: a temporary folder",
    )
    p.add_argument("--out", default=None, help="also write the table to this Markdown file")
    p.add_argument("--no-published", action="store_true", help="leave out the published rows")
    p.set_defaults(func=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
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
    )


def _add_mask(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mask",
        help="cloud/shadow mask of a Sentinel-2 L1C GeoTIFF (the DSen2-CR algorithm)",
        description=(
            "Compute the cloud/shadow mask of Meraner et al. 2020 on a 13-band L1C GeoTIFF of "
            "any size, in windows, and write a uint8 GeoTIFF on the same grid: 0 clear, 1 cloud, "
            "2 shadow. The s2cloudless backend (extra 'masks') gives clouds only (0/1)."
        ),
    )
    p.add_argument("s2", help="13-band Sentinel-2 L1C GeoTIFF (DN = reflectance x 10000)")
    p.add_argument("--out", required=True, help="mask GeoTIFF to write")
    p.add_argument("--backend", choices=("dsen2cr", "s2cloudless"), default="dsen2cr")
    p.add_argument("--window", type=int, default=1024, help="window side in pixels (default 1024)")
    p.set_defaults(func=_run_mask)


def _run_mask(args: argparse.Namespace) -> int:
    from cloudfree.masks.scene import run_mask_cli

    return run_mask_cli(args.s2, args.out, args.backend, args.window)


def _add_convert_keras(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-keras",
        help="convert a published Keras DSen2-CR checkpoint (.hdf5) to safetensors",
        description=(
            "Map one of the four published DSen2-CR checkpoints (SAR/no-SAR x CARL/L1, Keras "
            "2.2 HDF5, save_weights or full-model files) into cloudfree's model and write it as "
            "safetensors. The variant and size are read from the file. Needs h5py: "
            'pip install "cloudfree[keras]".'
        ),
    )
    p.add_argument("weights", help="Keras .hdf5 checkpoint")
    p.add_argument("out", help="safetensors file to write")
    p.add_argument(
        "--sar",
        dest="include_sar",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="require the SAR (--sar) or no-SAR (--no-sar) variant (default: read from the file)",
    )
    p.set_defaults(func=_run_convert_keras)


def _run_convert_keras(args: argparse.Namespace) -> int:
    from cloudfree.models.keras_import import convert_keras

    s = convert_keras(args.weights, args.out, include_sar=args.include_sar)
    print(
        f"{s['model']}: num_layers={s['num_layers']} feature_size={s['feature_size']} "
        f"include_sar={s['include_sar']}; {s['tensors']} tensors -> {s['out']}"
    )
    return 0


def _add_convert_uncrtaints(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-uncrtaints",
        help="convert a published UnCRtainTS checkpoint (.pth.tar + conf.json) to safetensors",
        description=(
            "Map a mono-temporal UnCRtainTS checkpoint (PatrickTUM/UnCRtainTS, model.pth.tar) "
            "into cloudfree's model, built from the flags of its conf.json, and write it as "
            "safetensors. Every tensor must map to exactly one of ours: anything unmapped, "
            "missing or of another shape is refused by name. Its scaling (S2 / 10000, S1 "
            "[-25, 0] dB to [0, 1]) travels with the weights."
        ),
    )
    p.add_argument("checkpoint", help="upstream checkpoint, e.g. monotemporalL2/model.pth.tar")
    p.add_argument("--conf", required=True, help="the conf.json saved beside the checkpoint")
    p.add_argument("--out", required=True, help="safetensors file to write")
    p.set_defaults(func=_run_convert_uncrtaints)


def _run_convert_uncrtaints(args: argparse.Namespace) -> int:
    from cloudfree.models.uncrtaints_import import convert_uncrtaints

    s = convert_uncrtaints(args.checkpoint, args.conf, args.out)
    var = "mean only" if s["covmode"] is None else f"mean + variance ({s['covmode']})"
    print(
        f"{s['model']}: {s['parameters']:,} parameters, {var}, include_sar={s['include_sar']}; "
        f"{s['tensors']} tensors -> {s['out']}"
    )
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job on an embedded default: a synthetic cloudy scene made clear",
        description=(
            "Synthesise a cloudy scene with known truth, mask it, remove the clouds with the "
            "best bundled model (the hybrid: mask-fill inpainting then DSen2-CR), score the "
            "result against the truth beside identity, mask-fill and the SAR hybrid; writes "
            "prediction.tif, panel.png, summary.json."
        ),
    )
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--size", type=int, default=640, help="scene side in pixels (default 640)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-sar", action="store_true", help="do not also score the SAR hybrid (hybrid-sar)"
    )
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from cloudfree.demo import run_demo

    run_demo(args.out, size=args.size, seed=args.seed, sar=not args.no_sar)
    return 0


def _commands() -> tuple[Callable[[argparse._SubParsersAction], None], ...]:
    """Every subcommand's parser adder, in pipeline order. Commands that live in their own
    modules are imported here, when the parser is built, not at import time (each of those
    modules keeps its heavy imports lazy)."""
    from cloudfree.data.sentinel import cli as safe_cli
    from cloudfree.predict import cli as predict_cli
    from cloudfree.predict import inpaint_cli
    from cloudfree.viewer import cli as view_cli
    from cloudfree.viewer import render_cli
    from cloudfree.weights import cli as weights_cli

    return (
        _add_synth,
        _add_index,
        _add_pack,
        _add_train,
        _add_evaluate,
        _add_compare,
        _add_replicate,
        _add_mask,
        safe_cli.add_parser,
        inpaint_cli.add_parser,
        predict_cli.add_parser,
        render_cli.add_parser,
        view_cli.add_parser,
        _add_convert_keras,
        _add_convert_uncrtaints,
        weights_cli.add_parser,
        _add_demo,
    )


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (used by ``main`` and by the docs)."""
    parser = argparse.ArgumentParser(
        prog="cloudfree",
        description="Cloud removal for Sentinel-2 with Sentinel-1 SAR fusion (DSen2-CR).",
    )
    parser.add_argument("--version", action="version", version=f"cloudfree {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _commands():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 bad input, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (CloudfreeError, ImportError) as e:
        # ImportError: an optional extra is missing; the message says what to install.
        print(f"cloudfree {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cloudfree {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
