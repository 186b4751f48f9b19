"""Overviews averaged while a GeoTIFF is written window by window, then its COG copy (issue 30).

References: the mean of each footprint computed here with numpy's masked arrays on the whole
array (independent of the window-by-window cascade), and GDAL's own ``average`` overviews.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import Window

from cloudfree.io import atomic_path, mask_to_cog
from cloudfree.overviews import OverviewLevels, cog_factors
from cloudfree.windows import windows


def _profile(h: int, w: int, count: int, dtype: str, nodata: float | None) -> dict:
    return dict(driver="GTiff", height=h, width=w, count=count, dtype=dtype, nodata=nodata,
                crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10), tiled=True,
                blockxsize=64, blockysize=64, compress="deflate")  # fmt: skip


def _scene(h: int, w: int, dtype: str = "uint16", nodata: float | None = 0) -> np.ndarray:
    rng = np.random.default_rng(3)
    if dtype == "float32":
        a = rng.normal(0.2, 0.1, (2, h, w)).astype(dtype)
    else:
        a = rng.integers(1, 20000, (2, h, w)).astype(dtype)
    hole = np.nan if nodata is None or np.isnan(nodata) else nodata
    if nodata is not None:
        a[:, 40:90, 10:130] = hole  # footprints all nodata, and footprints partly so
        a[1, 7, :] = hole  # one band only: the other band's mean keeps its pixels
    return a


def _write(path: Path, a: np.ndarray, profile: dict, window: int, factors=None) -> Path:
    """Write ``a`` window by window as a command does, with overviews."""
    h, w = a.shape[1:]
    with (
        OverviewLevels(path, profile, window, factors) as levels,
        atomic_path(path, finish=levels.to_cog) as tmp,
        rasterio.open(tmp, "w", **profile) as ds,
    ):
        ds.set_band_description(1, "B2")
        ds.update_tags(method="test")
        for r, c, wh, ww in windows(h, w, window):
            values = a[:, r : r + wh, c : c + ww]
            ds.write(values, window=Window(c, r, ww, wh))
            levels.add(values, (r, c, wh, ww))
    return path


def _exact_mean(a: np.ndarray, f: int, nodata: float | None) -> np.ndarray:
    """Mean of the data pixels of each ``f x f`` footprint (cut at the edges); NaN if none."""
    b, h, w = a.shape
    oh, ow = -(-h // f), -(-w // f)
    pad = np.full((b, oh * f, ow * f), np.nan)
    pad[:, :h, :w] = a
    if nodata is not None and not np.isnan(nodata):
        pad[pad == nodata] = np.nan
    blocks = pad.reshape(b, oh, f, ow, f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": NaN wanted
        return np.nanmean(blocks, axis=(2, 4))


def _level(path: Path, i: int) -> np.ndarray:
    with rasterio.open(path, overview_level=i) as ds:
        return ds.read()


def test_cog_factors_halve_until_one_512_block() -> None:
    assert cog_factors(512, 512) == []
    assert cog_factors(513, 100) == [2]  # 257 x 50 fits
    assert cog_factors(600, 560) == [2]
    assert cog_factors(4096, 4096) == [2, 4, 8]  # 512 fits
    assert cog_factors(10980, 10980) == [2, 4, 8, 16, 32]  # 344 px: GDAL's COG driver's too
    assert cog_factors(300, 5000) == [2, 4, 8, 16]  # the longer side decides


@pytest.mark.parametrize("window", [64, 96, 160])
def test_levels_are_the_footprint_means(tmp_path: Path, window: int) -> None:
    """Sides not divisible by the window nor by the factors; nodata over whole footprints, part
    of footprints and one band only."""
    h, w = 301, 203
    a = _scene(h, w)
    out = _write(tmp_path / "out.tif", a, _profile(h, w, 2, "uint16", 0), window,
                 factors=[2, 4, 8, 16, 32])  # fmt: skip
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert len(ds.overviews(1)) == len(ds.overviews(2)) == 5  # shapes checked below
        assert (ds.read() == a).all() and ds.nodata == 0
        assert ds.descriptions[0] == "B2" and ds.tags()["method"] == "test"
    exact_levels = [f for f in (2, 4, 8, 16, 32) if window % f == 0]
    for i, f in enumerate([2, 4, 8, 16, 32]):
        got = _level(out, i).astype(float)
        want = _exact_mean(a.astype(float), f, 0)
        empty = np.isnan(want)
        assert got.shape == want.shape == (2, -(-h // f), -(-w // f))
        assert (got[empty] == 0).all() and (empty.any() or f > 16)  # nodata: no pixel has data
        if f in exact_levels:
            assert (got[~empty] == np.floor(want[~empty] + 0.5)).all(), f
        else:  # from the deepest exact level, 2 x 2 with equal weights
            assert np.abs(got[~empty] - want[~empty]).max() <= 0.5 * (f // max(exact_levels)) + 1


def test_levels_match_gdal_average(tmp_path: Path) -> None:
    """Sides divisible by every factor (elsewhere GDAL spreads the remainder of a side over the
    whole level): level 2 is GDAL's exactly; deeper ones are within 1 DN where the footprint is
    all data (GDAL averages the rounded level above with equal weights, we the full-resolution
    pixels: the two differ more where a footprint is part nodata); nodata in the same places."""
    h, w = 320, 192
    a = _scene(h, w)
    prof = _profile(h, w, 2, "uint16", 0)
    out = _write(tmp_path / "out.tif", a, prof, 64, factors=[2, 4, 8, 16, 32])
    ref = tmp_path / "gdal.tif"
    with rasterio.open(ref, "w", **prof) as ds:
        ds.write(a)
        ds.build_overviews([2, 4, 8, 16, 32], Resampling.average)
    for i, f in enumerate([2, 4, 8, 16, 32]):
        got, gdal = _level(out, i).astype(int), _level(ref, i).astype(int)
        assert ((gdal == 0) == (got == 0)).all()
        full = _exact_mean((a != 0).astype(float), f, None) == 1
        assert full.mean() > 0.5 and (~full).any()
        assert np.abs(got - gdal)[full].max() <= (0 if i == 0 else 1), i
        if i == 0:
            assert (got == gdal).all()


def test_deeper_levels_average_the_deepest_exact_one(tmp_path: Path) -> None:
    """Window 48 = 16 x 3: levels 2-16 exact, 32 from level 16 (2 x 2, equal weights)."""
    h, w = 256, 192
    a = _scene(h, w)
    out = _write(tmp_path / "o.tif", a, _profile(h, w, 2, "uint16", 0), 48, [2, 4, 8, 16, 32])
    l16, l32 = _level(out, 3).astype(float), _level(out, 4).astype(float)
    want = _exact_mean(l16, 2, 0)
    ok = ~np.isnan(want)
    assert (l32[ok] == np.floor(want[ok] + 0.5)).all() and (l32[~ok] == 0).all()


def test_a_window_with_no_exact_level_reads_the_output_back(tmp_path: Path) -> None:
    h, w = 130, 97
    a = _scene(h, w)
    out = _write(tmp_path / "o.tif", a, _profile(h, w, 2, "uint16", 0), 45, [2, 4])
    for i, f in enumerate([2, 4]):
        want = _exact_mean(a.astype(float), f, 0)
        ok = ~np.isnan(want)
        assert (_level(out, i)[ok] == np.floor(want[ok] + 0.5)).all()


def test_float_with_nan_nodata(tmp_path: Path) -> None:
    h, w = 140, 150
    a = _scene(h, w, "float32", np.nan)
    out = _write(tmp_path / "s.tif", a, _profile(h, w, 2, "float32", np.nan), 64, [2, 4])
    for i, f in enumerate([2, 4]):
        got, want = _level(out, i), _exact_mean(a.astype(np.float64), f, np.nan)
        assert (np.isnan(got) == np.isnan(want)).all() and np.isnan(got).any()
        assert np.allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-6)


def test_levels_without_nodata_average_every_pixel(tmp_path: Path) -> None:
    a = np.zeros((1, 64, 64), dtype=np.uint16)
    a[0, 0, 0], a[0, 0, 1], a[0, 1, 0], a[0, 1, 1] = 0, 3, 4, 4  # 11 / 4 = 2.75 -> 3
    out = _write(tmp_path / "o.tif", a, _profile(64, 64, 1, "uint16", None), 32, [2])
    assert _level(out, 0)[0, 0, 0] == 3 and _level(out, 0)[0, 0, 1] == 0


def test_no_temporary_file_is_left(tmp_path: Path) -> None:
    a = _scene(100, 100)
    prof = _profile(100, 100, 2, "uint16", 0)
    _write(tmp_path / "o.tif", a, prof, 32, [2, 4, 8, 16])  # every level exact
    _write(tmp_path / "p.tif", a, prof, 48, [2, 4, 8, 16, 32])  # a deeper level too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif", "p.tif"]
    with (
        pytest.raises(RuntimeError, match="boom"),
        OverviewLevels(tmp_path / "q.tif", prof, 32, [2]) as levels,
        atomic_path(tmp_path / "q.tif", finish=levels.to_cog) as tmp,
        rasterio.open(tmp, "w", **prof) as ds,
    ):
        ds.write(a[:, :32, :32], window=Window(0, 0, 32, 32))
        levels.add(a[:, :32, :32], (0, 0, 32, 32))
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif", "p.tif"]


def test_windows_off_the_grid_are_refused(tmp_path: Path) -> None:
    a = _scene(100, 100)
    prof = _profile(100, 100, 2, "uint16", 0)
    with (
        OverviewLevels(tmp_path / "o.tif", prof, 32, [2]) as lv,
        pytest.raises(ValueError, match="not on the grid of 32-px windows"),
    ):
        lv.add(a[:, :32, :32], (16, 0, 32, 32))


def test_mask_overviews_hold_the_most_frequent_class(tmp_path: Path) -> None:
    m = np.zeros((1, 1024, 1024), dtype=np.uint8)
    m[0, 0:2, 0:2] = [[1, 1], [1, 0]]  # 3 cloud, 1 clear -> cloud
    m[0, 0:2, 2:4] = [[2, 2], [2, 1]]  # 3 shadow -> shadow
    prof = _profile(1024, 1024, 1, "uint8", None)
    out = tmp_path / "m.tif"
    with atomic_path(out, finish=mask_to_cog) as tmp, rasterio.open(tmp, "w", **prof) as ds:
        ds.write(m)
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.overviews(1) == [2] and (ds.read() == m).all()
    assert _level(out, 0)[0, 0, :3].tolist() == [1, 2, 0]
