"""End-to-end test of ``cloudfree index ROOT --out index.csv`` on the real SEN12MS-CR sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudfree.cli import main
from cloudfree.data.release.index import read_index, summary_path


def test_index_command_end_to_end(
    sen12mscr_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "index.csv"
    assert main(["index", str(sen12mscr_root), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "roi_season,scene,patch,split,s1,s2,s2_cloudy"
    assert len(lines) == 1 + 42
    assert (
        "ROIs2017_winter,112,797,train,ROIs2017_winter_s1/s1_112/ROIs2017_winter_s1_112_p797.tif,"
        "ROIs2017_winter_s2/s2_112/ROIs2017_winter_s2_112_p797.tif,"
        "ROIs2017_winter_s2_cloudy/s2_cloudy_112/ROIs2017_winter_s2_cloudy_112_p797.tif"
    ) in lines
    assert "ROIs1868_summer,19,30,val,ROIs1868_summer_s1/s1_19/ROIs1868_summer_s1_19_p30.tif,," in (
        "\n".join(lines)
    )

    printed = capsys.readouterr().out
    assert f"42 patches under {sen12mscr_root} (release folders; split: official)" in printed
    assert "complete triplets (s1, s2, s2_cloudy): 1" in printed
    assert "cloudy/clear pairs without S1:         26" in printed
    assert "S1 + cloudy pairs without target:      1" in printed
    assert "lone files:                            14 (0 s1, 14 s2, 0 s2_cloudy)" in printed
    assert "by split: train 31, val 11, test 0" in printed
    assert f"wrote 42 rows to {out}" in printed

    side = json.loads(summary_path(out).read_text())
    assert side["root"] == str(sen12mscr_root.resolve())
    index = read_index(out)  # the root comes from the sidecar
    assert len(index.rows) == 42 and index.split_source == "official"
    for row in index.rows:
        for kind in row.kinds:
            assert index.resolve(row, kind).is_file()


def test_index_command_with_check(sen12mscr_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "checked.csv"
    assert main(["index", str(sen12mscr_root), "--out", str(out), "--check", "--strict"]) == 0
    assert len(read_index(out).rows) == 42  # every real file passes the header checks


@pytest.mark.parametrize("make", [False, True])
def test_index_command_bad_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: bool
) -> None:
    root = tmp_path / "nothing"
    if make:
        root.mkdir()
    out = tmp_path / "index.csv"
    assert main(["index", str(root), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"cloudfree index: error: {root}: ")
    assert ("does not exist" if not make else "no SEN12MS-CR patch found") in captured.err
    assert "ROIs1970_fall_s1/s1_136/ROIs1970_fall_s1_136_p100.tif" in captured.err
    assert not out.exists()
