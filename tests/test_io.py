"""GeoTIFF I/O: georeferencing round-trips, windows, atomic writes, clear errors."""

import tarfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from cloudfree.bands import S2_BANDS
from cloudfree.errors import DataError
from cloudfree.io import (
    RasterMeta,
    atomic_path,
    gdal_path,
    read_meta,
    read_raster,
    split_archive_path,
    write_raster,
)


def _meta(h=20, w=30, count=13, dtype="uint16"):
    return RasterMeta(
        width=w,
        height=h,
        count=count,
        dtype=dtype,
        crs=CRS.from_epsg(32633),
        transform=from_origin(500000.0, 5100000.0, 10.0, 10.0),
        nodata=0,
    )


def test_round_trip_keeps_georeferencing_and_descriptions(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 10000, (13, 20, 30), dtype=np.uint16)
    out = write_raster(tmp_path / "s2.tif", arr, _meta(), descriptions=S2_BANDS)
    back, meta = read_raster(out)
    np.testing.assert_array_equal(back, arr)
    assert meta.crs == CRS.from_epsg(32633)
    assert meta.transform == from_origin(500000.0, 5100000.0, 10.0, 10.0)
    assert meta.nodata == 0
    assert meta.descriptions == S2_BANDS
    assert read_meta(out).same_grid(meta)
    # only the temporary-free final file is left behind
    assert [p.name for p in tmp_path.iterdir()] == ["s2.tif"]


def test_window_read_shifts_the_transform(tmp_path):
    arr = np.arange(13 * 20 * 30, dtype=np.uint16).reshape(13, 20, 30)
    path = write_raster(tmp_path / "s2.tif", arr, _meta())
    win, meta = read_raster(path, window=(4, 6, 8, 10), bands=[2, 4])
    np.testing.assert_array_equal(win, arr[[1, 3], 4:12, 6:16])
    # the window's origin moves by 6 columns x 10 m east and 4 rows x 10 m south
    assert meta.transform.c == 500000.0 + 60.0
    assert meta.transform.f == 5100000.0 - 40.0
    assert (meta.height, meta.width, meta.count) == (8, 10, 2)
    with pytest.raises(DataError, match="outside"):
        read_raster(path, window=(15, 0, 8, 8))


def test_errors_name_the_file_and_what_was_expected(tmp_path):
    arr = np.zeros((2, 8, 8), np.float32)
    path = write_raster(tmp_path / "s1.tif", arr, _meta(count=2, dtype="float32"))
    with pytest.raises(DataError, match=r"s1.tif: has 2 bands \(expected 13 bands\)"):
        read_raster(path, expect_count=13)
    with pytest.raises(DataError, match=r"dtype float32 \(expected one of \('uint16',\)"):
        read_raster(path, expect_dtypes=("uint16",))
    with pytest.raises(DataError, match="does not exist"):
        read_raster(tmp_path / "missing.tif")
    # a truncated file
    good = write_raster(tmp_path / "t.tif", np.ones((13, 64, 64), np.uint16), _meta(64, 64))
    data = good.read_bytes()
    bad = tmp_path / "truncated.tif"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match="truncated.tif"):
        read_raster(bad)
    with pytest.raises(DataError, match="garbage.tif"):
        (tmp_path / "garbage.tif").write_bytes(b"not a tiff at all")
        read_meta(tmp_path / "garbage.tif")


def test_same_grid_detects_differences():
    a = _meta()
    assert a.same_grid(_meta(count=2, dtype="float32"))  # band count and dtype do not matter
    assert not a.same_grid(_meta(h=21))
    shifted = RasterMeta(30, 20, 13, "uint16", a.crs, from_origin(500010.0, 5100000.0, 10, 10))
    assert not a.same_grid(shifted)
    other_crs = RasterMeta(30, 20, 13, "uint16", CRS.from_epsg(32634), a.transform)
    assert not a.same_grid(other_crs)


def test_atomic_path_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "index.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half written")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_reads_through_a_tar_gz_archive_without_unpacking(tmp_path):
    arr = np.arange(13 * 8 * 8, dtype=np.uint16).reshape(13, 8, 8)
    src = write_raster(tmp_path / "p.tif", arr, _meta(8, 8))
    archive = tmp_path / "ROIs1970_fall_s2.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src, arcname="ROIs1970_fall_s2/s2_1/ROIs1970_fall_s2_1_p1.tif")
    member = archive / "ROIs1970_fall_s2/s2_1/ROIs1970_fall_s2_1_p1.tif"
    assert split_archive_path(member) == (
        str(archive),
        "ROIs1970_fall_s2/s2_1/ROIs1970_fall_s2_1_p1.tif",
    )
    assert gdal_path(member).startswith("/vsitar/")
    assert split_archive_path(tmp_path / "plain.tif") is None
    back, meta = read_raster(member)
    np.testing.assert_array_equal(back, arr)
    assert meta.crs == CRS.from_epsg(32633)
    with rasterio.open(gdal_path(member)) as ds:
        assert ds.count == 13


def test_atomic_outputs_get_normal_permissions(tmp_path) -> None:  # noqa: ANN001
    # mkstemp makes 0600 files; an output must be readable like any file the user writes.
    import os

    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("x")
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def _gdal_cache_max() -> int:
    """GDAL's effective block-cache size in bytes, from the libgdal rasterio loaded."""
    import ctypes
    import glob

    libs = glob.glob(str(Path(rasterio.__file__).parent.parent / "rasterio.libs" / "libgdal*"))
    if not libs:
        pytest.skip("rasterio links a system GDAL: its library path is not known here")
    lib = ctypes.CDLL(libs[0])  # the same handle rasterio holds: the same cache setting
    lib.GDALGetCacheMax64.restype = ctypes.c_int64
    return int(lib.GDALGetCacheMax64())


def test_gdal_cache_env_caps_the_cache_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudfree.io import GDAL_CACHE_MB, gdal_cache_env

    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    with rasterio.Env(**gdal_cache_env()):
        assert _gdal_cache_max() == GDAL_CACHE_MB * 2**20  # not 128 bytes
    monkeypatch.setenv("GDAL_CACHEMAX", "64")
    assert gdal_cache_env() == {}  # the user's setting wins
