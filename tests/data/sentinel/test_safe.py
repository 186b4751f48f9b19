"""Tests of cloudfree.data.sentinel.safe: stacking a (synthetic) Sentinel-2 .SAFE product."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from cloudfree.bands import S2_BANDS, S2_L2A_BANDS, S2_NATIVE_GSD_M
from cloudfree.data.sentinel.cli import add_parser, run
from cloudfree.data.sentinel.safe import find_safe_bands, read_offsets, stack_safe
from cloudfree.errors import DataError

CRS_UTM = CRS.from_epsg(32633)
X0, Y0 = 300000.0, 5000000.0
SIDE_M = 600  # 60 px at 10 m, 30 at 20 m, 10 at 60 m
TILE = "T33UVP_20200101T100031"
MTD_OFFSETS = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd">
<n1:General_Info><Product_Image_Characteristics><Radiometric_Offset_List>
{items}
</Radiometric_Offset_List></Product_Image_Characteristics></n1:General_Info>
</n1:Level-1C_User_Product>
"""


def band_values(band: str) -> np.ndarray:
    """Known uint16 values of one band at its native resolution.

    10 m: ``base + 7 row + col``. 20 m / 60 m: a plane ``base + a col + 10 a row`` (a = 100 at
    20 m, 300 at 60 m) so that bilinear resampling onto the 10 m grid has an exact integer value
    worked by hand (see ``expected_bilinear``). ``base`` differs per band to check the order.
    """
    gsd = S2_NATIVE_GSD_M[band]
    n = SIDE_M // gsd
    base = 1000 + 10 * S2_BANDS.index(band)
    r, c = np.mgrid[0:n, 0:n]
    if gsd == 10:
        return (base + 7 * r + c).astype(np.uint16)
    a = 100 if gsd == 20 else 300
    return (base + a * c + 10 * a * r).astype(np.uint16)


def expected_bilinear(band: str) -> np.ndarray:
    """Bilinear value on the 10 m grid, by hand: 10 m pixel j has its centre at source pixel
    coordinate x = (j + 0.5) / k - 0.5 (k = gsd / 10), and bilinear interpolation of a plane is
    the plane itself, so the value is ``base + a x + 10 a y``; exact integers for these a, k."""
    gsd = S2_NATIVE_GSD_M[band]
    k = gsd // 10
    a = 100 if gsd == 20 else 300
    base = 1000 + 10 * S2_BANDS.index(band)
    i, j = np.mgrid[0:60, 0:60].astype(np.float64)
    x, y = (j + 0.5) / k - 0.5, (i + 0.5) / k - 0.5
    return base + a * x + 10 * a * y


def write_jp2(path: Path, arr: np.ndarray, gsd: float, x0: float = X0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = arr[None] if arr.ndim == 2 else arr
    with rasterio.open(
        path,
        "w",
        driver="JP2OpenJPEG",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype="uint16",
        crs=CRS_UTM,
        transform=from_origin(x0, Y0, gsd, gsd),
        QUALITY=100,
        REVERSIBLE="YES",  # lossless, so that values can be compared exactly
    ) as ds:
        ds.write(arr)


def make_l1c(tmp: Path, offsets: dict[int, int] | None = None, drop: tuple[str, ...] = ()) -> Path:
    """A minimal L1C SAFE: one granule, 13 band JP2s (minus ``drop``), a TCI, an MTD xml."""
    safe = tmp / "S2A_MSIL1C_20200101T100031_N0208_R122_T33UVP_20200101T120000.SAFE"
    img = safe / "GRANULE" / "L1C_T33UVP_A023000_20200101T100031" / "IMG_DATA"
    for band in S2_BANDS:
        if band in drop:
            continue
        token = "8A" if band == "B8A" else f"{int(band[1:]):02d}"
        write_jp2(img / f"{TILE}_B{token}.jp2", band_values(band), S2_NATIVE_GSD_M[band])
    write_jp2(img / f"{TILE}_TCI.jp2", np.ones((3, 60, 60), np.uint16), 10)
    items = "".join(
        f'<RADIO_ADD_OFFSET band_id="{b}">{v}</RADIO_ADD_OFFSET>'
        for b, v in (offsets or {}).items()
    )
    (safe / "MTD_MSIL1C.xml").write_text(MTD_OFFSETS.format(items=items))
    return safe


def make_l2a(tmp: Path) -> Path:
    """A minimal L2A SAFE: R10m/R20m/R60m folders with sen2cor's duplicates, no B10."""
    safe = tmp / "S2A_MSIL2A_20200101T100031_N0214_R122_T33UVP_20200101T130000.SAFE"
    img = safe / "GRANULE" / "L2A_T33UVP_A023000_20200101T100031" / "IMG_DATA"
    for res in (10, 20, 60):
        for band in S2_L2A_BANDS:
            native = S2_NATIVE_GSD_M[band]
            if res == 10 and native != 10:
                continue  # R10m holds only the 10 m bands
            if res == 20 and band in ("B1", "B9") or res == 60 and band == "B8":
                continue
            token = "8A" if band == "B8A" else f"{int(band[1:]):02d}"
            arr = band_values(band)
            if res != native:  # a coarser or finer copy: constant, so a wrong pick shows
                arr = np.full((SIDE_M // res,) * 2, 7, np.uint16)
            write_jp2(img / f"R{res}m" / f"{TILE}_B{token}_{res}m.jp2", arr, res)
        write_jp2(
            img / f"R{res}m" / f"{TILE}_SCL_{res}m.jp2",
            np.ones((SIDE_M // res,) * 2, np.uint16),
            res,
        )
    # Baseline 04.00+: BOA_ADD_OFFSET for every band id, B10's included (its image is absent).
    items = "".join(f'<BOA_ADD_OFFSET band_id="{b}">-1000</BOA_ADD_OFFSET>' for b in range(13))
    xml = MTD_OFFSETS.format(items=items).replace("Level-1C", "Level-2A")
    (safe / "MTD_MSIL2A.xml").write_text(xml)
    return safe


@pytest.fixture(scope="module")
def l1c(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_l1c(tmp_path_factory.mktemp("l1c"))


def test_l1c_stack_order_grid_values(l1c: Path, tmp_path: Path) -> None:
    out = tmp_path / "s2.tif"
    summary = stack_safe(l1c, out, window=32)  # several windows, not aligned to the 20/60 m grid
    assert summary["level"] == "L1C" and summary["bands"] == list(S2_BANDS)
    assert (summary["width"], summary["height"]) == (60, 60)
    with rasterio.open(out) as ds:
        assert ds.count == 13 and ds.dtypes == ("uint16",) * 13
        assert ds.descriptions == S2_BANDS
        assert ds.crs == CRS_UTM
        assert ds.transform.almost_equals(from_origin(X0, Y0, 10, 10))
        assert ds.nodata == 0
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
        cube = ds.read()
    for b, band in enumerate(S2_BANDS):
        gsd = S2_NATIVE_GSD_M[band]
        if gsd == 10:
            np.testing.assert_array_equal(cube[b], band_values(band))
            continue
        # Interior pixels (whose interpolation stays inside the source) equal the hand-worked plane.
        lo, hi = (1, 59) if gsd == 20 else (3, 57)
        inner = np.s_[lo:hi, lo:hi]
        np.testing.assert_allclose(cube[b][inner], expected_bilinear(band)[inner], atol=1)


def test_nearest_repeats_coarse_pixels(l1c: Path, tmp_path: Path) -> None:
    out = tmp_path / "s2.tif"
    stack_safe(l1c, out, resampling="nearest")
    with rasterio.open(out) as ds:
        cube = ds.read()
    for b, band in enumerate(S2_BANDS):
        k = S2_NATIVE_GSD_M[band] // 10
        expected = np.repeat(np.repeat(band_values(band), k, 0), k, 1)
        np.testing.assert_array_equal(cube[b], expected)


def test_window_size_does_not_change_the_result(l1c: Path, tmp_path: Path) -> None:
    stack_safe(l1c, tmp_path / "a.tif", window=16)
    stack_safe(l1c, tmp_path / "b.tif", window=1024)
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_overviews_are_the_block_means_of_the_stack(
    l1c: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The levels ``stack`` averages while writing (a 60 px scene gets none from
    ``cog_factors``: two are asked for here) hold the mean of each footprint, per band."""
    import cloudfree.overviews

    monkeypatch.setattr(cloudfree.overviews, "cog_factors", lambda h, w: [2, 4])
    out = tmp_path / "s.tif"
    stack_safe(l1c, out, window=32)  # 60 px: edge windows of 28 px
    with rasterio.open(out) as ds:
        full = ds.read().astype(float)
        assert ds.overviews(1) == [2, 4] and ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    for level, f in enumerate((2, 4)):
        with rasterio.open(out, overview_level=level) as ov:
            got = ov.read().astype(float)
        n = -(-60 // f)
        pad = np.full((13, n * f, n * f), np.nan)
        pad[:, :60, :60] = np.where(full == 0, np.nan, full)
        want = np.nanmean(pad.reshape(13, n, f, n, f), axis=(2, 4))
        assert got.shape == want.shape and (got == np.floor(want + 0.5)).all()


def test_radiometric_offset_is_removed_and_nodata_kept(tmp_path: Path) -> None:
    safe = make_l1c(tmp_path / "p", offsets={i: -1000 for i in range(13)})
    # A no-data corner in B02 (DN 0) and a valid B03 pixel below the offset.
    img = next((safe / "GRANULE").glob("*/IMG_DATA"))
    b02 = band_values("B2")
    b02[:5, :5] = 0
    write_jp2(img / f"{TILE}_B02.jp2", b02, 10)
    b03 = band_values("B3")
    b03[30, 30] = 500
    write_jp2(img / f"{TILE}_B03.jp2", b03, 10)
    assert read_offsets(safe / "MTD_MSIL1C.xml") == dict.fromkeys(S2_BANDS, -1000.0)
    s = stack_safe(safe, tmp_path / "h.tif", resampling="nearest")
    assert s["offsets"] == dict.fromkeys(S2_BANDS, -1000.0)
    raw = tmp_path / "raw.tif"
    stack_safe(safe, raw, resampling="nearest", harmonize=False)
    with rasterio.open(tmp_path / "h.tif") as h, rasterio.open(raw) as r:
        hc, rc = h.read().astype(int), r.read().astype(int)
    assert (hc[:, :5, :5] == 0).all() and (rc[:, :5, :5] == 0).all()  # one footprint, all bands
    valid = np.ones((60, 60), bool)
    valid[:5, :5] = False
    assert hc[2, 30, 30] == 1  # 500 - 1000 clipped to 1: still a valid pixel, not no-data
    valid[30, 30] = False
    # Valid pixels: DN + offset, never below 1 (B1's corner is exactly 1000 -> 1).
    np.testing.assert_array_equal(hc[:, valid], np.maximum(rc[:, valid] - 1000, 1))


def test_l2a_gives_12_bands_native_files_and_warns(tmp_path: Path) -> None:
    safe = make_l2a(tmp_path)
    product = find_safe_bands(safe)
    assert product.level == "L2A" and list(product.bands) == list(S2_L2A_BANDS)
    assert product.bands["B1"].path.parent.name == "R60m"
    assert product.bands["B5"].path.parent.name == "R20m"
    with pytest.warns(UserWarning, match="no B10"):
        s = stack_safe(safe, tmp_path / "l2a.tif", resampling="nearest")
    assert s["bands"] == list(S2_L2A_BANDS)
    assert s["offsets"] == dict.fromkeys(S2_L2A_BANDS, -1000.0)
    with rasterio.open(tmp_path / "l2a.tif") as ds:
        assert ds.descriptions == S2_L2A_BANDS
        cube = ds.read()
    for b, band in enumerate(S2_L2A_BANDS):
        k = S2_NATIVE_GSD_M[band] // 10
        native = np.repeat(np.repeat(band_values(band), k, 0), k, 1).astype(int)
        np.testing.assert_array_equal(cube[b], np.maximum(native - 1000, 1))


def test_missing_bands_are_named_and_nothing_written(tmp_path: Path) -> None:
    safe = make_l1c(tmp_path / "p", drop=("B8A", "B10"))
    out = tmp_path / "s2.tif"
    with pytest.raises(DataError, match=r"lacks band\(s\) B8A, B10"):
        stack_safe(safe, out)
    assert list(tmp_path.glob("*.tif*")) == [] and list(tmp_path.glob(".s2.tif*")) == []


def test_inconsistent_grid_is_refused_and_old_output_kept(tmp_path: Path) -> None:
    safe = make_l1c(tmp_path / "p")
    img = next((safe / "GRANULE").glob("*/IMG_DATA"))
    write_jp2(img / f"{TILE}_B05.jp2", band_values("B5"), 20, x0=X0 + 20)  # shifted by 1 px
    out = tmp_path / "s2.tif"
    out.write_bytes(b"previous result")
    with pytest.raises(DataError, match="B5 covers .*inconsistent grids"):
        stack_safe(safe, out)
    assert out.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_truncated_band_file_leaves_no_partial_output(tmp_path: Path) -> None:
    safe = make_l1c(tmp_path / "p")
    b12 = next((safe / "GRANULE").glob(f"*/IMG_DATA/{TILE}_B12.jp2"))
    b12.write_bytes(b12.read_bytes()[: b12.stat().st_size // 2])
    out = tmp_path / "s2.tif"
    with pytest.raises(DataError, match="B12"):
        stack_safe(safe, out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_not_a_safe_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a Sentinel-2 SAFE folder"):
        stack_safe(tmp_path, tmp_path / "x.tif")
    with pytest.raises(DataError, match="is not a folder"):
        stack_safe(tmp_path / "nothing", tmp_path / "x.tif")
    zipped = tmp_path / "S2A_MSIL1C.zip"
    zipped.write_bytes(b"PK")
    with pytest.raises(DataError, match="zipped"):
        stack_safe(zipped, tmp_path / "x.tif")


def test_several_granules_need_a_choice(tmp_path: Path, l1c: Path) -> None:
    import shutil

    safe = tmp_path / l1c.name
    shutil.copytree(l1c, safe)
    g = next((safe / "GRANULE").iterdir())
    shutil.copytree(g, safe / "GRANULE" / "L1C_T33UVQ_A023000_20200101T100031")
    with pytest.raises(DataError, match="2 granules"):
        stack_safe(safe, tmp_path / "x.tif")
    s = stack_safe(safe, tmp_path / "x.tif", granule=g.name)
    assert s["granule"] == g.name


def test_bad_resampling_is_refused(l1c: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown resampling"):
        stack_safe(l1c, tmp_path / "x.tif", resampling="bicubic")


def test_cli(l1c: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers())
    out = tmp_path / "cli.tif"
    args = p.parse_args(
        ["stack", str(l1c), "--out", str(out), "--resampling", "nearest", "--quiet"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an L1C with its MTD: nothing to warn about
        assert run(args) == 0
    assert "L1C" in capsys.readouterr().out
    with rasterio.open(out) as ds:
        assert ds.count == 13 and ds.descriptions == S2_BANDS
