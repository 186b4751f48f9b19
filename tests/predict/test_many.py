"""Several scenes: folders, list files, sharding, skipping, and the ``predict`` command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from cloudfree.errors import DataError
from cloudfree.predict.many import (
    Scene,
    device_for_rank,
    is_many,
    list_scenes,
    parse_shard,
    predict_many,
    shard_scenes,
)

from .conftest import read_tif, synth_s1, synth_s2, write_tif


def _run_cli(argv: list[str]) -> int:
    from cloudfree.predict.cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["predict", *argv])
    return args.func(args)


def test_list_scenes_folder_and_list_file(tmp_path: Path) -> None:
    d = tmp_path / "scenes"
    d.mkdir()
    for name in ("b.tif", "a.tif", "c.TIFF", "notes.txt"):
        (d / name).write_bytes(b"")
    s1 = tmp_path / "s1"
    s1.mkdir()
    (s1 / "a.tif").write_bytes(b"")
    scenes = list_scenes(d, s1)
    assert [s.s2.name for s in scenes] == ["a.tif", "b.tif", "c.TIFF"]
    assert scenes[0].s1 == s1 / "a.tif" and scenes[1].s1 is None
    lst = tmp_path / "list.csv"
    lst.write_text("# s2,s1\n\nscenes/b.tif, s1/a.tif\nscenes/a.tif\n")
    scenes = list_scenes(lst)
    assert scenes == [
        Scene((d / "a.tif").resolve()),
        Scene((d / "b.tif").resolve(), (s1 / "a.tif").resolve()),
    ]
    assert is_many(d) and is_many(lst) and not is_many(d / "a.tif")
    lst.write_text("a.tif,b.tif,c.tif\n")
    with pytest.raises(DataError, match="line 1"):
        list_scenes(lst)
    lst.write_text("# nothing\n")
    with pytest.raises(DataError, match="no scene"):
        list_scenes(lst)


def test_shards_partition_the_scenes_deterministically() -> None:
    scenes = [Scene(Path(f"{i}.tif")) for i in range(10)]
    parts = [shard_scenes(scenes, i, 3) for i in range(3)]
    assert sorted((s for p in parts for s in p), key=lambda s: int(s.s2.stem)) == scenes
    assert [s.s2.stem for s in parts[1]] == ["1", "4", "7"]
    assert parse_shard("2/4") == (2, 4)
    assert parse_shard(None, env={}) == (0, 1)
    assert parse_shard(None, env={"RANK": "3", "WORLD_SIZE": "8"}) == (3, 8)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    assert device_for_rank("cpu", env={"LOCAL_RANK": "1"}) == "cpu"


def test_predict_many_shards_skips_and_continues_after_a_bad_scene(
    tmp_path: Path, nosar_weights
) -> None:
    weights, _ = nosar_weights
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        write_tif(d / f"s{i}.tif", synth_s2(32, 32, seed=i))
    write_tif(d / "s3.tif", synth_s2(32, 32)[:4])  # a bad scene: 4 bands
    out = tmp_path / "out"
    kw = dict(checkpoint=str(weights), tile=32, overlap=8, progress=False)
    rows = predict_many(d, out, shard="0/2", **kw)
    assert [(Path(r["s2"]).name, r["status"]) for r in rows] == [
        ("s0.tif", "done"),
        ("s2.tif", "done"),
    ]
    rows = predict_many(d, out, shard="1/2", mask_dir=tmp_path / "masks", **kw)
    assert [(Path(r["s2"]).name, r["status"]) for r in rows] == [
        ("s1.tif", "done"),
        ("s3.tif", "failed"),
    ]
    assert "4 bands" in rows[1]["error"]
    assert sorted(p.name for p in out.iterdir()) == [
        "s0_cloudfree.tif",
        "s1_cloudfree.tif",
        "s2_cloudfree.tif",
    ]
    assert (tmp_path / "masks" / "s1_mask.tif").is_file()
    rows = predict_many(d, out, **kw)
    assert [r["status"] for r in rows] == ["skipped", "skipped", "skipped", "failed"]
    rows = predict_many(d, out, overwrite=True, **kw)
    assert [r["status"] for r in rows] == ["done", "done", "done", "failed"]


def test_cli_single_scene_with_s1_and_summary(tmp_path: Path, sar_weights) -> None:
    weights, _ = sar_weights
    s2 = write_tif(tmp_path / "s2.tif", synth_s2(48, 48))
    s1 = write_tif(tmp_path / "s1.tif", synth_s1(48, 48))
    out, summary = tmp_path / "out.tif", tmp_path / "summary.json"
    rc = _run_cli(
        [
            "--s2",
            str(s2),
            "--s1",
            str(s1),
            "--checkpoint",
            str(weights),
            "--out",
            str(out),
            "--tile",
            "32",
            "--overlap",
            "8",
            "--batch-size",
            "2",
            "--no-progress",
            "--keep-clear",
            "--mask-out",
            str(tmp_path / "mask.tif"),
            "--summary",
            str(summary),
        ]
    )
    assert rc == 0
    data = json.loads(summary.read_text())
    assert data["sar_tiles"] == data["tiles"] and data["sar_coverage"] == 1.0
    pred, prof = read_tif(out)
    assert pred.shape == (13, 48, 48) and prof["dtype"] == "uint16"
    assert read_tif(tmp_path / "mask.tif")[0].dtype == np.uint8


def test_cli_folder_returns_1_when_a_scene_fails(tmp_path: Path, nosar_weights, capsys) -> None:
    weights, _ = nosar_weights
    d = tmp_path / "in"
    d.mkdir()
    write_tif(d / "good.tif", synth_s2(32, 32))
    write_tif(d / "bad.tif", synth_s2(32, 32)[:3])
    rc = _run_cli(
        [
            "--s2",
            str(d),
            "--out",
            str(tmp_path / "out"),
            "--checkpoint",
            str(weights),
            "--tile",
            "32",
            "--overlap",
            "8",
            "--no-progress",
        ]
    )
    assert rc == 1
    text = capsys.readouterr().out
    assert "failed" in text and "bad.tif" in text and "done" in text


def test_a_series_folder_is_its_dates_with_their_s1(tmp_path: Path) -> None:
    """What ``cloudfree fetch`` writes: s2/<date>.tif, s1/<date>.tif for some dates."""
    series = tmp_path / "series"
    for sub in ("s2", "s1"):
        (series / sub).mkdir(parents=True)
    for day in ("2024-06-01", "2024-06-06"):
        write_tif(series / "s2" / f"{day}.tif", synth_s2(32, 32))
    write_tif(series / "s1" / "2024-06-06.tif", synth_s1(32, 32))
    (series / "series.json").write_text("{}")
    scenes = list_scenes(series)
    assert [(s.s2.name, s.s1) for s in scenes] == [
        ("2024-06-01.tif", None), ("2024-06-06.tif", series / "s1" / "2024-06-06.tif")]  # fmt: skip
    out = tmp_path / "clear"
    assert _run_cli(["--s2", str(series), "--out", str(out), "--checkpoint", "identity",
                     "--mask-backend", "dsen2cr", "--no-progress"]) == 0  # fmt: skip
    assert sorted(p.name for p in out.glob("*.tif")) == ["2024-06-01_cloudfree.tif",
                                                         "2024-06-06_cloudfree.tif"]  # fmt: skip
