"""The index file format: columns, round-trip, summary categories, clear errors."""

import csv

import pytest

from cloudfree.data.release.index import (
    INDEX_COLUMNS,
    IndexResult,
    IndexRow,
    Problem,
    format_summary,
    read_index,
    summarize,
    summary_path,
    write_index,
)
from cloudfree.errors import DataError

ROWS = [
    IndexRow("ROIs2017_winter", 112, 797, "train", "a/s1.tif", "a/s2.tif", "a/c.tif"),
    IndexRow("ROIs1868_summer", 19, 30, "val", "b/s1.tif", "", "b/c.tif"),
    IndexRow("ROIs1970_fall", 136, 100, "train", "", "c/s2.tif", "c/c.tif"),
    IndexRow("ROIs1970_fall", 136, 139, "train", "", "d/s2.tif", "d/c.tif"),
    IndexRow("ROIs2017_winter", 84, 639, "val", "", "e/s2.tif", ""),
    IndexRow("ROIs1158_spring", 5, 1, "train", "f/s1.tif", "f/s2.tif", ""),
]


def test_row_properties():
    r = ROWS[0]
    assert r.id == "ROIs2017_winter_112_p797" and r.season == "winter"
    assert r.complete and r.kinds == ("s1", "s2", "s2_cloudy")
    assert ROWS[1].kinds == ("s1", "s2_cloudy") and not ROWS[1].complete
    assert ROWS[2].has("s2", "s2_cloudy") and not ROWS[2].has("s1")
    with pytest.raises(KeyError, match="s3"):
        r.path("s3")


def test_summary_categories():
    s = summarize(ROWS)
    assert (s.total, s.complete, s.pairs_without_s1, s.pairs_without_target) == (6, 1, 2, 1)
    assert s.pairs_without_cloudy == 1
    assert s.lone == {"s1": 0, "s2": 1, "s2_cloudy": 0} and s.lone_total == 1
    assert s.by_split == {"train": 4, "val": 2}
    assert s.complete_by_split == {"train": 1}


def test_write_read_round_trip_with_sidecar(tmp_path):
    res = IndexResult(
        ROWS, tmp_path / "root", [Problem("x.tif", "truncated")], "official", "release folders"
    )
    out = write_index(res, tmp_path / "index.csv")
    with open(out, newline="") as f:
        lines = list(csv.reader(f))
    assert tuple(lines[0]) == INDEX_COLUMNS
    assert lines[1] == ["ROIs1158_spring", "5", "1", "train", "f/s1.tif", "f/s2.tif", ""]  # sorted
    back = read_index(out)
    assert sorted(back.rows) == sorted(ROWS)
    assert back.root == (tmp_path / "root").resolve()
    assert back.problems == [Problem("x.tif", "truncated")]
    assert back.layout == "release folders"
    assert summary_path(out).name == "index.summary.json"
    # an explicit root overrides the recorded one
    assert read_index(out, root=tmp_path).root == tmp_path
    assert back.resolve(ROWS[0], "s1") == back.root / "a/s1.tif"
    with pytest.raises(DataError, match="has no s2 file"):
        back.resolve(ROWS[1], "s2")
    assert [r.id for r in back.select("val", require=("s2_cloudy",))] == ["ROIs1868_summer_19_p30"]


def test_format_summary_mentions_every_category(tmp_path):
    text = format_summary(IndexResult(ROWS, tmp_path, [Problem("bad.tif", "2 bands")]))
    for phrase in ("complete triplets", "without S1", "without target", "lone files", "bad.tif"):
        assert phrase in text


def test_bad_index_files_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_index(tmp_path / "nope.csv")
    p = tmp_path / "cols.csv"
    p.write_text("roi_season,scene,patch\nROIs1970_fall,1,2\n")
    with pytest.raises(
        DataError, match=r"missing column\(s\) \['split', 's1', 's2', 's2_cloudy'\]"
    ):
        read_index(p)
    p.write_text(",".join(INDEX_COLUMNS) + "\nROIs1970_fall,x,2,train,,,\n")
    with pytest.raises(DataError, match="line 2 is malformed"):
        read_index(p)
    p.write_text(",".join(INDEX_COLUMNS) + "\nROIs1970_fall,1,2,holdout,,,\n")
    with pytest.raises(DataError, match="split 'holdout'"):
        read_index(p)
