"""The hybrid network: its inputs, its skip, its start, its weights file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cloudfree.models import HybridConfig, HybridDSen2CR, build_model, load_weights, save_weights


def _inputs(b: int = 2, size: int = 16, sar: bool = True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch = {
        "s2_cloudy": torch.rand(b, 13, size, size, generator=g) * 3,
        "s2_inpainted": torch.rand(b, 13, size, size, generator=g),
        "mask": (torch.rand(b, size, size, generator=g) > 0.5).to(torch.uint8),
    }
    if sar:
        batch["s1"] = torch.rand(b, 2, size, size, generator=g) * 2
    return batch


def test_starts_as_its_skip_exactly() -> None:
    # Zero tail: the untrained hybrid returns the inpainted image (or the cloudy one).
    x = _inputs()
    for skip, key in (("inpainted", "s2_inpainted"), ("cloudy", "s2_cloudy")):
        model = HybridDSen2CR(num_layers=2, feature_size=8, skip=skip)
        out = model(x["s2_cloudy"], x["s1"], s2_inpainted=x["s2_inpainted"], mask=x["mask"])
        assert torch.equal(out, x[key])


@pytest.mark.parametrize(
    ("kwargs", "channels"),
    [
        ({}, 13 + 13 + 2 + 1),
        ({"include_sar": False}, 13 + 13 + 1),
        ({"mask_channel": False}, 13 + 13 + 2),
        ({"cloudy_input": False, "mask_channel": False, "include_sar": False}, 13),
    ],
)
def test_input_channels(kwargs: dict, channels: int) -> None:
    model = HybridDSen2CR(num_layers=1, feature_size=8, **kwargs)
    assert model.config.in_channels == channels == model.head.in_channels
    assert model.extra_inputs == (
        ("s2_inpainted", "mask") if model.config.mask_channel else ("s2_inpainted",)
    )


def test_every_input_reaches_the_output() -> None:
    torch.manual_seed(0)
    model = HybridDSen2CR(num_layers=1, feature_size=8)
    torch.nn.init.normal_(model.tail.weight, std=0.1)
    x = _inputs(b=1)
    base = model(x["s2_cloudy"], x["s1"], s2_inpainted=x["s2_inpainted"], mask=x["mask"])
    for key in ("s2_cloudy", "s1", "mask"):
        y = dict(x)
        y[key] = torch.zeros_like(x[key])
        out = model(y["s2_cloudy"], y["s1"], s2_inpainted=y["s2_inpainted"], mask=y["mask"])
        assert not torch.allclose(out, base), key


def test_wrong_inputs_are_explained() -> None:
    model = HybridDSen2CR(num_layers=1, feature_size=8)
    x = _inputs()
    with pytest.raises(ValueError, match="needs s1"):
        model(x["s2_cloudy"], s2_inpainted=x["s2_inpainted"], mask=x["mask"])
    with pytest.raises(ValueError, match="takes the cloud/shadow mask"):
        model(x["s2_cloudy"], x["s1"], s2_inpainted=x["s2_inpainted"])
    with pytest.raises(ValueError, match="must have the shape of s2_cloudy"):
        model(x["s2_cloudy"], x["s1"], s2_inpainted=x["s2_inpainted"][:, :, :8], mask=x["mask"])
    with pytest.raises(ValueError, match="skip must be one of"):
        HybridConfig(skip="both")
    with pytest.raises(ValueError, match="unknown inpainting method"):
        HybridConfig(inpaint="telea")
    with pytest.raises(ValueError, match="reads S1"):
        HybridConfig(include_sar=False, inpaint="sar-match")
    with pytest.raises(ValueError, match="no SAR input"):
        build_model("hybrid-nosar", include_sar=True)


def test_weights_round_trip_with_its_config(tmp_path: Path) -> None:
    model = build_model("hybrid-nosar", num_layers=2, feature_size=8, inpaint="push-pull")
    torch.nn.init.normal_(model.tail.weight, std=0.1)
    path = save_weights(model, tmp_path / "h.safetensors")
    back = load_weights(path)
    assert isinstance(back, HybridDSen2CR)
    assert back.config == model.config and back.registry_name == "hybrid-nosar"
    x = _inputs(sar=False)
    with torch.no_grad():
        a = model(x["s2_cloudy"], s2_inpainted=x["s2_inpainted"], mask=x["mask"])
        b = back(x["s2_cloudy"], s2_inpainted=x["s2_inpainted"], mask=x["mask"])
    torch.testing.assert_close(a, b)
