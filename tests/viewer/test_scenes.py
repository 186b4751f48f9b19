"""Whole scenes in the viewer (issue 30, class 9): a prediction opens with its input (for the
before/after divider) and its mask (a layer over both), found through the ``source`` tags
``cloudfree predict`` writes; 1-band rasters (``--mask-out`` files) display; the viewer starts
on a folder of scenes that is not a SEN12MS-CR dataset, and reads nothing outside it and the
predictions folder."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from cloudfree.cli import main
from tests.predict.conftest import synth_s2, write_tif

pytest.importorskip("fastapi", reason="the viewer extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient  # noqa: E402

from cloudfree.viewer.app import create_app  # noqa: E402


def _png(data: bytes, mode: str = "RGB") -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert(mode))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_scenes(tmp_path_factory.mktemp("scenes"))


def make_scenes(base: Path) -> dict[str, Path]:
    """A folder of one S2 scene, its mask-fill prediction and mask (and one more prediction
    whose input lies elsewhere)."""
    inputs, preds = base / "scenes", base / "clear"
    inputs.mkdir()
    write_tif(inputs / "a.tif", synth_s2(200, 180))
    assert main(["predict", "--s2", str(inputs), "--out", str(preds / "mask-fill"),
                 "--checkpoint", "mask-fill", "--mask-out", str(preds / "mask-fill" / "masks"),
                 "--mask-backend", "dsen2cr", "--no-progress"]) == 0  # fmt: skip
    # The same prediction copied where its input lies outside what the viewer may read.
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(inputs / "a.tif", elsewhere / "b.tif")
    assert main(["predict", "--s2", str(elsewhere / "b.tif"), "--out",
                 str(preds / "other" / "b_cloudfree.tif"), "--checkpoint", "mask-fill",
                 "--mask-backend", "dsen2cr", "--no-progress"]) == 0  # fmt: skip
    return {"inputs": inputs, "preds": preds}


def test_a_prediction_opens_with_its_input_and_its_mask(scenes: dict[str, Path]) -> None:
    client = TestClient(create_app(scenes["inputs"], scenes["preds"]))
    listed = {s["name"]: s for s in client.get("/api/info").json()["scene_files"]}
    assert {"a_cloudfree.tif", "a_mask.tif", "b_cloudfree.tif"} <= set(listed), listed
    sid = listed["a_cloudfree.tif"]["id"]
    info = client.get(f"/api/scene/{sid}").json()
    assert info["kind"] == "prediction"
    assert info["layers"] == {"input": "a.tif", "mask": "a_mask.tif"}
    url = f"/api/scene/{sid}/tile/{info['max_zoom']}/0/0.png"
    pred, inp = _png(client.get(url).content), _png(client.get(url + "?layer=input").content)
    mask = _png(client.get(url + "?layer=mask").content, "RGBA")
    assert pred.shape == inp.shape and mask.shape[:2] == pred.shape[:2]
    masked = mask[..., 3] > 0
    assert 0 < masked.mean() < 1  # cloud/shadow drawn, clear transparent
    # Mask-fill changes the masked pixels only: the two layers differ there, not elsewhere.
    differ = (np.abs(pred.astype(int) - inp.astype(int)) > 2).any(axis=2)
    assert differ[masked].mean() > 0.5 and differ[~masked].mean() < 0.05
    # A mask file is a scene too: drawn in its classes' colours (it was refused: 1 band).
    mid = listed["a_mask.tif"]["id"]
    assert client.get(f"/api/scene/{mid}").json()["kind"] == "mask"
    tile = _png(client.get(f"/api/scene/{mid}/tile/0/0/0.png").content)
    colours = {tuple(c) for c in tile.reshape(-1, 3)}
    assert colours <= {(0, 0, 0), (255, 255, 255), (40, 90, 255)}, colours
    # An input outside the dataset folder and the predictions: not offered, not served.
    other = listed["b_cloudfree.tif"]["id"]
    assert client.get(f"/api/scene/{other}").json()["layers"] == {}
    r = client.get(f"/api/scene/{other}/tile/0/0/0.png?layer=input")
    assert r.status_code == 403, r.text
    assert client.get(f"/api/scene/{sid}/tile/0/0/0.png?layer=secret").status_code == 400
