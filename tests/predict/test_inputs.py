"""S2 band handling (L1C / L2A), S1 on another grid, coverage and input errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

from cloudfree.data.bands import S2_L2A_BANDS, s2_index
from cloudfree.errors import DataError
from cloudfree.predict.inputs import L2A_B10_FILL_DN, S1Source, S2Source, nodata_pixels, s1_coverage
from cloudfree.predict.scene import predict_scene

from .conftest import CRS, TRANSFORM, read_tif, synth_s1, synth_s2, write_tif


def _reproject(data: np.ndarray, dst_crs: str, res: float, nodata: float = float("nan")):
    """Warp a (2, H, W) array on the test grid to another CRS / resolution (the 'user's' S1)."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    h, w = data.shape[1:]
    left, top = TRANSFORM.c, TRANSFORM.f
    bounds = (left, top - 10 * h, left + 10 * w, top)
    transform, width, height = calculate_default_transform(
        CRS, dst_crs, w, h, *bounds, resolution=res
    )
    out = np.full((2, height, width), nodata, dtype=np.float32)
    reproject(
        data,
        out,
        src_transform=TRANSFORM,
        src_crs=CRS,
        dst_transform=transform,
        dst_crs=dst_crs,
        resampling=Resampling.bilinear,
        dst_nodata=nodata,
    )
    return out, transform


def test_l2a_warns_fills_b10_and_keeps_12_bands(tmp_path: Path, nosar_weights) -> None:
    weights, _ = nosar_weights
    l1c = synth_s2(64, 64)
    l2a = np.delete(l1c, s2_index("B10"), axis=0)
    src = write_tif(tmp_path / "l2a.tif", l2a, nodata=0)
    with pytest.warns(UserWarning, match="L2A.*B10.*10 DN"):
        s2 = S2Source(src)
    data, inner = s2.read((0, 0, 64, 64))
    s2.close()
    assert data.shape == (13, 64, 64) and inner == (0, 0, 64, 64)
    assert np.all(data[s2_index("B10")] == L2A_B10_FILL_DN)
    np.testing.assert_array_equal(np.delete(data, s2_index("B10"), axis=0), l2a)
    with pytest.warns(UserWarning, match="123 DN"):
        summary = predict_scene(
            src, tmp_path / "out.tif", str(weights), b10=123.0, tile=32, overlap=8, progress=False
        )
    assert summary["l2a"] is True and summary["b10_fill"] == 123.0
    pred, prof = read_tif(tmp_path / "out.tif")
    assert pred.shape == (12, 64, 64) and prof["descriptions"] == S2_L2A_BANDS


def test_l2a_b10_value_reaches_the_model(tmp_path: Path, nosar_weights) -> None:
    weights, _ = nosar_weights
    l2a = np.delete(synth_s2(48, 48), s2_index("B10"), axis=0)
    src = write_tif(tmp_path / "l2a.tif", l2a)
    outs = []
    for b10 in (0.0, 3000.0):
        with pytest.warns(UserWarning):
            predict_scene(src, tmp_path / f"out{b10}.tif", str(weights), b10=b10, progress=False)
        outs.append(read_tif(tmp_path / f"out{b10}.tif")[0])
    assert np.abs(outs[0].astype(float) - outs[1]).max() > 1


def test_other_band_counts_are_data_errors(tmp_path: Path) -> None:
    for n in (4, 14):
        path = write_tif(tmp_path / f"s2_{n}.tif", np.ones((n, 8, 8), np.uint16))
        with pytest.raises(DataError, match=f"has {n} bands.*13 L1C bands"):
            S2Source(path)
    with pytest.raises(DataError, match="does not exist"):
        S2Source(tmp_path / "nope.tif")


def test_s1_on_another_crs_is_reprojected(tmp_path: Path) -> None:
    s1 = synth_s1(96, 128)
    warped, transform = _reproject(s1, "EPSG:3857", 17.0)
    path = write_tif(
        tmp_path / "s1_3857.tif", warped, crs="EPSG:3857", transform=transform, nodata=float("nan")
    )
    s2 = write_tif(tmp_path / "s2.tif", synth_s2(96, 128))
    meta = S2Source(s2).meta
    src = S1Source(path, meta)
    assert src.reprojected
    back = src.read((-4, -4, 104, 136), meta.height, meta.width)
    src.close()
    assert back.shape == (2, 104, 136)
    inner = back[:, 4 + 8 : -4 - 8, 4 + 8 : -4 - 8]
    cov = s1_coverage(inner)
    assert cov.all()
    # Two bilinear resamplings of a smooth field (+0.3 dB noise): close to the original.
    err = np.abs(inner - s1[:, 8:-8, 8:-8])
    assert np.median(err) < 0.3 and err.max() < 2.0


def test_s1_same_grid_read_directly_and_nodata_becomes_nan(tmp_path: Path) -> None:
    s1 = synth_s1(40, 40)
    s1[:, :5] = -9999.0
    path = write_tif(tmp_path / "s1.tif", s1, nodata=-9999.0)
    meta = S2Source(write_tif(tmp_path / "s2.tif", synth_s2(40, 40))).meta
    src = S1Source(path, meta)
    assert not src.reprojected
    data = src.read((0, 0, 40, 40), 40, 40)
    src.close()
    cov = s1_coverage(data)
    assert not cov[:5].any() and cov[5:].all()
    np.testing.assert_array_equal(data[:, 5:], s1[:, 5:])


def test_s1_errors(tmp_path: Path) -> None:
    meta = S2Source(write_tif(tmp_path / "s2.tif", synth_s2(32, 32))).meta
    far = from_origin(900000.0, 1000000.0, 10.0, 10.0)  # UTM 33N, 4000 km away
    path = write_tif(tmp_path / "far.tif", synth_s1(32, 32), transform=far)
    with pytest.raises(DataError, match="does not overlap"):
        S1Source(path, meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        raw = write_tif(tmp_path / "nogeo.tif", synth_s1(16, 16), crs=None, transform=None)
    with pytest.raises(DataError, match="no georeferencing"):
        S1Source(raw, meta)
    with pytest.raises(DataError, match="does not exist"):
        S1Source(tmp_path / "missing.tif", meta)


def test_nodata_pixels() -> None:
    a = np.ones((3, 2, 2), np.float32)
    a[:, 0, 0] = 0
    a[0, 1, 1] = 0
    np.testing.assert_array_equal(nodata_pixels(a, 0), [[True, False], [False, False]])
    assert not nodata_pixels(a, None).any()
    a[:, 1, 0] = np.nan
    np.testing.assert_array_equal(nodata_pixels(a, float("nan")), [[False, False], [True, False]])


def test_predict_with_reprojected_s1_matches_same_grid_s1(tmp_path: Path, sar_weights) -> None:
    weights, _ = sar_weights
    s2 = write_tif(tmp_path / "s2.tif", synth_s2(64, 96))
    s1 = synth_s1(64, 96)
    same = write_tif(tmp_path / "s1.tif", s1)
    warped, transform = _reproject(s1, "EPSG:4326", 1.2e-4)
    other = write_tif(
        tmp_path / "s1_4326.tif", warped, crs="EPSG:4326", transform=transform, nodata=float("nan")
    )
    a = predict_scene(s2, tmp_path / "a.tif", str(weights), same, progress=False)
    b = predict_scene(s2, tmp_path / "b.tif", str(weights), other, progress=False)
    assert a["reprojected"] is False and b["reprojected"] is True
    assert b["sar_coverage"] > 0.95
    pa, prof_a = read_tif(tmp_path / "a.tif")
    pb, prof_b = read_tif(tmp_path / "b.tif")
    assert prof_a["transform"] == prof_b["transform"] and prof_a["crs"] == prof_b["crs"]
    inner = (slice(None), slice(8, -8), slice(8, -8))
    # The S1 input differs by two resamplings only: the predictions stay close.
    rel = np.abs(pa[inner].astype(float) - pb[inner]) / np.maximum(pa[inner], 1)
    assert np.median(rel) < 0.01
