"""``--splits`` with the DSen2-CR authors' file list (ameraner/dsen2-cr ``Data/datasetfilelist.csv``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import format_summary
from cloudfree.data.release.splits import SplitTable
from cloudfree.errors import DataError

# The layout of the authors' file (tab-separated, no header; split 1 train, 2 val, 3 test) with
# names of the paper's first release (scene_patch) and of the flat public layout (scene_p).
LINES = [
    ("1", "ROIs1158_spring_101_0.tif"),
    ("1", "ROIs1158_spring_101_1.tif"),
    ("3", "ROIs1970_fall_136_p100.tif"),
    ("3", "ROIs1970_fall_136_p101.tif"),
    ("2", "ROIs2017_winter_22_p5.tif"),
    ("1", "ROIs2017_winter_22_p6.tif"),
    ("1", "not_a_patch.tif"),
]


def _write(path: Path, sep: str) -> Path:
    path.write_text(
        "".join(sep.join([c, "s1", "s2_cloudFree", "s2_cloudy", n]) + "\n" for c, n in LINES)
    )
    return path


@pytest.mark.parametrize("sep", ["\t", ", "])
def test_authors_file_list_as_a_split_table(tmp_path: Path, sep: str) -> None:
    table = SplitTable.from_file(_write(tmp_path / "datasetfilelist.csv", sep))
    assert table.source.startswith("DSen2-CR file list")
    assert table.split_of("ROIs1158_spring", 101, 0) == "train"
    assert table.split_of("ROIs1970_fall", 136, 100) == "test"
    # An unlisted patch of a scene listed in one split takes that split: no test leak.
    assert table.split_of("ROIs1970_fall", 136, 999) == "test"
    # A scene listed in two splits: its listed patches keep theirs, the others the default.
    assert table.split_of("ROIs2017_winter", 22, 5) == "val"
    assert table.split_of("ROIs2017_winter", 22, 6) == "train"
    assert table.split_of("ROIs2017_winter", 22, 7) == "train"
    assert table.split_of("ROIs1868_summer", 1, 1) == "train"  # unlisted scene: the default
    assert table.listed is not None and len(table.listed) == 6
    assert table.unmatched == ("not_a_patch.tif",)


def test_index_reports_what_the_list_did_not_match(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for roi, scene, patch in [("ROIs1970_fall", 136, 100), ("ROIs1970_fall", 136, 102),
                              ("ROIs1158_spring", 101, 0)]:  # fmt: skip
        for kind in ("s1", "s2", "s2_cloudy"):
            f = root / f"{roi}_{kind}" / f"{kind}_{scene}" / f"{roi}_{kind}_{scene}_p{patch}.tif"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(b"")  # discovery lists names only
    result = build_index(root, split_file=_write(tmp_path / "list.csv", "\t"))
    splits = {(r.roi_season, r.scene, r.patch): r.split for r in result.rows}
    assert splits == {("ROIs1158_spring", 101, 0): "train", ("ROIs1970_fall", 136, 100): "test",
                      ("ROIs1970_fall", 136, 102): "test"}  # fmt: skip
    text = format_summary(result)
    assert "the split list names 6 patches: 2 found here, 4 not found" in text
    assert "1 patch(es) found here are not in the list" in text
    assert "ROIs1970_fall scene 136 patch 102" in text
    assert "1 name(s) of the list are not SEN12MS-CR patch names" in text


def test_a_patch_in_two_splits_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("1\ts1\ts2_cloudFree\ts2_cloudy\tROIs1158_spring_101_0.tif\n"
                    "3\ts1\ts2_cloudFree\ts2_cloudy\tROIs1158_spring_101_p0.tif\n")  # fmt: skip
    with pytest.raises(DataError, match="line 2 puts ROIs1158_spring scene 101 patch 0 in 'test'"):
        SplitTable.from_file(path)
