"""cloudfree.units: S2 as DN, S1 in dB, and what counts as missing, on hand-made and real values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloudfree.errors import DataError
from cloudfree.units import (
    check_patch,
    check_s1_db,
    check_s2_dn,
    nodata_pixels,
    sample_windows,
)


def test_nodata_pixels() -> None:
    a = np.ones((3, 2, 2), np.float32)
    a[:, 0, 0] = 0
    a[0, 1, 1] = 0
    np.testing.assert_array_equal(nodata_pixels(a, 0), [[True, False], [False, False]])
    # No nodata declared: 0 in every band is missing (the Sentinel-2 products' NO_DATA), a
    # single band at 0 is not.
    np.testing.assert_array_equal(nodata_pixels(a, None), [[True, False], [False, False]])
    np.testing.assert_array_equal(nodata_pixels(a, 1), [[False, True], [True, False]])
    a[:, 1, 0] = np.nan
    np.testing.assert_array_equal(nodata_pixels(a, float("nan")), [[False, False], [True, False]])


def test_reflectance_is_not_dn() -> None:
    refl = np.linspace(0.01, 0.6, 13 * 16, dtype=np.float32).reshape(13, 4, 4)
    with pytest.raises(
        DataError, match=r"a\.tif: S2 values are all between 0\.01 and 0\.6.*x 10000"
    ):
        check_s2_dn(refl, "a.tif")
    check_s2_dn(refl * 10000, "a.tif")  # the same image as DN
    check_s2_dn(np.zeros((13, 4, 4), np.uint16), "a.tif")  # empty: not a question of scale
    # NaN and the nodata value are not values of the image.
    with_nodata = np.full((13, 4, 4), -9999.0, np.float32)
    with_nodata[:, 0, 0] = 0.3
    with_nodata[0, 1, 1] = np.nan
    with pytest.raises(DataError, match="reflectance"):
        check_s2_dn(with_nodata, "a.tif", nodata=-9999)


def test_linear_power_is_not_db() -> None:
    rng = np.random.default_rng(0)
    db = rng.uniform(-25, -5, (2, 8, 8)).astype(np.float32)
    check_s1_db(db, "s1.tif")
    db[0, :2] = 3.0  # bright targets above 0 dB are real
    check_s1_db(db, "s1.tif")
    power = (10 ** (db / 10)).astype(np.float32)
    with pytest.raises(DataError, match=r"s1\.tif: S1 values .* none negative.*10 \* log10"):
        check_s1_db(power, "s1.tif")
    # -inf (10 log10 of 0) and NaN are ignored, not taken for negative values
    power[0, 0, 0], power[1, 0, 0] = -np.inf, np.nan
    with pytest.raises(DataError, match="not dB"):
        check_s1_db(power, "s1.tif")
    check_s1_db(np.zeros((2, 4, 4), np.float32), "s1.tif")  # all 0 dB: odd, but not linear


def test_check_patch_names_the_patch_and_the_array() -> None:
    s2 = np.full((13, 4, 4), 1500, np.uint16)
    s2[10] = 20  # B10 (cirrus) of a clear sky: a real scene always has such dark values
    raw = {"s2_cloudy": s2, "s1": np.full((2, 4, 4), 0.05, np.float32)}
    with pytest.raises(DataError, match=r"patch p1 \(s1\): S1 values"):
        check_patch(raw, "patch p1")
    raw["s1"] = np.full((2, 4, 4), -13.0, np.float32)
    check_patch(raw, "patch p1")


def test_sample_windows_spread_over_the_scene() -> None:
    assert sample_windows(1000, 500) == [
        (r, c, 128, 128) for r in (0, 436, 872) for c in (0, 186, 372)
    ]
    assert sample_windows(50, 40) == [(0, 0, 50, 40)]


def test_real_samples_pass(shared_data: Path) -> None:
    """Every real S2 and S1 file of ../shared/data is accepted as DN / dB."""
    import rasterio

    from cloudfree.units import check_scene

    files = sorted((shared_data / "sen12mscr").rglob("*.tif"))
    files += sorted((shared_data / "sen1floods11").rglob("*S[12]Hand.tif"))
    files += sorted((shared_data / "eolearn").rglob("*.tif"))
    files += sorted((shared_data / "bigearthnet").rglob("*.tif"))
    checked = 0
    for f in files:
        with rasterio.open(f) as ds:
            if ds.count == 2:
                check_scene(ds, "s1", f)
            elif ds.count in (12, 13):
                check_scene(ds, "s2", f)
            else:
                continue
            checked += 1
    assert checked >= 60, checked
