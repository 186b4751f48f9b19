"""``cloudfree render``: one file, a large scene as an overview, and a whole index."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from cloudfree import render
from cloudfree.data.release.index import INDEX_COLUMNS
from cloudfree.errors import DataError
from cloudfree.io import read_raster, write_raster
from cloudfree.masks.csm import cloud_shadow_mask
from cloudfree.viewer import render_cli

STRIP = 11  # height of panel()'s title strip: 7-pixel glyphs + 4


def _run(*argv: str) -> int:
    p = argparse.ArgumentParser()
    render_cli.add_parser(p.add_subparsers())
    args = p.parse_args(["render", *argv])
    return args.func(args)


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _cells(img: np.ndarray, h: int, w: int, n: int, gap: int = 4) -> list[np.ndarray]:
    """Cut a panel of n images of h x w (with titles) back into its images."""
    assert img.shape == (STRIP + h, n * w + (n - 1) * gap, 3)
    return [img[STRIP:, i * (w + gap) : i * (w + gap) + w] for i in range(n)]


def test_one_patch_with_mask_prediction_target_and_error(world, tmp_path) -> None:  # noqa: ANN001
    from cloudfree.viewer.catalog import Catalog

    row = Catalog(world.root).rows[world.ids.index(world.pred_ids[0])]
    cloudy_p, target_p = world.root / row.s2_cloudy, world.root / row.s2
    pred_p = world.predictions / "good" / f"{row.id}.tif"
    out = tmp_path / "p.png"
    assert _run(str(cloudy_p), "--out", str(out), "--mask", "--composite", "false",
                "--prediction", str(pred_p), "--target", str(target_p)) == 0  # fmt: skip
    cloudy, _ = read_raster(cloudy_p)
    target, _ = read_raster(target_p)
    pred, _ = read_raster(pred_p)
    cells = _cells(_read_png(out), 32, 32, 4)
    ref = render.mask_overlay(render.false_colour(cloudy), cloud_shadow_mask(cloudy))
    np.testing.assert_array_equal(cells[0], ref)
    np.testing.assert_array_equal(cells[1], render.false_colour(pred))
    np.testing.assert_array_equal(cells[2], render.false_colour(target))
    np.testing.assert_array_equal(cells[3], render.error_map(pred, target))


def test_s1_composite_and_percentile(world, tmp_path) -> None:  # noqa: ANN001
    from cloudfree.viewer.catalog import Catalog

    row = Catalog(world.root).rows[0]
    out = tmp_path / "s1.png"
    _run(str(world.root / row.s1), "--out", str(out))
    s1, _ = read_raster(world.root / row.s1)
    np.testing.assert_array_equal(_cells(_read_png(out), 32, 32, 1)[0], render.sar_composite(s1))
    out = tmp_path / "s2.png"
    _run(str(world.root / row.s2), "--out", str(out), "--stretch", "percentile",
         "--percentiles", "1", "99")  # fmt: skip
    s2, _ = read_raster(world.root / row.s2)
    ref = render.true_colour(s2, mode="percentile", p=(1, 99))
    np.testing.assert_array_equal(_cells(_read_png(out), 32, 32, 1)[0], ref)


def test_large_scene_is_drawn_as_a_block_mean_overview(world, tmp_path) -> None:  # noqa: ANN001
    """600 x 300 with --max-size 100: each output pixel is the mean of a 6 x 6 block."""
    scene, meta = read_raster(world.scene_path)
    scene = scene[:, :600, :300]
    path = write_raster(tmp_path / "scene.tif", scene, meta)
    out = tmp_path / "scene.png"
    _run(str(path), "--out", str(out), "--max-size", "100")
    got = _cells(_read_png(out), 100, 50, 1)[0]
    blocks = scene.reshape(13, 100, 6, 50, 6).astype(np.float64).mean(axis=(2, 4))
    ref = render.true_colour(np.round(blocks))
    # GDAL's average may round a block mean the other way: at most one grey level apart
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_bad_combinations_are_clear_errors(world, tmp_path) -> None:  # noqa: ANN001
    from cloudfree.viewer.catalog import Catalog

    row = Catalog(world.root).rows[0]
    with pytest.raises(DataError, match="13 Sentinel-2"):
        _run(str(world.root / row.s1), "--out", str(tmp_path / "x.png"), "--mask")
    with pytest.raises(DataError, match="size"):
        _run(str(world.root / row.s2), "--out", str(tmp_path / "x.png"),
             "--prediction", str(world.scene_path))  # fmt: skip
    with pytest.raises(DataError, match="does not exist"):
        _run(str(tmp_path / "nope.tif"), "--out", str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_whole_index_one_png_per_patch(world, tmp_path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "pngs"
    assert _run(str(world.root), "--out", str(out), "--predictions", str(world.predictions)) == 0
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(world.ids)
    printed = capsys.readouterr().out
    assert f"{world.broken_id}: target: UNREADABLE" in printed
    assert f"{world.link_id}: s1: UNREADABLE" in printed  # the symlink out of the root
    # cloudy, target, s1, mask, good, good error
    pid = world.pred_ids[0]
    cells = _cells(_read_png(out / f"{pid}.png"), 32, 32, 6)
    pred, _ = read_raster(world.predictions / "good" / f"{pid}.tif")
    np.testing.assert_array_equal(cells[4], render.true_colour(pred))
    # the broken target is a grey placeholder, the rest of that patch is drawn
    cells = _cells(_read_png(out / f"{world.broken_id}.png"), 32, 32, 4)
    assert (cells[1] == 96).all() and cells[0].std() > 0


def test_index_csv_with_split_and_limit(world, tmp_path) -> None:  # noqa: ANN001
    import json

    from cloudfree.data.release.index import summary_path
    from cloudfree.viewer.catalog import Catalog

    rows = Catalog(world.root).rows
    csv_path = tmp_path / "index.csv"
    lines = [",".join(INDEX_COLUMNS)]
    for r in rows:
        lines.append(",".join(str(getattr(r, c)) for c in INDEX_COLUMNS))
    csv_path.write_text("\n".join(lines) + "\n")
    summary_path(csv_path).write_text(json.dumps({"root": str(world.root)}))
    split = rows[0].split
    out = tmp_path / "pngs"
    _run(str(csv_path), "--out", str(out), "--split", split, "--limit", "2")
    expected = [r.id for r in rows if r.split == split][:2]
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(expected)
