"""Sentinel-1 GRD from a STAC catalogue served on 127.0.0.1 (tests/data/stac/server.py): a GRD
item as Planetary Computer's (measurement COGs and the product's XML as assets) made into
sigma0 by ``cloudfree s1`` and by ``cloudfree fetch --s1``, and Copernicus DEM GLO-30 fetched
when no DEM is given."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

pytest.importorskip("sarsen", reason="the s1 extra (sarsen, xarray-sentinel) is not installed")
pytest.importorskip("odc.stac", reason="the stac extra (odc-stac, pystac-client) is not installed")

from cloudfree.data.s1grd.product import open_grd  # noqa: E402
from tests.data.s1grd import product as tp  # noqa: E402
from tests.data.stac import server  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A test product with DN around geolocation grid point (5, 10), its files under a
    catalogue root, a flat DEM at that point's height, and the point on a 60 m lattice."""
    from pyproj import Transformer

    from cloudfree.data.s1grd.geocode import Geometry
    from tests.conftest import _shared

    shared = _shared("s1grd").parent
    root = tmp_path_factory.mktemp("grd")
    g = Geometry.of(open_grd(tp.source(shared))).gcp
    lat, lon, h = (float(g[v][5, 10]) for v in ("latitude", "longitude", "height"))
    line, pixel = int(g.line[5]), int(g.pixel[10])
    rng = np.random.default_rng(3)
    block = rng.integers(100, 400, (700, 700)).astype(np.uint16)
    safe = tp.make(shared, root / "grd", {"vv": [(line - 350, pixel - 350, block)],
                                          "vh": [(line - 350, pixel - 350, block // 4)]})  # fmt: skip
    (root / "files").mkdir()
    for f in safe.rglob("*"):
        if f.is_file() and f.suffix in (".xml", ".tiff"):
            shutil.copyfile(f, root / "files" / f"grd_{f.parent.name}_{f.name}")
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True).transform(lon, lat)
    origin = (np.floor(x / 60) * 60 - 1200, np.floor(y / 60) * 60 + 1200)
    dem = root / "files" / "dem.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=200, height=200, count=1,
                       dtype="float32", crs="EPSG:4326",
                       transform=from_origin(lon - 0.1, lat + 0.1, 0.001, 0.001)) as ds:  # fmt: skip
        ds.write(np.full((1, 200, 200), h, np.float32))
    return {"shared": shared, "root": root, "safe": safe, "origin": origin, "dem": dem,
            "lon": lon, "lat": lat, "footprint": [float(g.longitude.min()),
            float(g.latitude.min()), float(g.longitude.max()), float(g.latitude.max())]}  # fmt: skip


def _grd_item(site: dict, base: str) -> dict:
    """The product as Planetary Computer's sentinel-1-grd item (hrefs under ``base``)."""
    assets = {}
    for f in sorted((site["root"] / "files").glob("grd_*")):
        name = f.name
        pol = "vv" if "-vv-" in name else "vh"
        kind = ("vv" if pol == "vv" else "vh") if name.endswith(".tiff") else (
            f"schema-calibration-{pol}" if "_calibration-" in name else
            f"schema-noise-{pol}" if "_noise-" in name else
            f"schema-product-{pol}" if "_annotation_" in name else None)  # fmt: skip
        if kind:
            assets[kind] = {"href": f"{base}/files/{name}", "roles": ["data"]}
    w, s, e, n = site["footprint"]
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": tp.NAME.removesuffix(".SAFE"),
        "collection": "sentinel-1-grd", "bbox": [w, s, e, n],
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "properties": {"datetime": "2021-12-23T05:11:35Z", "sar:product_type": "GRD",
                       "sar:polarizations": ["VV", "VH"]},
        "assets": assets, "links": [],
    }  # fmt: skip


def _like(site: dict, path: Path, side: int = 120) -> Path:
    x0, y0 = site["origin"]
    with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=1,
                       dtype="uint16", crs="EPSG:32633",
                       transform=from_origin(x0, y0, 10, 10)) as ds:  # fmt: skip
        ds.write(np.ones((1, side, side), np.uint16))
    return path


def _dem_item(site: dict) -> dict:
    lon, lat = site["lon"], site["lat"]
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": "Copernicus_DSM_COG_10_test",
        "collection": "cop-dem-glo-30", "bbox": [lon - 0.1, lat - 0.1, lon + 0.1, lat + 0.1],
        "geometry": {"type": "Polygon", "coordinates": [[[lon - 0.1, lat - 0.1],
                     [lon + 0.1, lat - 0.1], [lon + 0.1, lat + 0.1], [lon - 0.1, lat + 0.1],
                     [lon - 0.1, lat - 0.1]]]},
        "properties": {"datetime": "2021-04-22T00:00:00Z"},
        "assets": {"data": {"href": "/files/dem.tif", "roles": ["data"]}}, "links": [],
    }  # fmt: skip


def test_s1_reads_a_grd_item_and_fetches_its_dem(site: dict, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """``cloudfree s1 ITEM.json``: the XML assets downloaded, the measurement read in ranges
    over HTTP; no --dem: Copernicus DEM from the catalogue, its EGM2008 heights refused without
    PROJ's grid (named) or taken as told; the same values as the local SAFE with the DEM file."""
    from cloudfree.cli import main
    from cloudfree.data.s1grd.terrain import correct

    like = _like(site, tmp_path / "like.tif")
    want_path = tmp_path / "want.tif"
    correct(open_grd(site["safe"]), like, want_path, site["dem"], dem_heights="ellipsoid",
            progress=False)  # fmt: skip
    with server.serve(site["root"], [_dem_item(site)]) as srv:
        item = tmp_path / "item.json"
        item.write_text(json.dumps(_grd_item(site, srv.url)))
        base = ["s1", str(item), "--like", str(like), "--dem-catalog", srv.url, "--no-progress"]
        if not tp.has_geoid_grid("us_nga_egm08_25.tif"):
            assert main([*base, "--out", str(tmp_path / "x.tif")]) == 1
            assert "us_nga_egm08_25.tif" in capsys.readouterr().err
        assert main([*base, "--out", str(tmp_path / "got.tif"), "--dem-heights", "ellipsoid"]) == 0
        hits = srv.hits()
    assert hits.get("dem.tif") and any(k.endswith(".tiff") for k in hits)
    with rasterio.open(tmp_path / "got.tif") as got, rasterio.open(want_path) as want:
        a, b = got.read(), want.read()
        assert got.tags()["product"] == tp.NAME.removesuffix(".SAFE")
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, b, atol=1e-4)  # the DEM on the grid vs warped: same heights


def test_fetch_s1_makes_grd_items_into_sigma0(site: dict, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """``fetch --s1`` with a GRD collection: each S2 day gets the nearest GRD pass made into
    sigma0 on its grid (what ``cloudfree s1`` gives), recorded as such in series.json."""
    from cloudfree.data.s1grd.terrain import Grid, correct
    from cloudfree.data.stac.fetch import FetchRequest, fetch
    from cloudfree.data.stac.grid import area_grid

    monkeypatch.setattr(server, "ORIGIN", site["origin"])
    truth = server.scene(site["shared"])
    s2 = server._item(site["root"], "T33_S2_20211222", "2021-12-22", (0, 240), truth,
                      server.PC_KEYS, "05.10", 1.0)  # fmt: skip
    from rasterio.warp import transform_bounds

    x0, y1 = site["origin"]
    bbox = transform_bounds("EPSG:32633", "EPSG:4326", x0 + 25, y1 - 2400 + 25, x0 + 2400 - 25,
                            y1 - 25)  # fmt: skip
    # hrefs "/files/..." are made absolute by the server when it answers the search
    with server.serve(site["root"], [s2, _grd_item(site, "")]) as srv:
        req = FetchRequest(bbox=bbox, datetime="2021-12-20/2021-12-24", catalog=srv.url,
                           collection=server.COLLECTION, crs="EPSG:32633",
                           s1_collection="sentinel-1-grd", s1_dem=str(site["dem"]),
                           s1_dem_heights="ellipsoid")  # fmt: skip
        rec = fetch(req, tmp_path / "o", progress=False)
    s1 = rec["s1"]
    assert "sigma0" in s1["product"] and s1["dem"] == {"file": str(site["dem"]),
                                                       "heights": "ellipsoid"}  # fmt: skip
    day = s1["dates"]["2021-12-22"]
    assert day["s1_date"] == "2021-12-23" and day["quantity"] == "sigma0"
    assert day["frames"] == [tp.NAME.removesuffix(".SAFE")] and day["valid_fraction"] > 0.99
    g = area_grid(bbox, "EPSG:32633")
    correct(open_grd(site["safe"]), Grid(g.crs, g.transform(), g.width, g.height),
            tmp_path / "want.tif", site["dem"], dem_heights="ellipsoid", progress=False)  # fmt: skip
    with rasterio.open(tmp_path / "o" / "s1" / "2021-12-22.tif") as got, rasterio.open(
        tmp_path / "want.tif"
    ) as want:  # fmt: skip
        assert got.tags()["quantity"] == "sigma0" and got.transform == want.transform
        np.testing.assert_array_equal(got.read(), want.read())
    # the series with its S1 is what predict and composite read
    from cloudfree.predict.many import list_scenes

    assert [sc.s1 is not None for sc in list_scenes(tmp_path / "o")] == [True]
