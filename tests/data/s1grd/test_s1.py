"""``cloudfree s1`` on sarsen's real GRD product (its annotation, calibration and noise tables;
DN written by the tests): sigma0 against the tables worked by hand, the geolocation grid points
where they belong, the geometry of raised and tilted ground, and the errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

pytest.importorskip("sarsen", reason="the s1 extra (sarsen, xarray-sentinel) is not installed")

from cloudfree.data.s1grd.product import open_grd  # noqa: E402
from cloudfree.errors import CloudfreeError, DataError  # noqa: E402
from tests.data.s1grd import product as tp  # noqa: E402


@pytest.fixture(scope="module")
def shared() -> Path:
    from tests.conftest import _shared

    return _shared("s1grd").parent


@pytest.fixture(scope="module")
def geometry(shared: Path):  # noqa: ANN201
    from cloudfree.data.s1grd.geocode import Geometry

    return Geometry.of(open_grd(tp.source(shared)))


# ---- the tables, by hand --------------------------------------------------------------------


def _vectors(path: Path, tag: str, lut: str) -> list[tuple[float, list[float], list[float]]]:
    root = ET.parse(path).getroot()
    return [(float(v.findtext("line")), [float(x) for x in v.findtext("pixel").split()],
             [float(x) for x in v.findtext(lut).split()]) for v in root.iter(tag)]  # fmt: skip


def _lerp(x: float, xs: list[float], ys: list[float]) -> float:
    """Linear interpolation by a plain bracket search (held at the ends)."""
    if x <= xs[0]:
        return ys[0]
    for k in range(len(xs) - 1):
        if xs[k] <= x <= xs[k + 1]:
            t = (x - xs[k]) / (xs[k + 1] - xs[k])
            return ys[k] + t * (ys[k + 1] - ys[k])
    return ys[-1]


def _bilinear(
    vecs: list[tuple[float, list[float], list[float]]], line: float, pixel: float
) -> float:
    lines = [v[0] for v in vecs]
    at = [_lerp(pixel, v[1], v[2]) for v in vecs]
    return _lerp(line, lines, at)


def _by_hand(safe: Path, line: float, pixel: float, dn: float) -> float:
    """sigma0 = (DN^2 - noiseRange x noiseAzimuth) / A_sigma^2, each table worked by hand."""
    cal = next((safe / "annotation" / "calibration").glob("calibration-*-vv-*.xml"))
    noise = next((safe / "annotation" / "calibration").glob("noise-*-vv-*.xml"))
    a = _bilinear(_vectors(cal, "calibrationVector", "sigmaNought"), line, pixel)
    n_range = _bilinear(_vectors(noise, "noiseRangeVector", "noiseRangeLut"), line, pixel)
    n_az = 1.0
    for blk in ET.parse(noise).getroot().iter("noiseAzimuthVector"):
        if (int(blk.findtext("firstAzimuthLine")) <= line <= int(blk.findtext("lastAzimuthLine"))
                and int(blk.findtext("firstRangeSample")) <= pixel
                <= int(blk.findtext("lastRangeSample"))):  # fmt: skip
            n_az = _lerp(line, [float(x) for x in blk.findtext("line").split()],
                         [float(x) for x in blk.findtext("noiseAzimuthLut").split()])  # fmt: skip
    return max((dn * dn - n_range * n_az) / (a * a), 1e-5)


def test_sigma0_is_what_the_tables_give_by_hand(shared: Path) -> None:
    from cloudfree.data.s1grd.radiometry import Radiometry

    safe = tp.source(shared)
    p = open_grd(safe).pols["VV"]
    rad = Radiometry(p.calibration, p.noise)
    # lines between and on calibration/noise vectors, pixels in each sub-swath (IW1 ends at
    # 8889, where the noise range vectors have their irregular step) and at the far edge
    lines = [0, 317, 4010, 8355, 16704]
    pixels = [5, 3918, 8889, 8890, 13061, 26101]
    dn = np.full((1, 1), 180, np.uint16)
    for line in lines:
        for pixel in pixels:
            got = rad.sigma0(dn, line, pixel)[0, 0]
            want = _by_hand(safe, line, pixel, 180.0)
            assert got == pytest.approx(want, rel=2e-6), (line, pixel)
    # dark pixels: noise above the signal -> the floor, not no data; DN 0 -> no data
    low = rad.sigma0(np.array([[1, 0]], np.uint16), 4010, 13060)
    assert low[0, 0] == pytest.approx(1e-5) and np.isnan(low[0, 1])


# ---- geometry -------------------------------------------------------------------------------


def _utm(lon: float, lat: float) -> tuple[str, float, float]:
    from pyproj import Transformer

    crs = f"EPSG:{32600 + int((lon + 180) // 6) + 1}"
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    return crs, x, y


def test_the_geolocation_grid_points_land_where_the_annotation_says(geometry) -> None:  # noqa: ANN001
    g = geometry.gcp
    worst = 0.0
    for i in range(1, g.sizes["azimuth_time"], 2):
        for j in range(1, g.sizes["slant_range_time"], 3):
            crs, x, y = _utm(float(g.longitude[i, j]), float(g.latitude[i, j]))
            line, pixel = geometry.radar_coordinates(np.full((1, 1), float(g.height[i, j])),
                                                     np.array([x]), np.array([y]), crs)  # fmt: skip
            err = max(abs(line[0, 0] - int(g.line[i])), abs(pixel[0, 0] - int(g.pixel[j])))
            worst = max(worst, err)
    assert worst < 1.0  # within one 10 m pixel of the annotation's own geolocation


def test_raised_and_tilted_ground_move_by_height_over_tan_incidence(geometry) -> None:  # noqa: ANN001
    """A point raised by h is seen nearer in ground range by h / tan(incidence) (ESA's geocoding
    guide): a flat DEM at 0 and at 800 m, and a DEM tilted along x, against that."""
    g = geometry.gcp
    crs, x, y = _utm(float(g.longitude[5, 10]), float(g.latitude[5, 10]))
    xs = x + np.arange(-500, 501, 250.0)
    ys = np.array([y])
    flat = geometry.radar_coordinates(np.zeros((1, 5)), xs, ys, crs)
    raised = geometry.radar_coordinates(np.full((1, 5), 800.0), xs, ys, crs)
    tilt = 800.0 * (xs - xs[0]) / (xs[-1] - xs[0])
    tilted = geometry.radar_coordinates(tilt[None], xs, ys, crs)
    theta = np.deg2rad(geometry.incidence(flat[0], flat[1]))
    spacing = geometry.product.range_pixel_spacing
    for heights, (line, pixel) in ((np.full(5, 800.0), raised), (tilt, tilted)):
        want = -heights / np.tan(theta[0]) / spacing  # pixels; GRD pixels grow with range
        np.testing.assert_allclose(pixel[0] - flat[1][0], want, rtol=0.03, atol=0.05)
        assert np.abs(line[0] - flat[0][0]).max() < 0.3  # zero Doppler: along-track ~unmoved


# ---- the command ----------------------------------------------------------------------------


def _scene(shared: Path, tmp: Path, geometry, dn_vv: int = 200, side: int = 300,  # noqa: ANN001
           point: bool = False, pols: tuple[str, ...] = ("vv", "vh")) -> dict:  # fmt: skip
    """A product copy with DN around geolocation grid point (5, 10), a --like grid of ``side``
    px at 10 m centred on it (the point at a pixel centre) and a flat DEM at its height."""
    g = geometry.gcp
    lat, lon, h = (float(g[v][5, 10]) for v in ("latitude", "longitude", "height"))
    line, pixel = int(g.line[5]), int(g.pixel[10])
    block = np.full((500, 500), dn_vv, np.uint16)
    if point:
        block[:] = 20
        block[250, 250] = 4000  # a bright point target at the grid point itself
    dn = {"vv": [(line - 250, pixel - 250, block)],
          "vh": [(line - 250, pixel - 250, (block // 4).astype(np.uint16))]}  # fmt: skip
    safe = tp.make(shared, tmp / "grd", dn, pols)
    crs, x, y = _utm(lon, lat)
    x0, y0 = x - 5 - 10 * (side // 2), y + 5 + 10 * (side // 2)  # the point at a pixel centre
    like = tmp / "like.tif"
    with rasterio.open(like, "w", driver="GTiff", width=side, height=side, count=1,
                       dtype="uint16", crs=crs, transform=from_origin(x0, y0, 10, 10)) as ds:  # fmt: skip
        ds.write(np.ones((1, side, side), np.uint16))
    dem = tmp / "dem.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=100, height=100, count=1,
                       dtype="float32", crs="EPSG:4326",
                       transform=from_origin(lon - 0.05, lat + 0.05, 0.001, 0.001)) as ds:  # fmt: skip
        ds.write(np.full((1, 100, 100), h, np.float32))
    return {"safe": safe, "like": like, "dem": dem, "line": line, "pixel": pixel,
            "centre": side // 2}  # fmt: skip


def test_the_command_writes_sigma0_db_on_the_s2_grid(shared: Path, tmp_path: Path, geometry,  # noqa: ANN001
                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from cloudfree.cli import main

    s = _scene(shared, tmp_path, geometry)
    out = tmp_path / "s1.tif"
    args = ["s1", str(s["safe"]), "--like", str(s["like"]), "--out", str(out), "--dem",
            str(s["dem"]), "--dem-heights", "ellipsoid", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    lines_read = int(printed.split(" read ")[1].split()[0])
    assert "100.0 % of the grid in the swath" in printed and lines_read < 1000  # not the swath
    with rasterio.open(out) as ds, rasterio.open(s["like"]) as like:
        got = ds.read()
        assert (ds.crs, ds.transform, ds.shape) == (like.crs, like.transform, like.shape)
        assert ds.descriptions == ("VV", "VH") and ds.dtypes == ("float32", "float32")
        assert ds.tags()["ACQUISITION_DATE"] == "2021-12-23"
        assert "sigma0" in ds.tags()["quantity"] and ds.tags()["speckle_filter"] == "none"
    c = s["centre"]
    # the grid point's pixel: what the tables give by hand at its (line, pixel), in dB
    want = 10 * np.log10(_by_hand(tp.source(shared), s["line"], s["pixel"], 200.0))
    assert got[0, c, c] == pytest.approx(want, abs=0.02)
    want_vh = 10 * np.log10(_by_hand(tp.source(shared), s["line"], s["pixel"], 50.0))
    assert got[1, c, c] == pytest.approx(want_vh, abs=0.05)  # VH: VV's tables, DN / 4
    assert np.isfinite(got).all()  # the 500 x 500 DN block covers the 3 km grid
    # the zipped product gives the same bytes' worth of result
    import shutil

    zipped = shutil.make_archive(str(tmp_path / "grd"), "zip", s["safe"].parent, s["safe"].name)
    assert main([*args[:1], zipped, *args[2:5], str(tmp_path / "z.tif"), *args[6:]]) == 0
    with rasterio.open(tmp_path / "z.tif") as ds:
        assert np.array_equal(ds.read(), got, equal_nan=True)


def test_a_point_target_lands_on_its_grid_point(shared: Path, tmp_path: Path, geometry) -> None:  # noqa: ANN001
    """A bright pixel written at a geolocation grid point's (line, pixel) peaks within one
    output pixel of that point's latitude and longitude."""
    from cloudfree.data.s1grd.terrain import correct

    s = _scene(shared, tmp_path, geometry, point=True, side=60)
    correct(open_grd(s["safe"]), s["like"], tmp_path / "s1.tif", s["dem"],
            dem_heights="ellipsoid", progress=False)  # fmt: skip
    with rasterio.open(tmp_path / "s1.tif") as ds:
        vv = ds.read(1)
    r, c = np.unravel_index(np.nanargmax(vv), vv.shape)
    assert abs(r - s["centre"]) <= 1 and abs(c - s["centre"]) <= 1, (r, c)


def test_speckle_filter_on_request(shared: Path, tmp_path: Path, geometry) -> None:  # noqa: ANN001
    from cloudfree.data.s1grd.terrain import correct

    s = _scene(shared, tmp_path, geometry, side=60)
    rng = np.random.default_rng(0)
    speckled = (200 * np.sqrt(rng.gamma(4.4, 1 / 4.4, (500, 500)))).astype(np.uint16)
    safe = tp.make(shared, tmp_path / "sp", {p: [(s["line"] - 250, s["pixel"] - 250, speckled)]
                                             for p in ("vv", "vh")})  # fmt: skip
    cv = {}
    for flag in (False, True):
        out = tmp_path / f"s1_{flag}.tif"
        correct(open_grd(safe), s["like"], out, s["dem"], dem_heights="ellipsoid",
                speckle=flag, progress=False)  # fmt: skip
        with rasterio.open(out) as ds:
            lin = 10 ** (ds.read(1)[5:-5, 5:-5] / 10)
            assert ds.tags()["speckle_filter"] == ("refined Lee" if flag else "none")
        cv[flag] = lin.std() / lin.mean()
    assert cv[True] < 0.7 * cv[False]


def test_refined_lee_smooths_speckle_and_keeps_edges() -> None:
    from scipy.ndimage import uniform_filter

    from cloudfree.data.s1grd.speckle import refined_lee

    assert np.allclose(refined_lee(np.full((20, 20), 0.05, np.float32)), 0.05)
    rng = np.random.default_rng(1)
    truth = np.full((96, 96), 0.02)
    truth[:, 48:] = 0.2  # a step edge between dark and bright fields
    img = (truth * rng.gamma(4.4, 1 / 4.4, truth.shape)).astype(np.float32)
    out = refined_lee(img)
    flat = np.s_[8:-8, 8:40]
    assert out[flat].std() / out[flat].mean() < 0.5 * img[flat].std() / img[flat].mean()
    # the two columns either side of the edge stay on their side (a 7 x 7 boxcar blurs them)
    near = out[8:-8, 46:50].mean(axis=0)
    box = uniform_filter(img.astype(np.float64), 7)[8:-8, 46:50].mean(axis=0)
    assert near[1] < 0.04 and near[2] > 0.15 and box[1] > 0.06
    nan = img.copy()
    nan[:, :5] = np.nan
    assert np.isnan(refined_lee(nan)[:, :5]).all()


def test_errors_say_what_to_do(shared: Path, tmp_path: Path, geometry) -> None:  # noqa: ANN001
    from cloudfree.data.s1grd.terrain import correct

    s = _scene(shared, tmp_path, geometry, side=40, pols=("vv",))
    one = open_grd(s["safe"])
    with pytest.raises(DataError, match=r"has no VH .*1SDV.*--missing-pol nan"):
        correct(one, s["like"], tmp_path / "o.tif", s["dem"], dem_heights="ellipsoid")
    assert not (tmp_path / "o.tif").exists()
    correct(one, s["like"], tmp_path / "o.tif", s["dem"], dem_heights="ellipsoid",
            missing_pol="nan", progress=False)  # fmt: skip
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert np.isfinite(ds.read(1)).all() and np.isnan(ds.read(2)).all()
        assert ds.tags()["missing"] == "VH"
    # a DEM that does not cover the grid
    small = tmp_path / "small.tif"
    with rasterio.open(s["dem"]) as d, rasterio.open(
        small, "w", **(d.profile | {"width": 3, "height": 3})
    ) as o:  # fmt: skip
        o.write(d.read(window=rasterio.windows.Window(0, 0, 3, 3)))
    with pytest.raises(DataError, match="not the whole output grid"):
        correct(one, s["like"], tmp_path / "x.tif", small, dem_heights="ellipsoid",
                missing_pol="nan")  # fmt: skip
    # a grid the swath does not reach (200 km west), with its DEM
    far = tmp_path / "far.tif"
    with rasterio.open(s["like"]) as d, rasterio.open(
        far, "w", **(d.profile | {"transform": d.transform * rasterio.Affine.translation(-20000, 0)})
    ) as o:  # fmt: skip
        o.write(d.read())
    flat = tmp_path / "flat.tif"
    with rasterio.open(flat, "w", driver="GTiff", width=10, height=10, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(5, 50, 1, 1)) as o:  # fmt: skip
        o.write(np.zeros((1, 10, 10), np.float32))
    with pytest.raises(DataError, match="does not reach the --like grid"):
        correct(one, far, tmp_path / "x.tif", flat, dem_heights="ellipsoid", missing_pol="nan")
    # SLC and EW products, by name
    for tag, value, match in (("productType", "SLC", "is a SLC product"),
                              ("mode", "EW", "is a EW product")):  # fmt: skip
        bad = tmp_path / f"bad_{value}"
        import shutil

        shutil.copytree(s["safe"], bad / s["safe"].name)
        ann = next((bad / s["safe"].name / "annotation").glob("*.xml"))
        text = ann.read_text()
        ann.write_text(text.replace(f"<{tag}>{'GRD' if value == 'SLC' else 'IW'}</{tag}>",
                                    f"<{tag}>{value}</{tag}>", 1))  # fmt: skip
        with pytest.raises(DataError, match=match):
            open_grd(bad / s["safe"].name)
    with pytest.raises(DataError, match="not a Sentinel-1 product"):
        open_grd(tmp_path / "like.tif")


def test_dem_heights_over_a_geoid(shared: Path, tmp_path: Path) -> None:
    """The Rome DEM is EPSG:9707 (WGS 84 + EGM96 height): without PROJ's geoid grid here, the
    conversion is refused naming the grid (PROJ would silently leave the heights as they are);
    a DEM that declares no vertical datum is taken as ellipsoidal, with a warning."""
    from cloudfree.data.s1grd.dem import DemOnGrid, vertical_datum

    rome = shared / "s1grd" / "Rome-30m-DEM.tif"
    with rasterio.open(rome) as ds:
        assert vertical_datum(ds.crs.to_wkt()) == "egm96"
        crs, transform = ds.crs, ds.transform
    grid = ("EPSG:4326", transform * rasterio.Affine.translation(10, 10), 50, 50)
    if not tp.has_geoid_grid("us_nga_egm96_15.tif"):
        with pytest.raises(CloudfreeError, match=r"us_nga_egm96_15\.tif.*PROJ_NETWORK=ON"):
            DemOnGrid(rome, *grid)
    dem = DemOnGrid(rome, *grid, heights="ellipsoid")
    with rasterio.open(rome) as ds:
        want = ds.read(1, window=rasterio.windows.Window(10, 10, 50, 50))
    np.testing.assert_allclose(dem.read(0, 0, 50, 50), want, atol=1e-3)  # same grid: copied
    dem.close()
    plain = tmp_path / "plain.tif"
    with (
        rasterio.open(rome) as ds,
        rasterio.open(plain, "w", **(ds.profile | {"crs": "EPSG:4326"})) as o,
    ):
        o.write(ds.read())
    with pytest.warns(UserWarning, match="declares no vertical datum"):
        DemOnGrid(plain, *grid).close()
    assert crs is not None
