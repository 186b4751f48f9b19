"""``predict_scene(..., uncertainty_out=...)``: UnCRtainTS's standard deviation on the scene grid,
its scaling taken from the weights, and the pixels where no uncertainty is defined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from cloudfree.bands import REFLECTANCE
from cloudfree.data.preprocess import normalize_s1, normalize_s2
from cloudfree.models import save_weights
from cloudfree.models.openvino import openvino_available
from cloudfree.models.uncrtaints import UnCRtainTS
from cloudfree.predict.scene import predict_scene
from tests.predict.conftest import read_tif, synth_s1, synth_s2, write_tif


def _tiny_uncrtaints(include_sar: bool = True) -> UnCRtainTS:
    torch.manual_seed(3)
    return UnCRtainTS(include_sar=include_sar, encoder_widths=[8], decoder_widths=[8]).eval()


def _reference(model: UnCRtainTS, s2: np.ndarray, s1: np.ndarray | None) -> np.ndarray:
    """The model on the whole image, reflectance scaling done by hand: (26, H, W)."""
    x = torch.from_numpy(normalize_s2(s2, REFLECTANCE))[None]
    s1t = None if s1 is None else torch.from_numpy(normalize_s1(s1, REFLECTANCE))[None]
    with torch.no_grad():
        return model(x, s1t, return_variance=True)[0].numpy()


def test_one_tile_scene_matches_the_model_by_hand(tmp_path: Path) -> None:
    model = _tiny_uncrtaints()
    weights = save_weights(model, tmp_path / "unc.safetensors")
    s2, s1 = synth_s2(96, 80), synth_s1(96, 80)
    src = write_tif(tmp_path / "s2.tif", s2)
    s1_path = write_tif(tmp_path / "s1.tif", s1)
    summary = predict_scene(
        src, tmp_path / "out.tif", str(weights), s1_path,
        uncertainty_out=tmp_path / "std.tif", progress=False,
    )  # fmt: skip
    # The scene fits one native 256-px tile: exactly the model on the whole image.
    assert summary["tiles"] == 1 and summary["tile"] == 256
    # OpenVINO by default where installed (a depthwise model on the CPU), else PyTorch.
    assert summary["backend"] == ("openvino" if openvino_available() else "torch")
    ref = _reference(model, s2, s1)
    pred, _ = read_tif(tmp_path / "out.tif")
    # Mean: reflectance x 10000 = DN, rounded (the weights' scaling, no flag given).
    np.testing.assert_allclose(pred, np.rint(ref[:13] * 10000), atol=1)
    std, prof = read_tif(tmp_path / "std.tif")
    assert prof["dtype"] == "float32" and np.isnan(prof["nodata"])
    assert prof["crs"].to_string() == "EPSG:32633" and prof["transform"][2] == 500000.0
    assert prof["descriptions"][0] == "B1 std"
    np.testing.assert_allclose(std, np.sqrt(ref[13:]), rtol=1e-5, atol=1e-7)
    with rasterio.open(tmp_path / "std.tif") as ds:
        assert ds.tags()["units"] == "reflectance (DN / 10000)"
    summary = predict_scene(
        src, tmp_path / "torch.tif", str(weights), s1_path, backend="torch", progress=False
    )
    assert summary["backend"] == "torch"
    np.testing.assert_allclose(read_tif(tmp_path / "torch.tif")[0], pred, atol=1)


def test_tiled_scene_keeps_the_per_tile_uncertainty(tmp_path: Path) -> None:
    model = _tiny_uncrtaints()
    weights = save_weights(model, tmp_path / "unc.safetensors")
    s2, s1 = synth_s2(300, 280, dtype="uint16"), synth_s1(300, 280)
    s2[:, :10, :10] = 0  # nodata corner
    src = write_tif(tmp_path / "s2.tif", s2, nodata=0)
    s1_path = write_tif(tmp_path / "s1.tif", s1)
    predict_scene(src, tmp_path / "out.tif", str(weights), s1_path,
                  uncertainty_out=tmp_path / "std.tif", progress=False)  # fmt: skip
    std, _ = read_tif(tmp_path / "std.tif")
    assert np.isnan(std[:, :10, :10]).all()  # nodata input: no uncertainty
    inner = std[:, 10:, 10:]
    assert np.isfinite(inner).all() and (inner > 0).all()
    # Tiles of 256 at rows (0, 44), cols (0, 24): the top-left corner, outside every other
    # tile, is the first tile alone, exactly the model on that 256 x 256 image.
    ref = np.sqrt(_reference(model, s2[:, :256, :256], s1[:, :256, :256])[13:])
    np.testing.assert_allclose(std[:, 10:24, 10:24], ref[:, 10:24, 10:24], rtol=1e-5)


def test_nosar_fallback_without_variance_is_nan(tmp_path: Path, nosar_weights) -> None:
    nosar_w, _ = nosar_weights  # a DSen2-CR: no variance
    weights = save_weights(_tiny_uncrtaints(), tmp_path / "unc.safetensors")
    s2 = synth_s2(64, 96)
    s1 = synth_s1(64, 96)
    s1[:, :, 48:] = np.nan
    src = write_tif(tmp_path / "s2.tif", s2)
    s1_path = write_tif(tmp_path / "s1.tif", s1, nodata=float("nan"))
    summary = predict_scene(src, tmp_path / "out.tif", str(weights), s1_path,
                            checkpoint_nosar=str(nosar_w), uncertainty_out=tmp_path / "std.tif",
                            progress=False)  # fmt: skip
    std, _ = read_tif(tmp_path / "std.tif")
    # The SAR model contributes up to its blend margin before the S1 edge (overlap // 4 px,
    # predict.tiling.coverage_weights); the no-SAR model alone, without variance, beyond.
    edge = 48 - summary["overlap"] // 4
    assert 0 < edge < 48
    assert np.isfinite(std[:, :, :edge]).all()
    assert np.isnan(std[:, :, edge:]).all()


def test_uncertainty_needs_a_model_with_variance(tmp_path: Path, nosar_weights) -> None:
    nosar_w, _ = nosar_weights
    src = write_tif(tmp_path / "s2.tif", synth_s2(32, 32))
    with pytest.raises(ValueError, match="needs a model that predicts a variance"):
        predict_scene(src, tmp_path / "out.tif", str(nosar_w),
                      uncertainty_out=tmp_path / "std.tif", progress=False)  # fmt: skip
    weights = save_weights(_tiny_uncrtaints(False), tmp_path / "unc.safetensors")
    with pytest.raises(ValueError, match="file name of its own"):
        predict_scene(src, tmp_path / "out.tif", str(weights),
                      uncertainty_out=tmp_path / "out.tif", progress=False)  # fmt: skip
    assert not (tmp_path / "out.tif").exists() and not (tmp_path / "std.tif").exists()
