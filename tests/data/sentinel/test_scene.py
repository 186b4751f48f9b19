"""Scene inputs: S2 band handling (L1C / L2A), S1 on another grid, coverage and input errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

from cloudfree.data.sentinel.scene import (
    S1Source,
    S2Source,
    s1_coverage,
)
from cloudfree.errors import DataError

from ...predict.conftest import reproject_s1, synth_s1, synth_s2, write_tif


def test_other_band_counts_are_data_errors(tmp_path: Path) -> None:
    for n in (4, 14):
        path = write_tif(tmp_path / f"s2_{n}.tif", np.ones((n, 8, 8), np.uint16))
        with pytest.raises(DataError, match=f"has {n} bands.*13 L1C bands"):
            S2Source(path)
    with pytest.raises(DataError, match="does not exist"):
        S2Source(tmp_path / "nope.tif")


def test_s1_on_another_crs_is_reprojected(tmp_path: Path) -> None:
    s1 = synth_s1(96, 128)
    warped, transform = reproject_s1(s1, "EPSG:3857", 17.0)
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
