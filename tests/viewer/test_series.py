"""The viewer's page of a series (issue 31, step 6): the dates with their cloud cover, the
composites found beside them, how each pixel was made; through FastAPI's TestClient."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the viewer extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient  # noqa: E402

from cloudfree.cli import main  # noqa: E402
from cloudfree.viewer.series import MADE_COLOURS, is_series, made_rgb  # noqa: E402
from cloudfree.viewer.series_app import create_series_app  # noqa: E402
from tests.predict.conftest import synth_s1, synth_s2, write_tif  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
DAYS = ("2021-03-01", "2021-03-11", "2021-03-21")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A series folder of 3 dates (a mask file for the first: its left quarter masked, S1 for
    the last) and the median composite of it in preds/."""
    root = tmp_path_factory.mktemp("series")
    for sub in ("s2", "s1", "masks"):
        (root / "series" / sub).mkdir(parents=True)
    for k, day in enumerate(DAYS):
        write_tif(root / "series" / "s2" / f"{day}.tif", synth_s2(48, 48, seed=k))
    write_tif(root / "series" / "s1" / f"{DAYS[2]}.tif", synth_s1(48, 48))
    mask = np.zeros((1, 48, 48), np.uint8)
    mask[:, :, :12] = 1
    write_tif(root / "series" / "masks" / f"{DAYS[0]}.tif", mask)
    assert main(["composite", str(root / "series"), "--out", str(root / "preds" / "c.tif"),
                 "--method", "median", "--mask-backend", "dsen2cr", "--no-progress"]) == 0  # fmt: skip
    return root / "series", root / "preds"


def _png(resp) -> np.ndarray:  # noqa: ANN001
    from PIL import Image

    assert resp.status_code == 200, resp.text
    return np.asarray(Image.open(io.BytesIO(resp.content)).convert("RGB"))


def test_the_page_lists_the_dates_and_the_composite(world: tuple[Path, Path]) -> None:
    series, preds = world
    assert is_series(series) and not is_series(preds)
    client = TestClient(create_series_app(series, preds))
    assert "/static/series.js" in client.get("/").text
    assert client.get("/static/series.js").status_code == 200
    assert client.get("/static/app.js").status_code == 404  # the patch page is not this one
    info = client.get("/api/series").json()
    assert [d["day"] for d in info["dates"]] == list(DAYS)
    assert [d["s1"] for d in info["dates"]] == [False, False, True]
    assert [d["mask_file"] for d in info["dates"]] == [True, False, False]
    (c,) = info["composites"]
    assert (c["name"], c["method"], c["made"], c["target_date"]) == ("c", "median", True, DAYS[2])


def test_cloud_cover_and_images(world: tuple[Path, Path]) -> None:
    import rasterio

    series, preds = world
    client = TestClient(create_series_app(series, preds))
    assert client.get("/api/series/cover/0").json()["cover"] == pytest.approx(0.25)  # its file
    cover = client.get("/api/series/cover/1").json()["cover"]
    assert 0.0 <= cover <= 1.0
    assert _png(client.get("/api/series/date/1.png?max_size=24")).shape == (24, 24, 3)
    assert _png(client.get("/api/series/composite/0.png")).shape == (48, 48, 3)
    with rasterio.open(preds / "c_made.tif") as ds:
        made = ds.read(1)
    assert (_png(client.get("/api/series/made/0.png")) == made_rgb(made)).all()
    assert client.get("/api/series/date/7.png").status_code == 404
    assert "has 3" in client.get("/api/series/cover/7").json()["detail"]
    assert client.get("/api/series/made/3.png").status_code == 404
    assert client.get("/api/series/date/0.png?stretch=log").status_code == 400


def test_made_codes_have_their_colours() -> None:
    made = np.array([[3, 2, 1], [0, -1, -2], [7, -32768, np.nan]])
    rgb = made_rgb(made)
    want = [[3, 2, 1], [0, -1, -2], [3, -2, -2]]  # 4+ clear dates as 3, nodata as -2
    for r in range(3):
        for c in range(3):
            assert tuple(rgb[r, c]) == MADE_COLOURS[want[r][c]]
