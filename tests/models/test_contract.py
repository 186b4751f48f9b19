"""The model contract (issue 31, step 0): what each network declares, and the one forward call
every caller uses (method, training loop, validation, OpenVINO export)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cloudfree.config import ModelConfig, model_family
from cloudfree.models import build_model
from cloudfree.models.contract import ModelContract, contract_of, forward, model_inputs

SMALL = {
    "dsen2cr": {"num_layers": 1, "feature_size": 8},
    "dsen2cr-nosar": {"num_layers": 1, "feature_size": 8},
    "hybrid": {"num_layers": 1, "feature_size": 8},
    "hybrid-nosar": {"num_layers": 1, "feature_size": 8, "mask_channel": False},
    "uncrtaints": {"encoder_widths": [8], "decoder_widths": [8], "covmode": "diag"},
    "uncrtaints-nosar": {"encoder_widths": [8], "decoder_widths": [8], "covmode": None},
    "pix2pix": {"num_downs": 5, "ngf": 4},
}
EXPECTED = {  # include_sar, scaling, variance, extra inputs
    "dsen2cr": (True, "dsen2cr", False, ()),
    "dsen2cr-nosar": (False, "dsen2cr", False, ()),
    "hybrid": (True, "dsen2cr", False, ("s2_inpainted", "mask")),
    "hybrid-nosar": (False, "dsen2cr", False, ("s2_inpainted",)),
    "uncrtaints": (True, "reflectance", True, ()),
    "uncrtaints-nosar": (False, "reflectance", False, ()),
    "pix2pix": (True, "dsen2cr", False, ()),
}


def _batch(b: int = 2, side: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "s2_cloudy": torch.rand(b, 13, side, side, generator=g),
        "s1": torch.rand(b, 2, side, side, generator=g),
        "s2_inpainted": torch.rand(b, 13, side, side, generator=g),
        "mask": (torch.rand(b, side, side, generator=g) > 0.5).to(torch.uint8),
        "s2": torch.rand(b, 13, side, side, generator=g),  # the target: never read
    }


@pytest.mark.parametrize("name", sorted(SMALL))
def test_each_model_declares_its_contract(name: str) -> None:
    model = build_model(name, **SMALL[name])
    c = contract_of(model)
    assert (c.include_sar, c.scaling, c.predicts_variance, c.extra_inputs) == EXPECTED[name]
    assert not c.temporal
    assert c.needs_inpainting == name.startswith("hybrid")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_forward_is_the_models_own_call(name: str) -> None:
    """forward() on a batch equals the model called by hand as its docstring says."""
    torch.manual_seed(0)
    model = build_model(name, **SMALL[name]).eval()
    batch = _batch()
    inc, _, variance, extras = EXPECTED[name]
    args = (batch["s2_cloudy"], batch["s1"]) if inc else (batch["s2_cloudy"],)
    kwargs = {k: batch[k] for k in extras}
    with torch.no_grad():
        want = model(*args, **kwargs)
        got = forward(model, model_inputs(contract_of(model), batch))
        assert torch.equal(got, want) and got.shape == (2, 13, 32, 32)
        if variance:
            both = forward(model, model_inputs(contract_of(model), batch), variance=True)
            assert both.shape == (2, 26, 32, 32) and torch.equal(both[:, :13], want)


class _Wrapper(nn.Module):
    """Stands for DDP: the network under ``.module``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return self.module(*args, **kwargs)


def test_wrappers_are_looked_through() -> None:
    net = build_model("uncrtaints", **SMALL["uncrtaints"])
    assert contract_of(_Wrapper(_Wrapper(net))) == contract_of(net)


def test_a_missing_input_is_named_with_what_provides_it() -> None:
    model = build_model("hybrid", **SMALL["hybrid"])
    batch = _batch()
    del batch["s2_inpainted"]
    with pytest.raises(ValueError, match=r"no s2_inpainted \(the cloudy S2 inpainted"):
        model_inputs(contract_of(model), batch)
    sar = build_model("dsen2cr", **SMALL["dsen2cr"])
    with pytest.raises(ValueError, match="no s1 .*reads SAR"):
        forward(sar, {"s2_cloudy": batch["s2_cloudy"]})


def test_variance_only_from_a_model_that_predicts_it() -> None:
    model = build_model("dsen2cr", **SMALL["dsen2cr"])
    with pytest.raises(ValueError, match="predicts no variance"):
        forward(model, model_inputs(contract_of(model), _batch()), variance=True)


def test_model_inputs_moves_and_casts_images_only() -> None:
    c = ModelContract(include_sar=True, extra_inputs=("s2_inpainted", "mask"))
    batch = {k: v.double() if k != "mask" else v for k, v in _batch().items()}
    out = model_inputs(c, batch, "cpu", torch.channels_last)
    assert list(out) == ["s2_cloudy", "s1", "s2_inpainted", "mask"]  # the target is not read
    assert out["s2_cloudy"].dtype == torch.float32 and out["mask"].dtype == torch.uint8
    assert out["s2_cloudy"].is_contiguous(memory_format=torch.channels_last)


class _TemporalToy(nn.Module):
    """A temporal model as a new entry: the mean over dates weighted by closeness in time."""

    contract = ModelContract(include_sar=True, temporal=True)

    def forward(self, s2_series, s1_series, dates):  # noqa: ANN001, ANN201
        w = 1.0 / (1.0 + dates.abs().float())  # (B, T)
        w = (w / w.sum(1, keepdim=True))[:, :, None, None, None]
        return (s2_series * w).sum(1) + 0 * s1_series.sum()


def test_a_temporal_model_is_called_with_the_series_and_its_dates() -> None:
    g = torch.Generator().manual_seed(1)
    s2 = torch.rand(2, 3, 13, 8, 8, generator=g)
    batch = {"s2_series": s2, "s1_series": torch.rand(2, 3, 2, 8, 8, generator=g),
             "dates": torch.tensor([[-10, 0, 5], [-3, -1, 0]])}  # fmt: skip
    model = _TemporalToy()
    assert contract_of(model).input_keys == ("s2_series", "s1_series", "dates")
    out = forward(model, model_inputs(contract_of(model), batch))
    w0 = torch.tensor([1 / 11, 1.0, 1 / 6])
    w0 = w0 / w0.sum()
    assert torch.allclose(out[0], (s2[0] * w0[:, None, None, None]).sum(0))
    with pytest.raises(ValueError, match="no dates"):
        model_inputs(contract_of(model), {k: v for k, v in batch.items() if k != "dates"})


def test_a_temporal_model_is_not_run_on_one_image() -> None:
    from cloudfree.methods.model import ModelMethod

    with pytest.raises(ValueError, match="temporal model .* not on one image"):
        ModelMethod(_TemporalToy(), name="toy", device="cpu", backend="torch")


def test_contracts_are_checked() -> None:
    with pytest.raises(ValueError, match="scaling must be one of"):
        ModelContract(include_sar=False, scaling="dn")
    with pytest.raises(ValueError, match=r"unknown extra inputs \['cloud_prob'\]"):
        ModelContract(include_sar=False, extra_inputs=("cloud_prob",))


def test_a_module_without_a_contract_is_a_one_date_model() -> None:
    class Plain(nn.Module):
        config = {"include_sar": True}

    assert contract_of(Plain()) == ModelContract(include_sar=True)


def test_families_are_exact_names_not_prefixes() -> None:
    assert model_family("uncrtaints-nosar") == "uncrtaints"
    assert model_family("uncrtaints-mt") == "uncrtaints-mt"
    assert ModelConfig(name="uncrtaints").is_uncrtaints
    assert not ModelConfig(name="uncrtaints").is_temporal
    # the multi-temporal family is its own, listed by name among the UnCRtainTS ones
    assert ModelConfig(name="uncrtaints-mt-nosar").is_uncrtaints
    assert ModelConfig(name="uncrtaints-mt").is_temporal
    assert not ModelConfig(name="uncrtaints-mtx").is_uncrtaints
    assert not ModelConfig(name="uncrtaints-mtx").is_temporal
    assert ModelConfig(name="hybrid-nosar").is_hybrid
    assert not ModelConfig(name="hybridx").is_hybrid
