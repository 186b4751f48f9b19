"""Write the UnCRtainTS equivalence fixture from the upstream implementation.

Runs ``PatrickTUM/UnCRtainTS``'s own network code (``model/src/backbones/uncrtaints.py``) from a
local clone, on a small seeded mono-temporal configuration, and writes what
``tests/models/test_uncrtaints_import.py`` compares cloudfree's converter and model against:

- ``model.pth.tar``: the checkpoint in upstream's layout (``state_dict`` with ``netG.`` keys and
  ``state_dict_G``, as ``model_utils.save_model`` writes them), after a few training-mode
  passes so that the batch-norm running statistics are not the initial ones;
- ``conf.json``: the flags of that configuration, as ``train_reconstruct.py`` saves them;
- ``io.safetensors``: the input (scaled to [0, 1] as upstream's loader does, S1 first), and
  upstream's mean and variance, rescaled by ``1 / scale_by`` and ``1 / scale_by**2`` as
  ``BaseModel.rescale`` does; the commit of the clone is in its metadata.

With ``--temporal`` the configuration is multi-temporal (``pretrain`` false: the L-TAE over
three dates, attention-group aggregation, the date encoding on) and ``io.safetensors`` holds
three cases: a batch without padding at 36 px (``*``), the same with one date of the second
sample all zeros (upstream's temporal padding, ``*_pad``), and a 32 px sample (the attention
grid's own size, ``*_32``), inputs as integer DN (``DN / 10000`` is the input); the days of each S1 and S2 date since Sentinel-1A's launch; and,
in its metadata, the parameter count of the README's multi-temporal configuration built by
upstream's code (W 128, 16 heads, d_model 256, SAR, 13 + 13 outputs).

Nothing of the upstream code is copied into cloudfree: the clone is imported from its path.

Usage::

    git clone https://github.com/PatrickTUM/UnCRtainTS /tmp/UnCRtainTS
    python scripts/uncrtaints_fixture.py /tmp/UnCRtainTS tests/models/data/uncrtaints
    python scripts/uncrtaints_fixture.py /tmp/UnCRtainTS tests/models/data/uncrtaints_mt \
        --temporal
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

#: The small configuration: one encoder and two decoder MBConv blocks of width 16, the
#: Gaussian-NLL head (13 means + 13 variances), scale_by 10 as the published models.
CONF = {
    "model": "uncrtaints",
    "experiment_name": "fixture",
    "pretrain": True,
    "input_t": 1,
    "use_sar": True,
    "block_type": "mbconv",
    "encoder_widths": [16],
    "decoder_widths": [16, 16],
    "out_conv": [26],
    "mean_nonLinearity": True,
    "var_nonLinearity": "softplus",
    "covmode": "diag",
    "encoder_norm": "group",
    "decoder_norm": "batch",
    "scale_by": 10.0,
    "separate_out": False,
    "padding_mode": "reflect",
    "pad_value": 0,
    "n_head": 1,
    "d_model": 256,
    "d_k": 4,
    "agg_mode": "att_group",
    "positional_encoding": False,
    "use_v": False,
    "loss": "MGNLL",
}
#: The multi-temporal one: three dates, four heads over the 16 channels, the date encoding.
CONF_MT = CONF | {
    "experiment_name": "fixture_mt",
    "pretrain": False,
    "input_t": 3,
    "n_head": 4,
    "d_model": 32,
    "positional_encoding": True,
}
SEED = 14
SIZE = 16
SIZE_MT = 36  # above the 32 px attention grid, not a multiple of it


def _build(UNCRTAINTS, c: dict, input_dim: int = 15):  # noqa: ANN001, N803, ANN202
    return UNCRTAINTS(
        input_dim=input_dim, encoder_widths=c["encoder_widths"],
        decoder_widths=c["decoder_widths"], out_conv=c["out_conv"],
        out_nonlin_mean=c["mean_nonLinearity"], out_nonlin_var=c["var_nonLinearity"],
        agg_mode=c["agg_mode"], encoder_norm=c["encoder_norm"], decoder_norm=c["decoder_norm"],
        n_head=c["n_head"], d_model=c["d_model"], d_k=c["d_k"], pad_value=c["pad_value"],
        padding_mode=c["padding_mode"], positional_encoding=c["positional_encoding"],
        covmode=c["covmode"], scale_by=c["scale_by"], separate_out=c["separate_out"],
        use_v=c["use_v"], block_type=c["block_type"], is_mono=c["pretrain"],
    )  # fmt: skip


def _save_checkpoint(net, c: dict, out: Path) -> None:  # noqa: ANN001
    state = net.state_dict()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"epoch": 1, "state_dict": {f"netG.{k}": v for k, v in state.items()},
         "state_dict_G": state},
        out / "model.pth.tar",
    )  # fmt: skip
    (out / "conf.json").write_text(json.dumps(c, indent=4) + "\n", encoding="utf-8")


def temporal(UNCRTAINTS, weight_init, out: Path, commit: str) -> None:  # noqa: ANN001, N803
    """The multi-temporal fixture (module docstring)."""
    c = CONF_MT
    torch.manual_seed(SEED)
    net = _build(UNCRTAINTS, c)
    net.apply(weight_init)
    net.train()
    t, sb = c["input_t"], c["scale_by"]
    with torch.no_grad():
        for _ in range(4):
            days = torch.randint(1000, 2500, (4, t)).float()
            net(sb * torch.rand(4, t, 15, SIZE_MT, SIZE_MT), batch_positions=days)
    net.eval()
    tensors: dict[str, torch.Tensor] = {}
    s2_days = torch.tensor([[1500, 1523, 1571], [1610, 1630, 1633]])
    s1_days = s2_days + torch.tensor([[1, 0, -2], [2, 1, 0]])
    # prepare_data_multi: the position of a date is the mean of its S1 and S2 days
    positions = torch.stack((s1_days, s2_days)).float().mean(dim=0)
    cases = (("", 2, SIZE_MT, False), ("_pad", 2, SIZE_MT, True), ("_32", 1, 32, False))
    for suffix, b, size, pad in cases:
        dn = torch.randint(0, 10001, (b, t, 15, size, size), dtype=torch.int16)
        if pad:
            dn[1, 1] = 0  # a padded date (upstream's pad_value)
        x = dn.float() / 10000  # S1 (2) then S2 (13), in [0, 1]
        with torch.no_grad():
            y = net(sb * x, batch_positions=positions[:b])[:, 0]
        tensors |= {f"s1{suffix}": dn[:, :, :2].contiguous(), f"s2{suffix}": dn[:, :, 2:].contiguous(),
                    f"mean{suffix}": (y[:, :13] / sb).contiguous(),
                    f"var{suffix}": (y[:, 13:] / sb**2).contiguous()}  # fmt: skip
    tensors |= {"s2_days": s2_days, "s1_days": s1_days}
    _save_checkpoint(net, c, out)
    published = CONF_MT | {"encoder_widths": [128], "decoder_widths": [128] * 5, "n_head": 16,
                           "d_model": 256}  # fmt: skip
    n_published = sum(p.numel() for p in _build(UNCRTAINTS, published).parameters())
    save_file(tensors, str(out / "io.safetensors"), metadata={
        "upstream": "PatrickTUM/UnCRtainTS", "commit": commit, "seed": str(SEED),
        "published_parameters": str(n_published),
    })  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("upstream", type=Path, help="local clone of PatrickTUM/UnCRtainTS")
    parser.add_argument("out", type=Path, help="folder to write the fixture into")
    parser.add_argument("--temporal", action="store_true", help="the multi-temporal fixture")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "-C", str(args.upstream), "rev-parse", "HEAD"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    sys.path.insert(0, str(args.upstream / "model"))
    from src.backbones.uncrtaints import UNCRTAINTS  # the upstream network, from the clone
    from src.learning.weight_init import weight_init

    if args.temporal:
        temporal(UNCRTAINTS, weight_init, args.out, commit)
        print(f"multi-temporal fixture from PatrickTUM/UnCRtainTS@{commit} -> {args.out}")
        return 0
    torch.manual_seed(SEED)
    c = CONF
    net = _build(UNCRTAINTS, c)
    net.apply(weight_init)  # train_reconstruct.py's initialisation
    net.train()
    with torch.no_grad():
        for _ in range(4):  # batch-norm running statistics away from (0, 1)
            net(c["scale_by"] * torch.rand(4, 1, 15, SIZE, SIZE))
    net.eval()
    x = torch.rand(2, 1, 15, SIZE, SIZE)  # S1 (2) then S2 (13), in [0, 1]
    with torch.no_grad():
        out = net(c["scale_by"] * x)[:, 0]
    mean = out[:, :13] / c["scale_by"]
    var = out[:, 13:] / c["scale_by"] ** 2
    _save_checkpoint(net, c, args.out)
    save_file(
        {"s1": x[:, 0, :2].contiguous(), "s2": x[:, 0, 2:].contiguous(),
         "mean": mean.contiguous(), "var": var.contiguous()},
        str(args.out / "io.safetensors"),
        metadata={"upstream": "PatrickTUM/UnCRtainTS", "commit": commit, "seed": str(SEED)},
    )  # fmt: skip
    print(f"fixture from PatrickTUM/UnCRtainTS@{commit} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
