"""Multi-temporal UnCRtainTS: the converter and network against the upstream implementation's
own output (three dates, with and without a padded date, above and at the attention grid), its
size against a hand count, the date encoding against its formula, and its errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from cloudfree.errors import DataError
from cloudfree.models import build_model, load_weights
from cloudfree.models.contract import contract_of, forward, model_inputs
from cloudfree.models.uncrtaints_import import convert_uncrtaints
from cloudfree.models.uncrtaints_mt import PositionalEncoder, UnCRtainTSMT, UnCRtainTSMTConfig
from tests.models.test_uncrtaints import conf_with

#: Written by ``scripts/uncrtaints_fixture.py --temporal`` from PatrickTUM/UnCRtainTS at commit
#: 5e1f1b58e993645e765b64e10b6e9c7ff828b36f (also in io.safetensors' metadata).
FIXTURE = Path(__file__).parent / "data" / "uncrtaints_mt"


def _io() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = str(FIXTURE / "io.safetensors")
    with safe_open(path, framework="pt") as f:
        meta = dict(f.metadata())
    return load_file(path), meta


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> UnCRtainTSMT:
    out = tmp_path_factory.mktemp("mt") / "mt.safetensors"
    summary = convert_uncrtaints(FIXTURE / "model.pth.tar", FIXTURE / "conf.json", out)
    assert summary["model"] == "uncrtaints-mt" and summary["covmode"] == "diag"
    model = load_weights(out)
    assert isinstance(model, UnCRtainTSMT)
    return model


@pytest.mark.parametrize("case", ["", "_pad", "_32"])
def test_converted_checkpoint_reproduces_upstream_output(converted, case):
    io, meta = _io()
    assert meta["commit"] == "5e1f1b58e993645e765b64e10b6e9c7ff828b36f"
    s2, s1 = io[f"s2{case}"].float() / 10000, io[f"s1{case}"].float() / 10000
    b = s2.shape[0]
    if case == "_pad":
        assert not s2[1, 1].any() and not s1[1, 1].any()  # a padded date upstream
    with torch.no_grad():
        pred = converted(s2, s1, s2_days=io["s2_days"][:b], s1_days=io["s1_days"][:b],
                         return_variance=True)  # fmt: skip
    torch.testing.assert_close(pred[:, :13], io[f"mean{case}"], rtol=0, atol=1e-5)
    torch.testing.assert_close(pred[:, 13:], io[f"var{case}"], rtol=1e-4, atol=1e-8)


def test_the_contract_calls_it_with_the_series_and_absolute_days(converted):
    io, _ = _io()
    s2, s1 = io["s2"].float() / 10000, io["s1"].float() / 10000
    c = contract_of(converted)
    assert c.temporal and c.scaling == "reflectance"
    assert c.input_keys == ("s2_series", "s1_series", "dates", "s2_days", "s1_days")
    batch = {"s2_series": s2, "s1_series": s1, "dates": torch.zeros(2, 3),
             "s2_days": io["s2_days"], "s1_days": io["s1_days"]}  # fmt: skip
    with torch.no_grad():
        out = forward(converted, model_inputs(c, batch), variance=True)
    torch.testing.assert_close(out[:, :13], io["mean"], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="no s2_days .*Sentinel-1A's launch"):
        model_inputs(c, {k: v for k, v in batch.items() if k != "s2_days"})


def test_published_configuration_size_is_the_mono_model_plus_the_ltae():
    # By hand, the L-TAE of W 128, 16 heads, d_model 256, d_k 4: in_norm 2 * 128 + inconv
    # 128 * 256 + 256 + Q 16 * 4 + fc1_k 256 * 64 + 64 = 49,792; the rest is the mono-temporal
    # 520,218. Upstream's own count of the same configuration is in the fixture's metadata.
    model = build_model("uncrtaints-mt")
    n = sum(p.numel() for p in model.parameters())
    assert n == 520_218 + 49_792 == int(_io()[1]["published_parameters"])
    assert model.config.input_t == 3 and model.config.n_head == 16


def test_date_encoding_is_the_sinusoid_of_upstream():
    enc = PositionalEncoder(4, 1000, repeat=2)
    got = enc(torch.tensor([[0.0, 100.0]]))
    assert got.shape == (1, 2, 8)
    f1 = 1000 ** (2 / 4)  # frequencies 1, 1, 1000**0.5, 1000**0.5 (i // 2 pairs)
    want = [math.sin(100), math.cos(100), math.sin(100 / f1), math.cos(100 / f1)]
    torch.testing.assert_close(got[0, 1], torch.tensor(want * 2), rtol=0, atol=1e-5)
    torch.testing.assert_close(got[0, 0], torch.tensor([0.0, 1.0, 0.0, 1.0] * 2))


def test_output_does_not_depend_on_the_order_of_the_dates():
    torch.manual_seed(3)
    model = UnCRtainTSMT(encoder_widths=[8], decoder_widths=[8], n_head=2, d_model=8).eval()
    s2, s1 = torch.rand(1, 3, 13, 40, 40), torch.rand(1, 3, 2, 40, 40)
    days = torch.tensor([[1500, 1530, 1600]])
    perm = [2, 0, 1]
    with torch.no_grad():
        a = model(s2, s1, s2_days=days, s1_days=days)
        b = model(s2[:, perm], s1[:, perm], s2_days=days[:, perm], s1_days=days[:, perm])
        c = model(s2, s1, s2_days=days[:, perm], s1_days=days[:, perm])  # days swapped
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert (a - c).abs().max() > 1e-4  # the dates matter


def test_macs_match_a_count_from_forward_hooks():
    cfg = UnCRtainTSMTConfig(encoder_widths=(16,), decoder_widths=(16, 16), n_head=4,
                             d_model=32)  # fmt: skip
    model = UnCRtainTSMT(**cfg.to_dict()).eval()
    counted = []

    def hook(m: nn.Module, inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        if isinstance(m, nn.Conv2d | nn.Conv1d):
            k = math.prod(m.kernel_size) * m.in_channels // m.groups
            counted.append(out.numel() * k)
        else:
            counted.append(out.numel() * m.in_features)

    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Conv1d | nn.Linear):
            m.register_forward_hook(hook)
    days = torch.tensor([[1500, 1510, 1520, 1530]])
    with torch.no_grad():
        model(torch.rand(1, 4, 13, 64, 64), torch.rand(1, 4, 2, 64, 64), s2_days=days,
              s1_days=days, return_variance=True)  # fmt: skip
    # the weighted sum over dates (one multiply-add per date and feature) is not a layer
    assert cfg.macs(64, 64, dates=4) == sum(counted) + 4 * 64 * 64 * 16


def test_bad_inputs_say_what_is_expected():
    model = UnCRtainTSMT(encoder_widths=[8], decoder_widths=[8], n_head=2, d_model=8).eval()
    s2, s1, days = torch.rand(1, 2, 13, 32, 32), torch.rand(1, 2, 2, 32, 32), torch.ones(1, 2)
    with pytest.raises(ValueError, match=r"s1_days must be \(1, 2\).*Sentinel-1A"):
        model(s2, s1, s2_days=days)
    with pytest.raises(ValueError, match="at least that large, got 16 x 16"):
        model(s2[..., :16, :16], s1[..., :16, :16], s2_days=days, s1_days=days)
    with pytest.raises(ValueError, match=r"s2_series must be \(B, T, 13, H, W\)"):
        model(s2[:, 0], s1, s2_days=days, s1_days=days)
    with pytest.raises(ValueError, match="needs s1_series"):
        model(s2, None, s2_days=days, s1_days=days)
    with pytest.raises(ValueError, match="n_head .* must divide the width"):
        UnCRtainTSMT(encoder_widths=[12], decoder_widths=[12], n_head=8)
    with pytest.raises(ValueError, match="agg_mode must be one of"):
        UnCRtainTSMTConfig(agg_mode="max")


def _conf(tmp_path: Path, **changes: object) -> Path:
    return conf_with(FIXTURE, tmp_path, **changes)


def test_an_ltae_with_values_is_refused_by_name(tmp_path):
    with pytest.raises(DataError, match="use_v"):
        convert_uncrtaints(FIXTURE / "model.pth.tar", _conf(tmp_path, use_v=True),
                           tmp_path / "x.st")  # fmt: skip
    with pytest.raises(DataError, match=r"temporal_encoder\.attention_heads\.Q"):
        convert_uncrtaints(FIXTURE / "model.pth.tar", _conf(tmp_path, d_k=8), tmp_path / "x.st")
    assert not (tmp_path / "x.st").exists()
