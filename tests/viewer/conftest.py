"""A small viewer world: synthetic patches, predictions, a scene, and files that must be refused."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cloudfree.data.release.discover import build_index
from cloudfree.io import read_raster, write_raster

N_PATCHES = 6
SIZE = 32


@dataclass
class World:
    root: Path  # synthetic dataset (release layout)
    predictions: Path  # predictions folder: method "good" (+ per_patch.csv), scene
    outside: Path  # a valid GeoTIFF outside every allowed folder
    ids: list[str]  # patch ids in index order
    pred_ids: list[str]  # patches with a prediction of method "good"
    broken_id: str  # patch whose target is a truncated TIFF
    link_id: str  # patch whose S1 is a symlink to `outside`
    scene_path: Path
    metrics: dict[str, float]  # per_patch.csv values of pred_ids[0]


def make_world(base: Path) -> World:
    from cloudfree.data.synthetic.release import synthesize

    root = base / "data"
    synthesize(root, N_PATCHES, seed=3, size=SIZE)
    rows = [r for r in build_index(root).rows if r.complete]
    ids = [r.id for r in build_index(root).rows]
    outside = base / "outside" / "secret.tif"
    outside.parent.mkdir()
    shutil.copy(root / rows[0].s1, outside)

    # a broken target (truncated TIFF) and an S1 symlinked out of the root
    broken, link = rows[1], rows[2]
    data = (root / broken.s2).read_bytes()
    (root / broken.s2).write_bytes(data[: len(data) // 3])
    (root / link.s1).unlink()
    os.symlink(outside, root / link.s1)

    preds = base / "preds"
    good = preds / "good"
    good.mkdir(parents=True)
    pred_rows = [rows[0], rows[3]]
    for r in pred_rows:
        target, meta = read_raster(root / r.s2)
        shifted = np.clip(target.astype(np.int32) + 150, 0, 65535).astype(np.uint16)
        write_raster(good / f"{r.id}.tif", shifted, meta)
    metrics = {"psnr": 31.5, "ssim": 0.912, "mae": 0.0123}
    lines = ["id,roi_season,scene,patch,season,cloud_fraction,psnr,ssim,mae"]
    for r in pred_rows:
        lines.append(f"{r.id},{r.roi_season},{r.scene},{r.patch},{r.season},0.4,31.5,0.912,0.0123")
    (good / "per_patch.csv").write_text("\n".join(lines) + "\n")
    # a prediction symlinked out of the folder: listed, but refused when served
    os.symlink(outside, good / f"{rows[4].id}.tif")

    # a whole scene (not named like a patch): 13 bands, 700 x 600
    rng = np.random.default_rng(0)
    scene = rng.integers(200, 3000, size=(13, 700, 600), dtype=np.uint16)
    _, meta = read_raster(root / rows[0].s2)
    scene_path = good / "scene_T31TFJ.tif"
    write_raster(scene_path, scene, meta, tiled=True, blockxsize=256, blockysize=256)
    return World(
        root=root,
        predictions=preds,
        outside=outside,
        ids=ids,
        pred_ids=[r.id for r in pred_rows],
        broken_id=broken.id,
        link_id=link.id,
        scene_path=scene_path,
        metrics=metrics,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("viewer"))
