"""DSen2-CR network: parameter counts, forward against a numpy reference, init, input checks,
registry."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

from cloudfree.models import (
    DSen2CR,
    DSen2CRConfig,
    build_model,
    list_models,
    register_model,
)


def _np_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3x3 'same' cross-correlation, torch layout: x (C, H, W), w (O, C, 3, 3) -> (O, H, W)."""
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    win = sliding_window_view(xp, (3, 3), axis=(1, 2))  # (C, H, W, 3, 3)
    return np.einsum("chwab,ocab->ohw", win, w) + b[:, None, None]


def _np_forward(model: DSen2CR, s2: np.ndarray, s1: np.ndarray | None) -> np.ndarray:
    """The network of spec section 4, in float64 numpy, from the model's own parameters."""
    p = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    x = np.concatenate([s2, s1]) if s1 is not None else s2
    x = np.maximum(_np_conv(x, p["head.weight"], p["head.bias"]), 0)
    for i in range(model.config.num_layers):
        r = np.maximum(_np_conv(x, p[f"body.{i}.conv1.weight"], p[f"body.{i}.conv1.bias"]), 0)
        x = x + 0.1 * _np_conv(r, p[f"body.{i}.conv2.weight"], p[f"body.{i}.conv2.bias"])
    return _np_conv(x, p["tail.weight"], p["tail.bias"]) + s2


def _randomise_biases(model: nn.Module, seed: int = 0) -> None:
    # He init sets biases to zero; give them values so the reference checks them too.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.2 - 0.1)


@pytest.mark.parametrize(("include_sar", "expected"), [(True, 18_947_341), (False, 18_942_733)])
def test_full_size_parameter_count(include_sar: bool, expected: int) -> None:
    model = DSen2CR(include_sar=include_sar)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.config.num_parameters == expected
    # 34 convolutions: head + 2 x 16 blocks + tail, as in the saved Keras graph.
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 34


def test_default_config_is_the_paper() -> None:
    cfg = DSen2CRConfig()
    assert (cfg.include_sar, cfg.num_layers, cfg.feature_size) == (True, 16, 256)
    assert cfg.in_channels == 15
    assert DSen2CRConfig(include_sar=False).in_channels == 13


def test_conv_flops_formula() -> None:
    cfg = DSen2CRConfig()
    macs_per_px = 9 * (15 * 256 + 32 * 256 * 256 + 256 * 13)
    assert cfg.conv_flops(128, 128) == 2 * macs_per_px * 128 * 128
    small = DSen2CRConfig(include_sar=False, num_layers=1, feature_size=4)
    assert small.conv_flops(2, 3) == 2 * 9 * (13 * 4 + 4 * 4 * 2 + 4 * 13) * 6


@pytest.mark.parametrize("include_sar", [True, False])
def test_forward_matches_numpy_reference(include_sar: bool) -> None:
    torch.manual_seed(0)
    model = DSen2CR(include_sar=include_sar, num_layers=2, feature_size=8).eval()
    _randomise_biases(model)
    rng = np.random.default_rng(1)
    s2 = rng.uniform(0, 2, (2, 13, 16, 16)).astype(np.float32)
    s1 = rng.uniform(0, 2, (2, 2, 16, 16)).astype(np.float32) if include_sar else None
    with torch.no_grad():
        out = model(torch.from_numpy(s2), None if s1 is None else torch.from_numpy(s1))
    assert out.shape == (2, 13, 16, 16) and out.dtype == torch.float32
    for b in range(2):
        ref = _np_forward(model, s2[b].astype(np.float64), None if s1 is None else s1[b])
        np.testing.assert_allclose(out[b].numpy(), ref, atol=1e-5, rtol=0)


def test_long_skip_returns_input_when_tail_is_zero() -> None:
    model = DSen2CR(num_layers=1, feature_size=8)
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
    s2 = torch.rand(1, 13, 12, 12)
    assert torch.equal(model(s2, torch.rand(1, 2, 12, 12)), s2)


def test_sar_input_is_used_and_concatenated_after_optical() -> None:
    torch.manual_seed(0)
    model = DSen2CR(num_layers=1, feature_size=8)
    s2, s1 = torch.rand(1, 13, 12, 12), torch.rand(1, 2, 12, 12)
    with torch.no_grad():
        # Zero the head's weights on the two last input channels: S1 must then have no effect.
        model.head.weight[:, 13:] = 0
        a, b = model(s2, s1), model(s2, s1 + 1)
        assert torch.equal(a, b)
        model.head.weight[:, 13:] = 1
        assert not torch.allclose(model(s2, s1), model(s2, s1 + 1))


def test_he_uniform_init_and_zero_bias() -> None:
    torch.manual_seed(0)
    model = DSen2CR(num_layers=1, feature_size=32)
    for name, m in model.named_modules():
        if not isinstance(m, nn.Conv2d):
            continue
        fan_in = m.in_channels * 9
        bound = math.sqrt(6 / fan_in)  # Keras he_uniform
        w = m.weight.detach()
        assert w.abs().max() <= bound, name
        assert w.abs().max() > 0.95 * bound, name  # the torch default would stop at bound/sqrt(6)
        assert torch.count_nonzero(m.bias) == 0, name
    # Uniform on [-bound, bound] has std bound / sqrt(3).
    w = model.body[0].conv1.weight.detach()
    assert float(w.std()) == pytest.approx(math.sqrt(6 / (32 * 9)) / math.sqrt(3), rel=0.05)


def test_input_errors() -> None:
    sar = DSen2CR(num_layers=1, feature_size=4)
    nosar = DSen2CR(include_sar=False, num_layers=1, feature_size=4)
    s2, s1 = torch.rand(1, 13, 8, 8), torch.rand(1, 2, 8, 8)
    with pytest.raises(ValueError, match="needs s1"):
        sar(s2)
    with pytest.raises(ValueError, match="takes no s1"):
        nosar(s2, s1)
    with pytest.raises(ValueError, match=r"s2_cloudy must be \(B, 13, H, W\)"):
        sar(torch.rand(1, 15, 8, 8), s1)
    with pytest.raises(ValueError, match=r"s2_cloudy must be"):
        nosar(torch.rand(13, 8, 8))
    with pytest.raises(ValueError, match=r"s1 must be \(B, 2, H, W\)"):
        sar(s2, torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="same batch size and the same H, W"):
        sar(s2, torch.rand(1, 2, 8, 9))
    with pytest.raises(ValueError, match="same batch size"):
        sar(s2, torch.rand(2, 2, 8, 8))
    assert nosar(s2).shape == (1, 13, 8, 8)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="num_layers"):
        DSen2CR(num_layers=-1)
    with pytest.raises(ValueError, match="feature_size"):
        DSen2CR(feature_size=0)
    with pytest.raises(TypeError, match="include_sar"):
        DSen2CRConfig(include_sar=1)  # type: ignore[arg-type]


def test_registry_builds_both_variants() -> None:
    assert {"dsen2cr", "dsen2cr-nosar"} <= set(list_models())
    sar = build_model("dsen2cr", num_layers=2, feature_size=8)
    nosar = build_model("dsen2cr-nosar", num_layers=2, feature_size=8)
    assert isinstance(sar, DSen2CR) and sar.include_sar and sar.registry_name == "dsen2cr"
    assert isinstance(nosar, DSen2CR) and not nosar.include_sar
    assert nosar.registry_name == "dsen2cr-nosar"
    assert nosar.head.in_channels == 13
    with torch.device("meta"):  # the paper's defaults, without allocating 76 MB
        assert build_model("dsen2cr").config == DSen2CRConfig()
    with pytest.raises(ValueError, match="no SAR input"):
        build_model("dsen2cr-nosar", include_sar=True)
    with pytest.raises(KeyError, match="dsen2cr"):
        build_model("no-such-model")


def test_register_model_plugs_in_and_refuses_clashes(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudfree.models import registry

    # A private copy of the registry, so the test model does not leak into other tests.
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_model("test-tiny-conv")
    def tiny(width: int = 4) -> nn.Module:
        return nn.Conv2d(13, width, 1)

    assert "test-tiny-conv" in list_models()
    assert build_model("test-tiny-conv", width=3).out_channels == 3
    with pytest.raises(ValueError, match="already registered"):
        register_model("dsen2cr")(tiny)
    with pytest.raises(ValueError, match="non-empty"):
        register_model("")


def test_import_is_cheap_and_side_effect_free() -> None:
    code = (
        "import sys, os; before = dict(os.environ); import cloudfree.models as m; "
        "assert 'h5py' not in sys.modules, 'h5py imported'; "
        "assert 'safetensors' not in sys.modules, 'safetensors imported'; "
        "assert dict(os.environ) == before; print(m.list_models())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "dsen2cr-nosar" in out.stdout
