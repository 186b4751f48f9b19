"""Predictions through the scene inputs: L2A input, the B10 fill, S1 reprojected or on the S2 grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloudfree.bands import S2_L2A_BANDS, s2_index
from cloudfree.data.sentinel.scene import (
    L2A_B10_FILL_DN,
    S2Source,
)
from cloudfree.predict.scene import predict_scene

from .conftest import read_tif, reproject_s1, synth_s1, synth_s2, write_tif


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


def test_predict_with_reprojected_s1_matches_same_grid_s1(tmp_path: Path, sar_weights) -> None:
    weights, _ = sar_weights
    s2 = write_tif(tmp_path / "s2.tif", synth_s2(64, 96))
    s1 = synth_s1(64, 96)
    same = write_tif(tmp_path / "s1.tif", s1)
    warped, transform = reproject_s1(s1, "EPSG:4326", 1.2e-4)
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
