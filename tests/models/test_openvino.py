"""OpenVINO backend: same outputs as PyTorch, the conversion cached per weights, backend choice."""

from __future__ import annotations

import pytest
import torch

from cloudfree.methods.model import ModelMethod
from cloudfree.models import DSen2CR
from cloudfree.models.runtime import resolve_backend
from cloudfree.models.uncrtaints import UnCRtainTS

ov = pytest.importorskip("openvino", reason="the openvino extra is not installed")

from cloudfree.models.openvino import OpenVINOModel, compile_openvino  # noqa: E402


def _tiny(include_sar: bool = True, seed: int = 0) -> UnCRtainTS:
    torch.manual_seed(seed)
    return UnCRtainTS(include_sar=include_sar, encoder_widths=(16,), decoder_widths=(16,)).eval()


def _inputs(h: int = 36, w: int = 52) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 13, h, w, generator=g) * 0.5, torch.rand(2, 2, h, w, generator=g)


@pytest.mark.parametrize("include_sar", [True, False])
def test_openvino_matches_pytorch_mean_and_variance(tmp_path, include_sar: bool) -> None:
    model = _tiny(include_sar)
    fast = compile_openvino(model, include_sar, tmp_path)
    s2, s1 = _inputs()
    args = (s2, s1) if include_sar else (s2,)
    with torch.no_grad():
        ref = model(*args, return_variance=True)
    got = fast(*args, return_variance=True)
    assert got.shape == (2, 26, 36, 52) and got.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast(*args), ref[:, :13], atol=1e-5, rtol=1e-5)
    # Another size than the traced one, batch 1: the shapes are dynamic.
    s2b, s1b = _inputs(80, 64)
    args = (s2b[:1], s1b[:1]) if include_sar else (s2b[:1],)
    with torch.no_grad():
        torch.testing.assert_close(fast(*args), model(*args), atol=1e-5, rtol=1e-5)
    # The source model's attributes are the compiled one's (predict's tile plan reads them).
    assert fast.native_tile == model.native_tile and fast.config == model.config


def test_conversion_is_cached_per_weights(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _tiny()
    compile_openvino(model, True, tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and {p.split(".")[1] for p in files} == {"xml", "bin"}

    def no_convert(*args: object, **kwargs: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(ov, "convert_model", no_convert)
    again = compile_openvino(model, True, tmp_path)  # read from the cache
    s2, s1 = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(again(s2, s1), model(s2, s1), atol=1e-5, rtol=1e-5)
    with pytest.raises(AssertionError, match="converted again"):  # other weights: a new key
        compile_openvino(_tiny(seed=1), True, tmp_path)
    assert not any(p.name.startswith(".part-") for p in tmp_path.iterdir())


def test_backend_choice() -> None:
    unc, dsen = _tiny(), DSen2CR(num_layers=1, feature_size=8)
    assert resolve_backend("auto", unc, "cpu") == "openvino"
    assert resolve_backend("auto", dsen, "cpu") == "torch"  # dense 3x3 convs: NNPACK is as fast
    assert resolve_backend("auto", unc, "cpu", "bf16") == "torch"
    assert resolve_backend("torch", unc, "cpu") == "torch"
    assert resolve_backend("openvino", dsen, "cpu") == "openvino"
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("tensorrt", unc, "cpu")
    with pytest.raises(ValueError, match="on the CPU, in fp32"):
        resolve_backend("openvino", unc, "cpu", "bf16")


def test_model_method_runs_openvino_by_default_for_uncrtaints() -> None:
    s2, s1 = _inputs()
    batch = {"s2_cloudy": s2, "s1": s1}
    auto = ModelMethod(_tiny(), "unc", device="cpu")
    plain = ModelMethod(_tiny(), "unc", device="cpu", backend="torch")
    assert auto.backend == "openvino" and isinstance(auto.model, OpenVINOModel)
    assert plain.backend == "torch"
    mean, var = auto.predict_variance(batch)
    ref_mean, ref_var = plain.predict_variance(batch)
    torch.testing.assert_close(mean, ref_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(var, ref_var, atol=1e-6, rtol=1e-5)
