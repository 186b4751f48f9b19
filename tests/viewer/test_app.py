"""The viewer API through FastAPI's TestClient: listing, filters, images, errors, and refusals."""

from __future__ import annotations

import argparse
import io
import json
import warnings

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the viewer extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

with warnings.catch_warnings():  # starlette's notice about httpx, not our concern
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from cloudfree import render  # noqa: E402
from cloudfree.data.release.index import INDEX_COLUMNS, summary_path  # noqa: E402
from cloudfree.io import read_raster  # noqa: E402
from cloudfree.masks.csm import cloud_shadow_mask  # noqa: E402
from cloudfree.viewer.app import create_app  # noqa: E402
from cloudfree.viewer.catalog import Catalog  # noqa: E402
from cloudfree.viewer.layers import TileGrid  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _png(resp) -> np.ndarray:  # noqa: ANN001
    from PIL import Image

    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(resp.content)).convert("RGB"))


@pytest.fixture(scope="module")
def client(world) -> TestClient:  # noqa: ANN001
    return TestClient(create_app(world.root, predictions=world.predictions))


def _row(world, pid: str):  # noqa: ANN001, ANN202
    cat = Catalog(world.root)
    return cat.rows[cat.by_id[pid]]


def test_page_and_static_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/app.js").headers["content-type"].startswith("application/javascript")
    assert client.get("/static/style.css").status_code == 200


def test_info_lists_filters_methods_and_scenes(client: TestClient, world) -> None:  # noqa: ANN001
    info = client.get("/api/info").json()
    assert info["patches"] == len(world.ids)
    assert info["methods"] == ["good"]
    assert [s["name"] for s in info["scene_files"]] == ["scene_T31TFJ.tif"]
    assert set(info["seasons"]) <= {"spring", "summer", "fall", "winter"}


def test_filters_select_the_right_patches(client: TestClient, world) -> None:  # noqa: ANN001
    everything = client.get("/api/patches").json()
    assert [p["id"] for p in everything["patches"]] == world.ids
    cat = Catalog(world.root)
    for split in ("train", "val", "test"):
        got = [p["id"] for p in client.get(f"/api/patches?split={split}").json()["patches"]]
        assert got == [r.id for r in cat.rows if r.split == split]
    season = cat.rows[0].season
    got = client.get(f"/api/patches?season={season}").json()["patches"]
    assert {p["id"] for p in got} == {r.id for r in cat.rows if r.season == season}
    scene = f"{cat.rows[0].roi_season}_{cat.rows[0].scene}"
    got = client.get(f"/api/patches?scene={scene}").json()["patches"]
    assert {p["id"] for p in got} == {
        r.id for r in cat.rows if r.roi_season + f"_{r.scene}" == scene
    }
    assert client.get("/api/patches?completeness=no_s1").json()["count"] == 0
    assert client.get("/api/patches?completeness=bogus").status_code == 400
    assert client.get("/api/patches?cloud_min=2").status_code == 422


def test_cloud_cover_filter_matches_the_mask(client: TestClient, world) -> None:  # noqa: ANN001
    # independent reference: the DSen2-CR mask of each cloudy input, share of non-clear pixels
    cover = {}
    for pid in world.ids:
        arr, _ = read_raster(world.root / _row(world, pid).s2_cloudy)
        cover[pid] = float(np.mean(cloud_shadow_mask(arr) != 0))
    threshold = float(np.median(list(cover.values())))
    got = client.get(f"/api/patches?cloud_min={threshold}").json()["patches"]
    assert {p["id"] for p in got} == {k for k, v in cover.items() if v >= threshold}
    assert all(p["cloud"] == pytest.approx(cover[p["id"]]) for p in got)
    detail = client.get(f"/api/patch/{world.ids[0]}").json()
    assert detail["cloud"] == pytest.approx(cover[world.ids[0]])


def test_patch_layers_are_the_rendered_files(client: TestClient, world) -> None:  # noqa: ANN001
    from cloudfree.inpaint import inpaint

    pid = world.pred_ids[0]
    row = _row(world, pid)
    cloudy, _ = read_raster(world.root / row.s2_cloudy)
    target, _ = read_raster(world.root / row.s2)
    s1, _ = read_raster(world.root / row.s1)
    pred, _ = read_raster(world.predictions / "good" / f"{pid}.tif")
    mask = cloud_shadow_mask(cloudy)
    expect = {
        f"/api/patch/{pid}/cloudy.png": render.true_colour(cloudy),
        f"/api/patch/{pid}/target.png?composite=false&stretch=percentile&plo=5&phi=95": (
            render.false_colour(target, mode="percentile", p=(5, 95))
        ),
        f"/api/patch/{pid}/s1.png": render.sar_composite(s1),
        f"/api/patch/{pid}/mask.png": render.mask_rgb(mask),
        f"/api/patch/{pid}/cloudy.png?overlay=1&gain=4": render.mask_overlay(
            render.true_colour(cloudy, gain=4.0), mask
        ),
        f"/api/patch/{pid}/pred/good.png": render.true_colour(pred),
        f"/api/patch/{pid}/error/good.png": render.error_map(pred, target),
        # the hybrid chain's inpainting of the patch, as cloudfree.inpaint computes it
        f"/api/patch/{pid}/inpainted.png": render.true_colour(
            inpaint(cloudy.astype(np.float32), mask, "mask-fill")  # read as float32 for display
        ),
    }
    for url, ref in expect.items():
        np.testing.assert_array_equal(_png(client.get(url)), ref, err_msg=url)
    # the same patch by row number
    n = world.ids.index(pid)
    np.testing.assert_array_equal(
        _png(client.get(f"/api/patch/{n}/cloudy.png")), expect[f"/api/patch/{pid}/cloudy.png"]
    )


def test_patch_detail_has_predictions_and_metrics(client: TestClient, world) -> None:  # noqa: ANN001
    d = client.get(f"/api/patch/{world.pred_ids[0]}").json()
    assert d["predictions"] == ["good"]
    assert d["metrics"]["good"] == {"cloud_fraction": 0.4, **world.metrics}
    other = next(i for i in world.ids if i not in world.pred_ids and i != world.link_id)
    d = client.get(f"/api/patch/{other}").json()
    assert d["predictions"] == [] and d["metrics"] == {}


def test_bad_style_parameters_are_400(client: TestClient, world) -> None:  # noqa: ANN001
    base = f"/api/patch/{world.ids[0]}/cloudy.png"
    for q in ("stretch=log", "composite=swir", "gain=-1", "plo=60&phi=40&stretch=percentile"):
        r = client.get(f"{base}?{q}")
        assert r.status_code == 400, q
        assert r.json()["detail"]


def test_broken_and_missing_files_give_json_errors(client: TestClient, world) -> None:  # noqa: ANN001
    r = client.get(f"/api/patch/{world.broken_id}/target.png")
    assert r.status_code == 422
    assert "truncated" in r.json()["detail"] or "cannot" in r.json()["detail"]
    # the rest of that patch still works
    assert _png(client.get(f"/api/patch/{world.broken_id}/cloudy.png")).shape == (32, 32, 3)
    assert client.get(f"/api/patch/{world.broken_id}").status_code == 200
    other = next(i for i in world.ids if i not in world.pred_ids)
    r = client.get(f"/api/patch/{other}/pred/good.png")
    assert r.status_code == 404 and "no prediction" in r.json()["detail"]


TRAVERSALS = [
    "/static/../../../../etc/passwd",
    "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/static/%2e%2e%2fcatalog.py",
    "/static/%252e%252e%252fcatalog.py",
    "/static/%2Fetc%2Fpasswd",
    "/static//etc/passwd",
    "/api/patch/..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/patch/%2Fetc%2Fpasswd/cloudy.png",
    "/api/patch/%252e%252e%252f%252e%252e%252fetc%252fpasswd/cloudy.png",
    "/api/patch/0/..%2F..%2Foutside%2Fsecret.png",
    "/api/patch/0/%2e%2e%2f%2e%2e%2foutside%2fsecret.png",
    "/api/patch/0/pred/..%2F..%2F..%2Foutside%2Fsecret.png",
    "/api/patch/0/pred/%252e%252e%252f%252e%252e%252foutside%252fsecret.png",
    "/api/patch/0/pred/%2Fetc%2Fpasswd.png",
    "/api/patch/0/error/..%2Fgood%2F..%2F..%2Foutside%2Fsecret.png",
    "/api/scene/..%2F..%2Foutside%2Fsecret",
    "/api/scene/%2Fetc%2Fpasswd/tile/0/0/0.png",
    "/api/scene/good.scene_T31TFJ%2F..%2F..%2F..%2Foutside%2Fsecret/tile/0/0/0.png",
]


@pytest.mark.parametrize("url", TRAVERSALS)
def test_traversal_attempts_are_refused(client: TestClient, world, url: str) -> None:  # noqa: ANN001
    secret = world.outside.read_bytes()[:64]
    r = client.get(url)
    assert r.status_code in (403, 404), (url, r.status_code)
    assert secret not in r.content and b"root:" not in r.content


def test_symlinks_out_of_the_roots_are_refused(client: TestClient, world) -> None:  # noqa: ANN001
    # an S1 file of the index that is a symlink to a GeoTIFF outside the dataset root
    r = client.get(f"/api/patch/{world.link_id}/s1.png")
    assert r.status_code == 403 and "outside" in r.json()["detail"]
    # a prediction that is a symlink out of the predictions folder
    linked = next(f for f in (world.predictions / "good").iterdir() if f.is_symlink())
    r = client.get(f"/api/patch/{linked.stem}/pred/good.png")
    assert r.status_code == 403
    # and a valid request beside them works
    assert _png(client.get(f"/api/patch/{world.link_id}/cloudy.png")).shape == (32, 32, 3)


def test_index_rows_pointing_outside_are_refused(world, tmp_path) -> None:  # noqa: ANN001
    """A hand-edited index CSV cannot make the viewer read outside the root."""
    row = _row(world, world.ids[0])
    csv_path = tmp_path / "index.csv"
    escape = "../" * 12 + str(world.outside).lstrip("/")
    lines = [
        ",".join(INDEX_COLUMNS),
        f"{row.roi_season},{row.scene},{row.patch},train,{escape},{row.s2},{world.outside}",
    ]
    csv_path.write_text("\n".join(lines) + "\n")
    # the sidecar records the dataset root the rows are relative to
    summary_path(csv_path).write_text(json.dumps({"root": str(world.root)}))
    client = TestClient(create_app(csv_path))
    assert client.get("/api/patch/0/s1.png").status_code == 403  # ../../.. out of the root
    assert client.get("/api/patch/0/cloudy.png").status_code == 403  # an absolute path
    assert client.get("/api/patch/0/target.png").status_code == 200


def test_scene_tiles(client: TestClient, world) -> None:  # noqa: ANN001
    info = client.get("/api/info").json()
    sid = info["scene_files"][0]["id"]
    s = client.get(f"/api/scene/{sid}").json()
    assert (s["height"], s["width"], s["count"]) == (700, 600, 13)
    assert s["max_zoom"] == 2  # 700 px -> 256 * 2**2 >= 700
    scene, _ = read_raster(world.scene_path)
    # full resolution: a tile is exactly the rendered window (the last row of tiles is cut)
    got = _png(client.get(f"/api/scene/{sid}/tile/2/1/2.png"))
    np.testing.assert_array_equal(got, render.true_colour(scene[:, 512:700, 256:512]))
    # zoom 0: the whole scene in one tile; a tile spans 1024 px there, so 700 x 600 -> 175 x 150
    assert _png(client.get(f"/api/scene/{sid}/tile/0/0/0.png")).shape == (175, 150, 3)
    assert _png(client.get(f"/api/scene/{sid}/tile/1/0/0.png?stretch=percentile")).shape == (
        256,
        256,
        3,
    )
    for z, x, y in ((3, 0, 0), (2, 3, 0), (0, 1, 0), (2, -1, 0)):
        assert client.get(f"/api/scene/{sid}/tile/{z}/{x}/{y}.png").status_code in (404, 422)


def test_tile_grid_covers_the_raster_once() -> None:
    g = TileGrid(700, 600)
    for z in range(g.max_zoom + 1):
        nx, ny = g.tiles(z)
        covered = np.zeros((700, 600), int)
        for x in range(nx):
            for y in range(ny):
                (r, c, h, w), (oh, ow) = g.window(z, x, y)
                covered[r : r + h, c : c + w] += 1
                assert oh <= 256 and ow <= 256
        assert (covered == 1).all()


def test_view_cli_binds_localhost_by_default(world, monkeypatch) -> None:  # noqa: ANN001
    import uvicorn

    from cloudfree.viewer import cli

    calls = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.update(app=app, **kw))
    p = argparse.ArgumentParser()
    cli.add_parser(p.add_subparsers())
    args = p.parse_args(["view", str(world.root), "--predictions", str(world.predictions)])
    assert args.func(args) == 0
    assert (calls["host"], calls["port"]) == ("127.0.0.1", 8000)
    assert calls["app"].state.catalog.methods["good"].files
    # bound to loopback, it answers only requests addressed to a local name
    local = TestClient(calls["app"], base_url="http://127.0.0.1:8000")
    assert local.get("/api/info").status_code == 200
    rebound = TestClient(calls["app"], base_url="http://attacker.example:8000")
    assert rebound.get("/api/info").status_code == 400
    # --checkpoint adds live methods by name; a misspelt one fails before serving.
    args = p.parse_args(["view", str(world.root), "--checkpoint", "mask-fill"])
    assert args.func(args) == 0
    assert calls["app"].state.catalog.methods["mask-fill"].runner.name == "mask-fill"
    args = p.parse_args(["view", str(world.root), "--checkpoint", "mask-fil"])
    with pytest.raises(ValueError, match="did you mean 'mask-fill'"):
        args.func(args)


def test_live_checkpoints_predict_when_a_patch_is_shown(world) -> None:  # noqa: ANN001
    """`view --checkpoint NAME`: a registry model and a baseline predict each patch on demand,
    as `cloudfree evaluate` would feed them, beside the predictions folder's method."""
    import torch

    from cloudfree.bands import DSEN2CR
    from cloudfree.data.preprocess import normalize_s1, normalize_s2
    from cloudfree.inpaint import inpaint
    from cloudfree.methods.load import load_method
    from cloudfree.metrics import compute

    live = TestClient(create_app(world.root, predictions=world.predictions, device="cpu",
                                 checkpoints=["dsen2cr-demo-sar", "mask-fill"]))  # fmt: skip
    assert live.get("/api/info").json()["methods"] == ["dsen2cr-demo-sar", "good", "mask-fill"]
    pid = world.pred_ids[0]
    d = live.get(f"/api/patch/{pid}").json()
    assert d["predictions"] == ["dsen2cr-demo-sar", "good", "mask-fill"] and d["errors"] == {}
    row = _row(world, pid)
    cloudy = read_raster(world.root / row.s2_cloudy)[0].astype(np.float32)
    target = read_raster(world.root / row.s2)[0].astype(np.float64)
    s1 = read_raster(world.root / row.s1)[0].astype(np.float32)
    mask = cloud_shadow_mask(cloudy)
    batch = {"s2_cloudy": torch.from_numpy(normalize_s2(cloudy, DSEN2CR))[None],
             "s1": torch.from_numpy(normalize_s1(s1, DSEN2CR))[None]}  # fmt: skip
    pred = load_method("dsen2cr-demo-sar", device="cpu").predict(batch)[0].numpy() * 2000
    url = f"/api/patch/{pid}"
    np.testing.assert_array_equal(
        _png(live.get(f"{url}/pred/dsen2cr-demo-sar.png")), render.true_colour(pred)
    )
    np.testing.assert_array_equal(
        _png(live.get(f"{url}/error/dsen2cr-demo-sar.png")), render.error_map(pred, target)
    )
    ref = compute(pred / 1e4, target / 1e4, np.clip(cloudy, 0, 1e4) / 1e4, mask)
    for key in ("mae", "psnr", "sam", "ssim"):
        assert d["metrics"]["dsen2cr-demo-sar"][key] == pytest.approx(ref[key], rel=1e-5)
    assert d["metrics"]["good"]["psnr"] == 31.5  # the folder's metrics are still there
    # mask-fill: the classical inpainting of the masked pixels, the clear ones kept.
    fill = inpaint(cloudy, mask, "mask-fill")
    got = _png(live.get(f"{url}/pred/mask-fill.png")).astype(int)
    assert np.abs(got - render.true_colour(fill).astype(int)).max() <= 1
    assert d["metrics"]["mask-fill"]["mae_reprod"] < 1e-6
    # A patch whose S1 is refused: that method reports why, the others still work.
    d = live.get(f"/api/patch/{world.link_id}").json()
    assert "outside" in d["errors"]["dsen2cr-demo-sar"] and "mask-fill" in d["metrics"]
    assert live.get(f"/api/patch/{world.link_id}/pred/dsen2cr-demo-sar.png").status_code == 403


def test_uncertainty_of_a_live_model_is_a_layer(world, tmp_path) -> None:  # noqa: ANN001
    """`view --checkpoint` with an UnCRtainTS that predicts a variance: its standard deviation
    (mean over bands) is a layer, equal to the model's own variance on that patch."""
    import torch

    from cloudfree.bands import REFLECTANCE
    from cloudfree.data.preprocess import normalize_s1, normalize_s2
    from cloudfree.models import save_weights
    from cloudfree.models.uncrtaints import UnCRtainTS

    torch.manual_seed(0)
    model = UnCRtainTS(encoder_widths=[8], decoder_widths=[8]).eval()
    weights = save_weights(model, tmp_path / "unc.safetensors")
    live = TestClient(create_app(world.root, predictions=world.predictions, device="cpu",
                                 checkpoints=[str(weights), "mask-fill"]))  # fmt: skip
    pid = world.pred_ids[0]
    d = live.get(f"/api/patch/{pid}").json()
    assert d["uncertainty"] == ["unc"]  # mask-fill has no variance
    row = _row(world, pid)
    cloudy = read_raster(world.root / row.s2_cloudy)[0].astype(np.float32)
    s1 = read_raster(world.root / row.s1)[0].astype(np.float32)
    with torch.no_grad():
        out = model(torch.from_numpy(normalize_s2(cloudy, REFLECTANCE))[None],
                    torch.from_numpy(normalize_s1(s1, REFLECTANCE))[None], return_variance=True)  # fmt: skip
    std = np.sqrt(out[0, 13:].numpy())
    got = _png(live.get(f"/api/patch/{pid}/uncertainty/unc.png")).astype(int)
    assert np.abs(got - render.uncertainty_map(std).astype(int)).max() <= 1
    assert live.get(f"/api/patch/{pid}/uncertainty/mask-fill.png").status_code == 404
