"""``cloudfree fetch`` against a STAC API served on 127.0.0.1 (tests/data/stac/server.py): the
10 m bands copied exactly, the offset of baseline 04.00 removed per item, tiles of one day
mosaicked, both key conventions, cloudy items left out, retries, resume, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

pytest.importorskip("odc.stac", reason="the stac extra (odc-stac, pystac-client) is not installed")

from cloudfree.bands import S2_BANDS  # noqa: E402
from cloudfree.data.stac.fetch import FetchRequest, fetch  # noqa: E402
from cloudfree.data.stac.grid import area_grid, utm_epsg  # noqa: E402
from cloudfree.errors import CloudfreeError  # noqa: E402
from tests.data.stac import server  # noqa: E402

TEN_M = [S2_BANDS.index(b) for b in ("B2", "B3", "B4", "B8")]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from tests.conftest import _shared

    root = tmp_path_factory.mktemp("stac")
    return root, server.build(root, _shared(""))


def _bbox(margin_m: float = 0.0) -> tuple[float, float, float, float]:
    """The scene's extent in WGS84 (shrunk by 25 m so that the grid snaps onto it)."""
    from rasterio.warp import transform_bounds

    x0, y1 = server.ORIGIN
    x1, y0 = x0 + server.SIDE * 10, y1 - server.SIDE * 10
    return transform_bounds(server.CRS, "EPSG:4326", x0 + 25 - margin_m, y0 + 25 - margin_m,
                            x1 - 25 + margin_m, y1 - 25 + margin_m)  # fmt: skip


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def _req(url: str, **kw) -> FetchRequest:  # noqa: ANN003
    return FetchRequest(bbox=_bbox(), datetime="2021-06-01/2021-06-30", catalog=url,
                        collection=server.COLLECTION, crs=server.CRS, **kw)  # fmt: skip


def test_the_grid_is_the_utm_zone_on_the_60_m_lattice() -> None:
    assert utm_epsg(15.2, 45.0) == 32633 and utm_epsg(-70.5, -33.4) == 32719
    from rasterio.warp import transform_bounds

    g = area_grid(_bbox())
    assert g.crs == "EPSG:32633" and g.resolution == 10
    assert all(v % 60 == 0 for v in g.bounds)
    # the smallest lattice rectangle holding the area
    area = transform_bounds("EPSG:4326", g.crs, *_bbox(), densify_pts=21)
    assert g.bounds[0] <= area[0] < g.bounds[0] + 60 and g.bounds[1] <= area[1] < g.bounds[1] + 60
    assert g.bounds[2] - 60 < area[2] <= g.bounds[2] and g.bounds[3] - 60 < area[3] <= g.bounds[3]
    with pytest.warns(UserWarning, match=r"spans UTM zones \[32, 33\]"):
        area_grid((11.9, 45.0, 12.1, 45.1))


def test_dry_run_lists_the_days_and_leaves_out_cloudy_items(catalogue, tmp_path: Path) -> None:  # noqa: ANN001
    root, cat = catalogue
    with server.serve(root, cat["items"]) as srv:
        url = srv.url
        rec = fetch(_req(url, max_cloud=50), tmp_path / "out", dry_run=True, progress=False)
    assert list(rec["dates"]) == ["2021-06-01", "2021-06-06"]  # 06-11 is 90 % cloudy
    first = rec["dates"]["2021-06-01"]["items"]
    assert [i["id"] for i in first] == ["T33_A_20210601", "T33_B_20210601"]  # least cloudy first
    assert [i["processing_baseline"] for i in first] == ["05.09", "03.01"]
    assert sorted(first[0]["assets"]) == sorted(S2_BANDS)
    assert not (tmp_path / "out").exists()


def test_fetch_copies_the_10_m_bands_and_removes_the_offset(catalogue, tmp_path: Path) -> None:  # noqa: ANN001
    root, cat = catalogue
    truth = cat["truth"]
    out = tmp_path / "series"
    with server.serve(root, cat["items"]) as srv:
        url = srv.url
        fetch(_req(url, max_cloud=50), out, progress=False)
        hits = sum(srv.hits().values())
        assert hits > 0
        # run again: every day is there, nothing is read
        fetch(_req(url, max_cloud=50), out, progress=False)
        assert sum(srv.hits().values()) == hits
        # another area into the same folder would mix grids: refused
        with pytest.raises(CloudfreeError, match="another area or collection"):
            fetch(FetchRequest(**{**_req(url).__dict__, "bbox": _bbox(200.0)}), out,
                  progress=False)  # fmt: skip
    with rasterio.open(out / "s2" / "2021-06-01.tif") as ds:
        r0 = round((ds.transform.f - server.ORIGIN[1]) / 10)
        c0 = round((server.ORIGIN[0] - ds.transform.c) / 10)
        assert r0 > 0 and c0 > 0 and ds.crs.to_string() == "EPSG:32633" and ds.res == (10, 10)
        assert ds.descriptions == S2_BANDS and ds.tags()["ACQUISITION_DATE"] == "2021-06-01"
    inside = np.s_[:, r0 : r0 + 240, c0 : c0 + 240]
    for day in ("2021-06-01", "2021-06-06"):
        full = _read(out / "s2" / f"{day}.tif")
        outside = np.ones(full.shape[1:], bool)
        outside[r0 : r0 + 240, c0 : c0 + 240] = False
        assert (full[:, outside] == 0).all()  # the area is larger than the data: no data there
        got = full[inside]
        # two tiles of 06-01 (one with the +1000 offset) and the whole tile of 06-06: the 10 m
        # bands are the source's, pixel for pixel
        assert np.array_equal(got[TEN_M], truth[TEN_M]), day
        # the 20 m and 60 m bands: within their resampling (block means, then bilinear)
        for i, b in enumerate(S2_BANDS):
            if b not in ("B2", "B3", "B4", "B8"):
                err = np.abs(got[i].astype(float) - truth[i].astype(float)).mean()
                assert err < 0.1 * truth[i].mean(), (day, b, err)
    record = json.loads((out / "series.json").read_text())
    offsets = {i["id"]: i["offset_removed"] for i in record["dates"]["2021-06-01"]["items"]}
    assert offsets == {"T33_A_20210601": 1000, "T33_B_20210601": 0}
    assert record["grid"]["crs"] == "EPSG:32633" and record["dates"]["2021-06-01"]["bands"] == list(
        S2_BANDS
    )


def test_an_empty_search_says_what_was_searched(catalogue, tmp_path: Path) -> None:  # noqa: ANN001
    root, cat = catalogue
    with server.serve(root, cat["items"]) as srv:
        url = srv.url
        req = FetchRequest(bbox=_bbox(), datetime="2020-01-01/2020-01-31", catalog=url,
                           collection=server.COLLECTION)  # fmt: skip
        with pytest.raises(CloudfreeError, match=r"no item of sentinel-2-l1c .* 2020-01-01/2020"):
            fetch(req, tmp_path / "x", progress=False)


def test_a_failed_read_is_retried_and_one_that_keeps_failing_is_named(
    catalogue, tmp_path: Path
) -> None:  # noqa: ANN001
    root, cat = catalogue
    day2 = [i for i in cat["items"] if i["id"] == "T33_20210606"]
    req = FetchRequest(bbox=_bbox(), datetime="2021-06-06", catalog="", collection=server.COLLECTION,
                       crs=server.CRS)  # fmt: skip
    # (a server per case: GDAL caches what it read of a URL, failures too, per process)
    with server.serve(root, day2) as srv:
        req = FetchRequest(**{**req.__dict__, "catalog": srv.url})
        srv.fail(always=("T33_20210606_B11.tif",))
        with pytest.raises(CloudfreeError, match=r"T33_20210606_B11\.tif"):
            fetch(req, tmp_path / "always", progress=False)
        assert srv.hits()["T33_20210606_B11.tif"] > 1  # retried before giving up
        assert not (tmp_path / "always" / "s2" / "2021-06-06.tif").exists()
        assert not [p for p in (tmp_path / "always").rglob("*") if ".part" in p.name]
    with server.serve(root, day2) as srv:
        req = FetchRequest(**{**req.__dict__, "catalog": srv.url})
        srv.fail(once=("T33_20210606_B4.tif",))  # 404 once, then served
        fetch(req, tmp_path / "once", progress=False)
        assert srv.hits()["T33_20210606_B4.tif"] >= 2
        assert (tmp_path / "once" / "s2" / "2021-06-06.tif").is_file()


def test_missing_credentials_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudfree.data.stac.catalogs import CATALOGS, check_credentials, get_catalog

    with pytest.raises(CloudfreeError, match="set PC_SDK_SUBSCRIPTION_KEY"):
        check_credentials(CATALOGS["planetary-computer"], "sentinel-1-rtc", env={})
    with pytest.raises(CloudfreeError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        check_credentials(CATALOGS["earth-search"], "sentinel-2-l1c", env={})
    check_credentials(CATALOGS["earth-search"], "sentinel-2-c1-l2a", env={})  # public
    with pytest.raises(CloudfreeError, match="earth-search, planetary-computer, cdse"):
        get_catalog("earthsearch")
    assert get_catalog("https://example.org/stac/").url == "https://example.org/stac"


def test_the_command_line(catalogue, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    from cloudfree.cli import main

    root, cat = catalogue
    w, s, e, n = _bbox()
    geo = tmp_path / "area.geojson"
    geo.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "properties": {}}]}))  # fmt: skip
    with server.serve(root, cat["items"]) as srv:
        base = ["fetch", "--datetime", "2021-06-01/2021-06-10", "--catalog", srv.url,
                "--collection", server.COLLECTION, "--crs", server.CRS, "--no-progress"]  # fmt: skip
        assert main([*base, "--geojson", str(geo), "--out", str(tmp_path / "o"), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "2021-06-01: T33_A_20210601 (12.0 % cloud, baseline 05.09)" in out
        assert not (tmp_path / "o").exists()
        assert main([*base, "--bbox", f"{w},{s},{e},{n}", "--out", str(tmp_path / "o")]) == 0
    assert sorted(p.name for p in (tmp_path / "o" / "s2").iterdir()) == ["2021-06-01.tif",
                                                                          "2021-06-06.tif"]  # fmt: skip
    # the series folder is what composite reads
    assert main(["composite", str(tmp_path / "o"), "--out", str(tmp_path / "c.tif"), "--method",
                 "median", "--mask-backend", "dsen2cr", "--no-progress"]) == 0  # fmt: skip
    with (
        rasterio.open(tmp_path / "c.tif") as c,
        rasterio.open(tmp_path / "o/s2/2021-06-06.tif") as d,
    ):
        assert (c.crs, c.transform, c.count) == (d.crs, d.transform, 13)
    assert (
        main(["fetch", "--bbox", "1,2,3", "--datetime", "2021", "--out", str(tmp_path / "x")]) == 1
    )
    assert "four numbers W,S,E,N" in capsys.readouterr().err


def test_a_dask_cluster_loads_and_computes(catalogue, tmp_path: Path) -> None:  # noqa: ANN001
    distributed = pytest.importorskip("distributed")
    root, cat = catalogue
    day2 = [i for i in cat["items"] if i["id"] == "T33_20210606"]
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                 protocol="tcp", host="127.0.0.1",
                                 dashboard_address=None) as cluster,
        server.serve(root, day2) as srv,
    ):  # fmt: skip
        req = FetchRequest(bbox=_bbox(), datetime="2021-06-06", catalog=srv.url,
                           collection=server.COLLECTION, crs=server.CRS)  # fmt: skip
        fetch(req, tmp_path / "d", scheduler=cluster.scheduler_address, progress=False)
    got = _read(tmp_path / "d" / "s2" / "2021-06-06.tif")
    with rasterio.open(tmp_path / "d" / "s2" / "2021-06-06.tif") as ds:
        r0 = round((ds.transform.f - server.ORIGIN[1]) / 10)
        c0 = round((server.ORIGIN[0] - ds.transform.c) / 10)
    assert np.array_equal(got[TEN_M, r0 : r0 + 240, c0 : c0 + 240], cat["truth"][TEN_M])


def test_sentinel_1_rtc_nearest_in_time_in_db(catalogue, tmp_path: Path) -> None:  # noqa: ANN001
    """--s1: for each S2 day the nearest S1 acquisition within 6 days, linear gamma0 -> dB, its
    nodata NaN, on the S2 grid, written as s1/<S2 day>.tif (what composite and predict read)."""
    root, cat = catalogue
    with server.serve(root, cat["items"]) as srv:
        req = FetchRequest(**{**_req(srv.url, max_cloud=50).__dict__,
                              "s1_collection": server.S1_COLLECTION})  # fmt: skip
        rec = fetch(req, tmp_path / "o", progress=False)
    pairs = {d: v["s1_date"] for d, v in rec["s1"]["dates"].items()}
    assert pairs == {"2021-06-01": "2021-06-02", "2021-06-06": "2021-06-05"}
    assert "gamma0" in rec["s1"]["product"] and "sigma0" in rec["s1"]["product"]
    with rasterio.open(tmp_path / "o" / "s1" / "2021-06-06.tif") as ds:
        got = ds.read()
        assert ds.descriptions == ("VV", "VH") and ds.tags()["ACQUISITION_DATE"] == "2021-06-05"
        r0 = round((ds.transform.f - server.ORIGIN[1]) / 10)
        c0 = round((server.ORIGIN[0] - ds.transform.c) / 10)
    want = cat["s1_truth"]["2021-06-05"]
    inner = got[:, r0 : r0 + 240, c0 : c0 + 240]
    both = np.isfinite(want)
    assert (np.isnan(inner) == ~both).all()  # the nodata corner stays no data
    np.testing.assert_allclose(inner[both], want[both], atol=1e-3)  # 10 log10 of the linear value
    assert np.isnan(got[:, :r0]).all()  # outside the frame
    # the series folder with S1 is what composite and predict read
    from cloudfree.predict.many import list_scenes

    assert [s.s1 is not None for s in list_scenes(tmp_path / "o")] == [True, True]


def test_s1_from_a_catalogue_without_it_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from cloudfree.cli import main

    assert main(["fetch", "--bbox", "11.3,46.4,11.4,46.5", "--datetime", "2024-06",
                 "--out", "x", "--s1", "--catalog", "earth-search"]) == 1  # fmt: skip
    assert "--catalog planetary-computer" in capsys.readouterr().err


def test_planetary_computer_items_are_signed_per_day_and_recorded_unsigned(
    catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """Each day's items get a fresh token just before they are read (a stand-in for
    planetary_computer.sign: it would call the token API); series.json keeps the hrefs bare."""
    import dataclasses

    import planetary_computer

    import cloudfree.data.stac.fetch as f

    calls: list[str] = []

    def sign(item):  # noqa: ANN001, ANN202
        calls.append(item.id)
        for a in item.assets.values():
            a.href += "?se=2099&sig=fresh"
        return item

    monkeypatch.setattr(planetary_computer, "sign", sign)
    root, cat = catalogue
    with server.serve(root, cat["items"]) as srv:
        pc = dataclasses.replace(f.get_catalog("planetary-computer"), url=srv.url, name="pc")
        monkeypatch.setattr(f, "get_catalog", lambda name: pc)
        rec = fetch(_req(srv.url, max_cloud=50), tmp_path / "o", progress=False)
    assert calls == ["T33_A_20210601", "T33_B_20210601", "T33_20210606"]  # per day, at read time
    hrefs = [h for d in rec["dates"].values() for i in d["items"] for h in i["assets"].values()]
    assert hrefs and not any("sig=" in h for h in hrefs)


def test_earth_search_l2a_follows_the_baseline_not_the_flags(catalogue, tmp_path: Path) -> None:  # noqa: ANN001
    """Collection 1 L2A: 12 bands; the offset removed per item from its baseline, whatever its
    earthsearch:boa_offset_applied flag or its raster:bands offset say (recorded, warned)."""
    from cloudfree.bands import S2_L2A_BANDS

    root, cat = catalogue
    with server.serve(root, cat["items"]) as srv:
        req = FetchRequest(**{**_req(srv.url).__dict__, "collection": server.ES_L2A})
        with pytest.warns(UserWarning, match=r"raster:bands offset says 1000 DN, its processing "
                          r"baseline 03\.01 says 0: the baseline is followed"):  # fmt: skip
            rec = fetch(req, tmp_path / "o", progress=False)
    assert list(rec["dates"]) == ["2021-06-16", "2021-06-21"]
    ten = [S2_L2A_BANDS.index(b) for b in ("B2", "B3", "B4", "B8")]
    for day, offset in (("2021-06-16", 1000), ("2021-06-21", 0)):
        with rasterio.open(tmp_path / "o" / "s2" / f"{day}.tif") as ds:
            got = ds.read()
            assert ds.descriptions == S2_L2A_BANDS and ds.tags()["level"] == "L2A"
            r0 = round((ds.transform.f - server.ORIGIN[1]) / 10)
            c0 = round((server.ORIGIN[0] - ds.transform.c) / 10)
        assert got.shape[0] == 12
        assert np.array_equal(got[ten, r0 : r0 + 240, c0 : c0 + 240], cat["truth"][TEN_M]), day
        (item,) = rec["dates"][day]["items"]
        assert item["offset_removed"] == offset and item["raster_bands_offset_dn"] == 1000
        assert rec["dates"][day]["level"] == "L2A (no B10)"


def test_cdse_jp2_from_its_s3_finest_asset_per_band(
    catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """The Copernicus Data Space Ecosystem: JP2 on S3 (this server stands in for its endpoint
    through the environment, as a user's own endpoint would), keys from the environment, one
    asset per band and resolution (the 10 m one read, never the 60 m listed before it), the
    baseline from processing:version."""
    import dataclasses

    import cloudfree.data.stac.fetch as f

    root, cat = catalogue
    with server.serve(root, cat["items"]) as srv:
        cdse = dataclasses.replace(f.get_catalog("cdse"), url=srv.url)
        monkeypatch.setattr(f, "get_catalog", lambda name: cdse)
        req = FetchRequest(**{**_req(srv.url).__dict__, "collection": server.CDSE_L2A})
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(var, raising=False)
        with pytest.raises(CloudfreeError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
            fetch(req, tmp_path / "o", progress=False)
        assert not (tmp_path / "o").exists() and not srv.hits()  # nothing read, nothing made
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        monkeypatch.setenv("AWS_S3_ENDPOINT", f"127.0.0.1:{srv.port}")
        monkeypatch.setenv("AWS_HTTPS", "NO")
        rec = fetch(req, tmp_path / "o", progress=False)
        hits = srv.hits()
    (item,) = rec["dates"]["2021-06-26"]["items"]
    assert item["processing_baseline"] == "05.00" and item["offset_removed"] == 1000
    assert item["assets"]["B2"] == f"s3://eodata/files/{item['id']}_B2_10m.jp2"
    assert hits.get(f"{item['id']}_B2_10m.jp2") and not hits.get(f"{item['id']}_B2_60m.jp2")
    with rasterio.open(tmp_path / "o" / "s2" / "2021-06-26.tif") as ds:
        got = ds.read()
        r0 = round((ds.transform.f - server.ORIGIN[1]) / 10)
        c0 = round((server.ORIGIN[0] - ds.transform.c) / 10)
    from cloudfree.bands import S2_L2A_BANDS

    ten = [S2_L2A_BANDS.index(b) for b in ("B2", "B3", "B4", "B8")]
    assert np.array_equal(got[ten, r0 : r0 + 240, c0 : c0 + 240], cat["truth"][TEN_M])


def test_rtc_with_an_incidence_angle_becomes_flat_ground_sigma0(catalogue, tmp_path: Path) -> None:  # noqa: ANN001
    """An S1 item with an ellipsoid incidence-angle asset: sigma0 = gamma0 x cos(incidence),
    i.e. dB + 10 log10(cos(theta)) at every pixel, and series.json says so; one without stays
    gamma0 and says that."""
    root, cat = catalogue
    with server.serve(root, cat["items"]) as srv:
        req = FetchRequest(**{**_req(srv.url).__dict__, "datetime": "2021-06-06/2021-06-11",
                              "s1_collection": server.S1_COLLECTION})  # fmt: skip
        rec = fetch(req, tmp_path / "o", progress=False)
    dates = rec["s1"]["dates"]
    assert dates["2021-06-11"]["s1_date"] == "2021-06-09"
    assert dates["2021-06-11"]["quantity"].startswith("sigma0")
    assert dates["2021-06-11"]["incidence"] == ["S1A_IW_2021-06-09: asset incidence_angle"]
    assert dates["2021-06-06"]["quantity"] == "gamma0" and dates["2021-06-06"]["incidence"] is None
    with rasterio.open(tmp_path / "o" / "s1" / "2021-06-11.tif") as ds:
        got = ds.read()
        assert ds.tags()["quantity"].startswith("sigma0")
        r0 = round((ds.transform.f - server.ORIGIN[1]) / 10)
        c0 = round((server.ORIGIN[0] - ds.transform.c) / 10)
    theta = np.deg2rad(server.incidence_angle(240).astype(np.float64))
    want = cat["s1_truth"]["2021-06-09"] + 10 * np.log10(np.cos(theta))  # -0.63 to -1.58 dB
    inner = got[:, r0 : r0 + 240, c0 : c0 + 240]
    both = np.isfinite(want)
    assert (np.isnan(inner) == ~both).all()
    np.testing.assert_allclose(inner[both], want[both], atol=1e-3)
