"""Inference set-up: NNPACK convolutions agree with the plain model; precision handling."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cloudfree.models import DSen2CR, load_weights, save_weights
from cloudfree.models.runtime import (
    NNPACKConv2d,
    has_depthwise_convs,
    inference_context,
    nnpack_available,
    prepare_for_inference,
    resolve_precision,
    use_nnpack,
)

needs_nnpack = pytest.mark.skipif(not nnpack_available(), reason="PyTorch built without NNPACK")


def _inputs(h: int = 40, w: int = 44) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 13, h, w, generator=g) * 2, torch.rand(2, 2, h, w, generator=g) * 2


@needs_nnpack
def test_prepare_for_inference_cpu_matches_plain_model() -> None:
    torch.manual_seed(0)
    plain = DSen2CR(num_layers=2, feature_size=8).eval()
    fast = prepare_for_inference(copy.deepcopy(plain), "cpu")
    convs = [m for m in fast.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6 and all(isinstance(m, NNPACKConv2d) for m in convs)
    assert list(fast.state_dict()) == list(plain.state_dict())
    s2, s1 = _inputs()
    with inference_context("cpu"):
        got = fast(s2, s1)
    with torch.no_grad():
        ref = plain(s2, s1)
    assert got.dtype == torch.float32 and not fast.training
    # Winograd/FFT rounding differs from direct convolution at float precision only.
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


@needs_nnpack
def test_nnpack_conv_gradients_match() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 5, 3, padding=1)
    fast = NNPACKConv2d.from_conv(copy.deepcopy(conv))
    x = torch.rand(3, 4, 40, 41, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    conv(x).square().sum().backward()
    fast(x2).square().sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fast.weight.grad, conv.weight.grad, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(fast.bias.grad, conv.bias.grad, atol=1e-3, rtol=1e-4)


def test_use_nnpack_shares_parameters_and_skips_unsupported_convs(tmp_path) -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.Conv2d(4, 4, 3, padding=1, groups=2),
        nn.Conv2d(4, 4, 1),  # a matrix product: oneDNN's, not NNPACK's
    )
    w0 = model[0].weight
    use_nnpack(model)
    assert isinstance(model[0], NNPACKConv2d) and model[0].weight is w0
    assert all(type(model[i]) is nn.Conv2d for i in (1, 2, 3))
    # A swapped DSen2-CR still saves and reloads as a plain DSen2-CR.
    dsen = use_nnpack(DSen2CR(num_layers=1, feature_size=4))
    loaded = load_weights(save_weights(dsen, tmp_path / "w.safetensors"))
    assert type(loaded.head) is nn.Conv2d
    assert torch.equal(loaded.head.weight, dsen.head.weight)


def test_nnpack_conv_falls_back_outside_its_cases() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    fast = NNPACKConv2d.from_conv(copy.deepcopy(conv))
    small = torch.rand(2, 3, 8, 8)  # under NNPACK_MIN_PIXELS: the direct convolution
    with torch.no_grad():
        assert torch.equal(fast(small), conv(small))
        x = torch.rand(1, 3, 40, 40, dtype=torch.float64)  # float64: plain path, bit-exact
        assert torch.equal(fast.double()(x), conv.double()(x))


@needs_nnpack
def test_nnpack_conv_really_runs_nnpack(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    real = torch._nnpack_spatial_convolution

    def spy(x: torch.Tensor, *args: object) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return real(x, *args)

    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", spy)
    fast = NNPACKConv2d.from_conv(nn.Conv2d(3, 4, 3, padding=1))
    with torch.no_grad():
        assert fast(torch.rand(3, 3, 40, 40)).shape == (3, 4, 40, 40)
    assert calls == [(1, 3, 40, 40)] * 3  # one image at a time


def test_precision_resolution_and_context() -> None:
    assert resolve_precision("auto") == "fp32"
    assert resolve_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16")
    with inference_context("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert torch.is_inference_mode_enabled()
    with inference_context("cpu", "auto"):
        assert not torch.is_autocast_enabled("cpu")
        assert torch.is_inference_mode_enabled()


def test_prepare_for_bf16_uses_channels_last() -> None:
    model = prepare_for_inference(DSen2CR(num_layers=1, feature_size=8), "cpu", "bf16")
    assert model.head.weight.is_contiguous(memory_format=torch.channels_last)
    assert type(model.head) is nn.Conv2d  # NNPACK is fp32-only
    s2, s1 = _inputs(8, 8)
    with inference_context("cpu", "bf16"):
        out = model(s2, s1)
    assert out.shape == (2, 13, 8, 8)


def test_prepare_depthwise_model_uses_channels_last_not_nnpack() -> None:
    from cloudfree.models.uncrtaints import UnCRtainTS

    torch.manual_seed(0)
    plain = UnCRtainTS(encoder_widths=(16,), decoder_widths=(16,)).eval()
    assert has_depthwise_convs(plain) and not has_depthwise_convs(
        DSen2CR(num_layers=1, feature_size=4)
    )
    fast = prepare_for_inference(copy.deepcopy(plain), "cpu")
    convs = [m for m in fast.modules() if isinstance(m, nn.Conv2d)]
    assert not any(isinstance(m, NNPACKConv2d) for m in convs)
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert list(fast.state_dict()) == list(plain.state_dict())
    s2, s1 = _inputs(48, 40)
    with inference_context("cpu"):
        got = fast(s2 / 2, s1 / 2, return_variance=True)
    with torch.no_grad():
        ref = plain(s2 / 2, s1 / 2, return_variance=True)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_tf32_mode_sets_and_restores_the_fp32_precision() -> None:
    from cloudfree.models.runtime import tf32_mode

    conv = torch.backends.cudnn.conv
    before = (conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    with tf32_mode(False):
        assert conv.fp32_precision == "ieee"
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    with tf32_mode(True):
        assert conv.fp32_precision == "tf32"
    assert (conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == before


def test_training_runs_in_strict_fp32_unless_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudfree.config import load_config
    from cloudfree.train import loop

    seen = []
    monkeypatch.setattr(
        loop, "_train", lambda *a: seen.append(torch.backends.cudnn.conv.fp32_precision)
    )
    loop.train(load_config("debug_tiny", ["train.device=cpu"]))
    loop.train(load_config("debug_tiny", ["train.device=cpu", "train.tf32=true"]))
    assert seen == ["ieee", "tf32"]
