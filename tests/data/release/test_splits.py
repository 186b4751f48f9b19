"""Tests of the SEN12MS-CR split table: the official ROI split and users' split files."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudfree.bands import SEASONS
from cloudfree.data.release.splits import OFFICIAL_SPLIT, SplitTable, normalize_roi_season
from cloudfree.errors import DataError


def test_official_split_matches_the_published_scene_lists() -> None:
    t = SplitTable.official()
    assert t.source == "official"
    # Spec section 1, written out by hand from the UnCRtainTS lists.
    test = (
        {("ROIs1158_spring", n) for n in (106, 123, 140, 31, 44)}
        | {("ROIs1868_summer", 119), ("ROIs1868_summer", 73), ("ROIs1970_fall", 139)}
        | {
            ("ROIs2017_winter", 108),
            ("ROIs2017_winter", 63),
        }
    )
    val = (
        {("ROIs2017_winter", n) for n in (22, 107, 130, 84)}
        | {("ROIs1868_summer", n) for n in (19, 80, 127, 17)}
        | {("ROIs1970_fall", 65), ("ROIs1158_spring", 17)}
    )
    assert {k for k, v in OFFICIAL_SPLIT.items() if v == "test"} == test
    assert {k for k, v in OFFICIAL_SPLIT.items() if v == "val"} == val
    for roi_season, scene in test:
        assert t.split_of(roi_season, scene, 5) == "test"
    for roi_season, scene in val:
        assert t.split_of(roi_season, scene) == "val"
    # Scene numbers repeat across seasons: fall 17 and winter 19 are train.
    assert t.split_of("ROIs1970_fall", 17) == "train"
    assert t.split_of("ROIs2017_winter", 19) == "train"
    assert t.split_of("ROIs1970_fall", 136, 100) == "train"


def test_normalize_roi_season() -> None:
    assert normalize_roi_season("fall") == "ROIs1970_fall"
    assert normalize_roi_season(" Winter ") == "ROIs2017_winter"
    assert normalize_roi_season("ROIs1158_spring") == SEASONS["spring"]
    with pytest.raises(ValueError, match="autumn"):
        normalize_roi_season("autumn")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_split_file_scene_and_patch_rows(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "my_split.csv",
        "roi_season, scene, split, patch\n"
        "# held-out scenes\n"
        "spring, 106, test,\n"
        "ROIs1970_fall,136,val,\n"
        "\n"
        "fall,136,test,100\n"
        "ROIs2017_winter,84,TRAIN,\n",
    )
    t = SplitTable.from_file(f)
    assert t.source == str(f)
    assert t.split_of("ROIs1158_spring", 106, 3) == "test"
    assert t.split_of("ROIs1970_fall", 136, 99) == "val"
    assert t.split_of("ROIs1970_fall", 136, 100) == "test"  # the patch row overrides the scene
    assert t.split_of("ROIs1970_fall", 136) == "val"
    # A user file replaces the official split entirely: winter 84 (official val) is train here,
    # and an unnamed scene gets the default.
    assert t.split_of("ROIs2017_winter", 84, 1) == "train"
    assert t.split_of("ROIs1868_summer", 19, 30) == "train"
    assert SplitTable.from_file(f, default="test").split_of("ROIs1868_summer", 19, 30) == "test"


def test_split_file_without_patch_column(tmp_path: Path) -> None:
    f = _write(tmp_path / "s.csv", "split,roi_season,scene\nval,summer,31\n")
    assert SplitTable.from_file(f).split_of("ROIs1868_summer", 31, 100) == "val"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("spring,106,test\nspring,107,holdout\n", r"line 3: unknown split 'holdout'"),
        ("autumn,106,test\n", r"line 2: unknown roi_season 'autumn'"),
        ("spring,1o6,test\n", r"line 2: scene '1o6'.*not an integer"),
        ("spring,106,test\nspring,106,val\n", r"line 3 puts ROIs1158_spring scene 106 in 'val'"),
    ],
)
def test_bad_split_file_lines_name_file_and_line(tmp_path: Path, body: str, match: str) -> None:
    f = _write(tmp_path / "bad.csv", "roi_season,scene,split\n" + body)
    with pytest.raises(DataError, match=match) as e:
        SplitTable.from_file(f)
    assert e.value.path == str(f)


def test_split_file_missing_column_or_file(tmp_path: Path) -> None:
    f = _write(tmp_path / "nohead.csv", "spring,106,test\n")
    with pytest.raises(DataError, match=r"missing column\(s\)") as e:
        SplitTable.from_file(f)
    assert "roi_season,scene,split" in str(e.value)
    with pytest.raises(DataError, match="does not exist"):
        SplitTable.from_file(tmp_path / "absent.csv")


def test_bad_default_split() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        SplitTable({}, default="holdout")
