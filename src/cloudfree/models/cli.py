"""``cloudfree convert-keras`` and ``convert-uncrtaints``: published checkpoints to safetensors.

Only light imports at module level: ``cloudfree --help`` builds every parser."""

from __future__ import annotations

import argparse


def add_convert_keras(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=run_convert_keras)


def run_convert_keras(args: argparse.Namespace) -> int:
    from cloudfree.models.keras_import import convert_keras
    from cloudfree.outputs import check_outputs

    check_outputs({"OUT": args.out}, [args.weights], example="model.safetensors")
    s = convert_keras(args.weights, args.out, include_sar=args.include_sar)
    print(
        f"{s['model']}: num_layers={s['num_layers']} feature_size={s['feature_size']} "
        f"include_sar={s['include_sar']}; {s['tensors']} tensors -> {s['out']}"
    )
    return 0


def add_convert_uncrtaints(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=run_convert_uncrtaints)


def run_convert_uncrtaints(args: argparse.Namespace) -> int:
    from cloudfree.models.uncrtaints_import import convert_uncrtaints
    from cloudfree.outputs import check_outputs

    check_outputs({"--out": args.out}, [args.checkpoint, args.conf], example="model.safetensors")
    s = convert_uncrtaints(args.checkpoint, args.conf, args.out)
    var = "mean only" if s["covmode"] is None else f"mean + variance ({s['covmode']})"
    print(
        f"{s['model']}: {s['parameters']:,} parameters, {var}, include_sar={s['include_sar']}; "
        f"{s['tensors']} tensors -> {s['out']}"
    )
    return 0
