"""Tests of dataset discovery (``cloudfree index``): release folders, release archives, the flat
DSen2-CR layout with its file list, splits, and the --check of every file's header."""

from __future__ import annotations

import os
import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cloudfree.data.release.discover import PatchFile, build_index, parse_patch_path
from cloudfree.data.release.file_list import read_file_list
from cloudfree.data.release.index import IndexResult
from cloudfree.errors import DataError, DatasetNotFoundError
from cloudfree.io import read_raster

SIZE = 32  # fake patches are 32 x 32 (the release's are 256 x 256)


def write_tif(
    path: Path,
    kind: str,
    size: int = SIZE,
    count: int | None = None,
    dtype: str | None = None,
    origin: tuple[float, float] = (500000.0, 5000000.0),
    seed: int = 0,
) -> Path:
    """A small GeoTIFF like a SEN12MS-CR file: S1 2 x float32 dB, S2 13 x uint16, UTM 33N."""
    count = count or (2 if kind == "s1" else 13)
    dtype = dtype or ("float32" if kind == "s1" else "uint16")
    rng = np.random.default_rng(seed)
    shape = (count, size, size)
    if kind == "s1":
        data = rng.uniform(-25.0, 0.0, shape).astype(dtype)
    else:
        data = rng.integers(0, 5000, shape).astype(dtype)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": count,
        "dtype": dtype,
        "crs": "EPSG:32633",
        "transform": from_origin(*origin, 10.0, 10.0),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


def release_path(root: Path, roi_season: str, kind: str, scene: int, patch: int) -> Path:
    """``root/ROIs1970_fall_s1/s1_136/ROIs1970_fall_s1_136_p100.tif`` (the release layout)."""
    return (
        root
        / f"{roi_season}_{kind}"
        / f"{kind}_{scene}"
        / f"{roi_season}_{kind}_{scene}_p{patch}.tif"
    )


def rows_by_id(result: IndexResult) -> dict[str, tuple]:
    return {r.id: (r.split, r.kinds) for r in result.rows}


# ------------------------------------------------------------------------------- names


def test_parse_patch_path_release_and_flat_names() -> None:
    # "s2" is a prefix of "s2_cloudy": the cloudy file must not be read as s2 of scene "cloudy".
    assert parse_patch_path("s2_cloudy_136", "ROIs1970_fall_s2_cloudy_136_p100.tif") == PatchFile(
        ("ROIs1970_fall", 136, 100), "s2_cloudy", False
    )
    assert parse_patch_path("s2_136", "ROIs1970_fall_s2_136_p100.tif") == PatchFile(
        ("ROIs1970_fall", 136, 100), "s2", False
    )
    upper = parse_patch_path("x", "ROIs1158_spring_s1_7_p3.TIF")
    assert upper == PatchFile(("ROIs1158_spring", 7, 3), "s1", False)
    # Flat layout: the kind is the folder; the paper's old names have no "p".
    flat = parse_patch_path("s2_cloudFree", "ROIs1158_spring_101_p100.tif")
    assert flat == PatchFile(("ROIs1158_spring", 101, 100), "s2", True)
    assert parse_patch_path("s2_cloudy", "ROIs1158_spring_101_0.tif") == PatchFile(
        ("ROIs1158_spring", 101, 0), "s2_cloudy", True
    )
    stray = parse_patch_path("preds", "ROIs1158_spring_101_p100.tif")
    assert isinstance(stray, str) and "not one of s1" in stray
    odd = parse_patch_path("s1", "ROIs1158_spring_s1_101.tif")
    assert isinstance(odd, str) and "not understood" in odd
    assert parse_patch_path("s1", "notes.tif") is None
    assert parse_patch_path("s1", "ROIs1158_spring_s1_101_p1.tif.aux.xml") is None


# --------------------------------------------------------------------------- real data


def test_real_release_folders(sen12mscr_root: Path) -> None:
    result = build_index(sen12mscr_root)
    s = result.summary()
    assert (s.total, s.complete, s.pairs_without_target, s.pairs_without_s1) == (42, 1, 1, 26)
    assert s.pairs_without_cloudy == 0
    assert s.lone == {"s1": 0, "s2": 14, "s2_cloudy": 0}
    assert result.layout == "release folders"
    assert result.split_source == "official"
    assert result.problems == []

    by_id = {r.id: r for r in result.rows}
    triplet = by_id["ROIs2017_winter_112_p797"]
    assert triplet.complete and triplet.split == "train"
    assert triplet.s2_cloudy == (
        "ROIs2017_winter_s2_cloudy/s2_cloudy_112/ROIs2017_winter_s2_cloudy_112_p797.tif"
    )
    pair = by_id["ROIs1868_summer_19_p30"]
    assert pair.kinds == ("s1", "s2_cloudy") and pair.split == "val"  # summer 19 is val
    lone = [r for r in result.rows if r.kinds == ("s2",)]
    assert sorted((r.roi_season, r.scene) for r in lone) == sorted(
        [("ROIs1158_spring", 101)] * 4 + [("ROIs2017_winter", 84)] * 10
    )
    for r in result.rows:
        expected = "val" if (r.roi_season, r.scene) == ("ROIs2017_winter", 84) else "train"
        if r.id != "ROIs1868_summer_19_p30":
            assert r.split == expected, r.id
    for r in result.rows:
        for kind in r.kinds:
            assert result.resolve(r, kind).is_file()


def _make_release_archives(src: Path, dst: Path, mode: str = "w:gz", prefix: str = "") -> None:
    """One archive per top-level release folder, as downloaded (``ROIs1970_fall_s2.tar.gz``)."""
    dst.mkdir(parents=True, exist_ok=True)
    suffix = ".tar" if mode == "w" else ".tar.gz"
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        kwargs = {"compresslevel": 0} if mode == "w:gz" else {}  # stored: fast to write
        with tarfile.open(dst / f"{folder.name}{suffix}", mode, **kwargs) as tf:
            tf.add(folder, arcname=prefix + folder.name)


def test_real_release_archives_match_folders(sen12mscr_root: Path, tmp_path: Path) -> None:
    _make_release_archives(sen12mscr_root, tmp_path / "archives")
    folders = build_index(sen12mscr_root)
    archives = build_index(tmp_path / "archives")
    assert archives.layout == "release archives"
    assert archives.problems == []
    assert rows_by_id(archives) == rows_by_id(folders)
    for a, f in zip(archives.rows, folders.rows, strict=True):
        for kind in f.kinds:
            top = f.path(kind).split("/")[0]
            assert a.path(kind) == f"{top}.tar.gz/{f.path(kind)}"
    # A row from an archive reads through GDAL's /vsitar/ as the very same pixels.
    row = next(r for r in archives.rows if r.complete)
    unpacked = next(r for r in folders.rows if r.id == row.id)
    for kind in row.kinds:
        got, meta = read_raster(archives.resolve(row, kind))
        want, want_meta = read_raster(folders.resolve(unpacked, kind))
        assert got.dtype == want.dtype and np.array_equal(got, want)
        assert meta.same_grid(want_meta)


def test_plain_tar_with_dot_slash_members(tmp_path: Path) -> None:
    src = tmp_path / "src"
    f = write_tif(release_path(src, "ROIs1970_fall", "s1", 136, 100), "s1")
    _make_release_archives(src, tmp_path / "root", mode="w", prefix="./")
    result = build_index(tmp_path / "root")
    (row,) = result.rows
    assert row.s1 == "ROIs1970_fall_s1.tar/ROIs1970_fall_s1/s1_136/ROIs1970_fall_s1_136_p100.tif"
    assert np.array_equal(read_raster(result.resolve(row, "s1"))[0], read_raster(f)[0])
    # A single archive may be given as the root: it is indexed relative to its folder.
    alone = build_index(tmp_path / "root" / "ROIs1970_fall_s1.tar")
    assert alone.root == tmp_path / "root" and alone.rows == result.rows


def test_archive_beside_its_unpacked_folder_is_not_read(tmp_path: Path) -> None:
    write_tif(release_path(tmp_path / "root", "ROIs1970_fall", "s1", 136, 100), "s1")
    write_tif(release_path(tmp_path / "src", "ROIs1970_fall", "s2", 136, 100), "s2")
    _make_release_archives(tmp_path / "root", tmp_path / "root")  # s1 archive + its folder
    _make_release_archives(tmp_path / "src", tmp_path / "root")  # s2 archive only
    result = build_index(tmp_path / "root")
    (row,) = result.rows
    assert row.s1 == "ROIs1970_fall_s1/s1_136/ROIs1970_fall_s1_136_p100.tif"
    assert row.s2.startswith("ROIs1970_fall_s2.tar.gz/")
    assert result.layout == "release folders + release archives"
    assert result.problems == []


def test_truncated_archive_is_reported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for p in range(3):
        write_tif(release_path(src, "ROIs1970_fall", "s2", 136, p), "s2", seed=p)
    write_tif(release_path(tmp_path / "root", "ROIs1970_fall", "s1", 136, 0), "s1")
    _make_release_archives(src, tmp_path / "root")
    archive = tmp_path / "root" / "ROIs1970_fall_s2.tar.gz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    result = build_index(tmp_path / "root")
    assert [p.path for p in result.problems] == ["ROIs1970_fall_s2.tar.gz"]
    assert "cannot read archive" in result.problems[0].reason
    with pytest.raises(DataError, match="ROIs1970_fall_s2.tar.gz: cannot read archive"):
        build_index(tmp_path / "root", strict=True)


# ------------------------------------------------------------------------------- flat


FLAT_NAMES = [
    ("1", "ROIs1158_spring_101_p1.tif"),
    ("1", "ROIs1158_spring_101_p2.tif"),
    ("2", "ROIs1868_summer_19_p30.tif"),
    ("3", "ROIs1970_fall_139_p7.tif"),
]


@pytest.fixture
def flat_root(tmp_path: Path) -> Path:
    """The flat DSen2-CR layout with empty files (nothing is opened without check)."""
    root = tmp_path / "flat"
    for _, name in FLAT_NAMES:
        for folder in ("s1", "s2_cloudFree", "s2_cloudy"):
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / name).touch()
    (root / "s2_cloudy" / "ROIs2017_winter_84_p5.tif").touch()  # not listed in any CSV
    return root


def _file_list(root: Path, sep: str, names=FLAT_NAMES, name: str = "list.csv") -> Path:
    lines = [sep.join([s, "s1", "s2_cloudFree", "s2_cloudy", n]) for s, n in names]
    path = root / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_file_list_tab_and_comma_space_variants(tmp_path: Path) -> None:
    tab = _file_list(tmp_path, "\t", name="tab.csv")
    comma = _file_list(tmp_path, ", ", name="comma.csv")
    a, b = read_file_list(tab), read_file_list(comma)
    assert a == b
    assert [e.split for e in a] == ["train", "train", "val", "test"]
    assert a[2].s1 == "s1/ROIs1868_summer_19_p30.tif"
    assert a[2].s2 == "s2_cloudFree/ROIs1868_summer_19_p30.tif"
    assert a[2].line == 3


def test_flat_layout_with_tab_or_comma_file_list(flat_root: Path) -> None:
    results = []
    for sep in ("\t", ", "):
        csv = _file_list(flat_root, sep)
        results.append(build_index(flat_root, file_list=csv))
        csv.unlink()
    tab, comma = results
    assert tab.rows == comma.rows
    assert rows_by_id(tab) == {
        "ROIs1158_spring_101_p1": ("train", ("s1", "s2", "s2_cloudy")),
        "ROIs1158_spring_101_p2": ("train", ("s1", "s2", "s2_cloudy")),
        "ROIs1868_summer_19_p30": ("val", ("s1", "s2", "s2_cloudy")),
        "ROIs1970_fall_139_p7": ("test", ("s1", "s2", "s2_cloudy")),
    }  # the unlisted winter file is not indexed: the list decides
    assert tab.rows[0].s2 == "s2_cloudFree/ROIs1158_spring_101_p1.tif"
    assert tab.layout == "flat DSen2-CR (file list list.csv)"
    assert tab.split_source.startswith("file list")


def test_flat_layout_file_list_found_in_root(flat_root: Path) -> None:
    # The file list's split (fall 139 as val) wins over the official one (fall 139 is test).
    names = [(s if "fall" not in n else "2", n) for s, n in FLAT_NAMES]
    _file_list(flat_root, ", ", names=names, name="datasetfilelist.csv")
    # An index CSV kept in the root must not be taken for a file list.
    (flat_root / "index.csv").write_text("roi_season,scene,patch,split,s1,s2,s2_cloudy\n")
    result = build_index(flat_root)
    assert result.layout == "flat DSen2-CR (file list datasetfilelist.csv)"
    assert rows_by_id(result)["ROIs1970_fall_139_p7"][0] == "val"
    assert len(result.rows) == 4


def test_flat_layout_without_file_list_scans_folders(flat_root: Path) -> None:
    result = build_index(flat_root)
    assert result.layout == "flat DSen2-CR"
    assert result.split_source == "official"
    by_id = rows_by_id(result)
    assert len(by_id) == 5
    assert by_id["ROIs2017_winter_84_p5"] == ("val", ("s2_cloudy",))
    assert by_id["ROIs1970_fall_139_p7"] == ("test", ("s1", "s2", "s2_cloudy"))


def test_file_list_naming_a_missing_file(flat_root: Path) -> None:
    (flat_root / "s2_cloudFree" / "ROIs1868_summer_19_p30.tif").unlink()
    csv = _file_list(flat_root, "\t")
    result = build_index(flat_root, file_list=csv)
    (problem,) = result.problems
    assert problem.path == "s2_cloudFree/ROIs1868_summer_19_p30.tif"
    assert "line 3" in problem.reason and str(csv) in problem.reason
    assert rows_by_id(result)["ROIs1868_summer_19_p30"] == ("val", ("s1", "s2_cloudy"))
    with pytest.raises(
        DataError, match=r"list.csv: line 3 lists s2_cloudFree/ROIs1868_summer_19_p30.tif"
    ):
        build_index(flat_root, file_list=csv, strict=True)


def test_malformed_file_list_line(flat_root: Path) -> None:
    csv = flat_root / "list.csv"
    csv.write_text("1\ts1\ts2_cloudFree\ts2_cloudy\tROIs1158_spring_101_p1.tif\n4\ts1\tx\n")
    with pytest.raises(DataError, match="line 2 is malformed"):
        build_index(flat_root, file_list=csv)
    with pytest.raises(DataError, match="file list does not exist"):
        build_index(flat_root, file_list=flat_root / "nope.csv")


def test_user_split_file_overrides(flat_root: Path, tmp_path: Path) -> None:
    _file_list(flat_root, ", ")
    splits = tmp_path / "splits.csv"
    splits.write_text("roi_season,scene,split,patch\nspring,101,test,\nspring,101,val,2\n")
    result = build_index(flat_root, split_file=splits)
    assert result.split_source == str(splits)
    assert {r.id: r.split for r in result.rows} == {
        "ROIs1158_spring_101_p1": "test",
        "ROIs1158_spring_101_p2": "val",
        "ROIs1868_summer_19_p30": "train",  # the file list said val; the split file decides
        "ROIs1970_fall_139_p7": "train",
    }
    splits.write_text("roi_season,scene,split\nspring,101,tset\n")
    with pytest.raises(DataError, match=r"splits.csv: line 2: unknown split 'tset'"):
        build_index(flat_root, split_file=splits)


# ---------------------------------------------------------------------------- mixed roots


def test_mixed_root_duplicates_and_odd_names(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_tif(release_path(root, "ROIs1970_fall", "s2", 136, 1), "s2")
    (root / "s2_cloudy").mkdir()
    (root / "s2_cloudy" / "ROIs1970_fall_136_p1.tif").touch()
    (root / "copy").mkdir()
    shutil.copy(release_path(root, "ROIs1970_fall", "s2", 136, 1), root / "copy")
    (root / "preds").mkdir()
    (root / "preds" / "ROIs1970_fall_136_p1.tif").touch()
    (root / ".hidden").mkdir()
    (root / ".hidden" / "ROIs1970_fall_s1_136_p1.tif").touch()
    (root / "notes.txt").touch()
    result = build_index(root)
    (row,) = result.rows
    assert row.kinds == ("s2", "s2_cloudy")
    assert result.layout == "release folders + flat DSen2-CR"
    reasons = {p.path: p.reason for p in result.problems}
    assert set(reasons) == {"copy/ROIs1970_fall_s2_136_p1.tif", "preds/ROIs1970_fall_136_p1.tif"}
    assert (
        "duplicate of ROIs1970_fall_s2/s2_136/ROIs1970_fall_s2_136_p1.tif"
        in reasons["copy/ROIs1970_fall_s2_136_p1.tif"]
    )
    assert "'preds'" in reasons["preds/ROIs1970_fall_136_p1.tif"]


@pytest.mark.parametrize("setup", ["empty", "missing", "unrelated", "misnamed"])
def test_no_dataset_found(tmp_path: Path, setup: str) -> None:
    root = tmp_path / "root"
    if setup != "missing":
        root.mkdir()
    if setup == "unrelated":
        (root / "a.tif").touch()
        (root / "sub").mkdir()
    if setup == "misnamed":
        (root / "ROIs1970_fall_s1_136.tif").touch()
    with pytest.raises(DatasetNotFoundError) as e:
        build_index(root)
    msg = str(e.value)
    assert msg.startswith(str(root))
    for text in (
        "release folders",
        "ROIs1970_fall_s1/s1_136/ROIs1970_fall_s1_136_p100.tif",
        "release archives",
        "ROIs1970_fall_s1.tar.gz",
        "flat DSen2-CR",
        "s2_cloudFree/",
    ):
        assert text in msg
    assert ("does not exist" in msg) == (setup == "missing")
    assert ("ROIs1970_fall_s1_136.tif" in msg) == (setup == "misnamed")


# ------------------------------------------------------------------------------- check


@pytest.fixture
def checked_root(tmp_path: Path) -> Path:
    """Release folders with one good triplet and one broken file in each other patch."""
    root = tmp_path / "root"
    for p in range(1, 6):
        write_tif(release_path(root, "ROIs1970_fall", "s1", 136, p), "s1", seed=p)
        write_tif(release_path(root, "ROIs1970_fall", "s2", 136, p), "s2", seed=p)
        write_tif(release_path(root, "ROIs1970_fall", "s2_cloudy", 136, p), "s2", seed=p + 9)
    # p2: truncated S2 (a real file cut short: its header still opens).
    t = release_path(root, "ROIs1970_fall", "s2", 136, 2)
    t.write_bytes(t.read_bytes()[: t.stat().st_size * 2 // 3])
    # p3: cloudy S2 with 12 bands; p4: S1 as uint16; p5: S1 shifted by 10 pixels.
    write_tif(release_path(root, "ROIs1970_fall", "s2_cloudy", 136, 3), "s2", count=12)
    write_tif(release_path(root, "ROIs1970_fall", "s1", 136, 4), "s1", dtype="uint16")
    write_tif(release_path(root, "ROIs1970_fall", "s1", 136, 5), "s1", origin=(500100.0, 5e6))
    return root


def test_check_reports_and_drops_bad_files(checked_root: Path) -> None:
    with pytest.warns(UserWarning, match=r"11 file\(s\) are 32x32 px, not 256x256 \(kept\)"):
        result = build_index(checked_root, check=True)
    reasons = {os.path.basename(p.path): p.reason for p in result.problems}
    assert set(reasons) == {
        "ROIs1970_fall_s2_136_p2.tif",
        "ROIs1970_fall_s2_cloudy_136_p3.tif",
        "ROIs1970_fall_s1_136_p4.tif",
        "ROIs1970_fall_s1_136_p5.tif",
    }
    assert reasons["ROIs1970_fall_s2_136_p2.tif"].startswith("truncated")
    assert (
        reasons["ROIs1970_fall_s2_cloudy_136_p3.tif"] == "has 12 bands, expected 13 for s2_cloudy"
    )
    assert "dtype uint16" in reasons["ROIs1970_fall_s1_136_p4.tif"]
    grid = reasons["ROIs1970_fall_s1_136_p5.tif"]
    assert "not on the grid of ROIs1970_fall_s2_cloudy/" in grid and "500100.0" in grid
    kinds = {r.patch: r.kinds for r in result.rows}
    assert kinds == {
        1: ("s1", "s2", "s2_cloudy"),
        2: ("s1", "s2_cloudy"),
        3: ("s1", "s2"),
        4: ("s2", "s2_cloudy"),
        5: ("s2", "s2_cloudy"),
    }
    # Without check nothing is opened: all 15 files are indexed.
    assert build_index(checked_root).summary().complete == 5


@pytest.mark.parametrize(
    ("patch", "name"),
    [
        (2, "ROIs1970_fall_s2_136_p2.tif: truncated"),
        (3, "ROIs1970_fall_s2_cloudy_136_p3.tif: has 12 bands"),
        (4, "ROIs1970_fall_s1_136_p4.tif: dtype uint16"),
        (5, "ROIs1970_fall_s1_136_p5.tif: not on the grid"),
    ],
)
def test_check_strict_raises_naming_the_file(checked_root: Path, patch: int, name: str) -> None:
    for p in {2, 3, 4, 5} - {patch}:  # leave only one bad patch
        for d in checked_root.glob(f"*/*/*_p{p}.tif"):
            d.unlink()
    with warnings.catch_warnings(), pytest.raises(DataError, match=name):
        warnings.simplefilter("ignore")
        build_index(checked_root, check=True, strict=True)


def test_check_corrupt_file_and_lenient_dtype(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_tif(release_path(root, "ROIs1970_fall", "s2", 136, 1), "s2", size=256, dtype="int16")
    bad = release_path(root, "ROIs1970_fall", "s2_cloudy", 136, 1)
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"II*\x00" + b"\x00" * 100)  # a TIFF signature and nothing else
    with pytest.warns(UserWarning, match=r"1 file\(s\) of kind s2 are int16, not uint16"):
        result = build_index(root, check=True)
    (problem,) = result.problems
    assert problem.path.endswith("ROIs1970_fall_s2_cloudy_136_p1.tif")
    assert problem.reason.startswith("cannot open raster")
    (row,) = result.rows
    assert row.kinds == ("s2",)


def test_check_reads_archive_members(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tif(release_path(src, "ROIs1970_fall", "s1", 136, 1), "s1", size=256)
    write_tif(release_path(src, "ROIs1970_fall", "s2", 136, 1), "s2", size=256, count=4)
    _make_release_archives(src, tmp_path / "root")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 256 x 256 float32 / uint16: nothing odd to report
        result = build_index(tmp_path / "root", check=True)
    (problem,) = result.problems
    assert problem.path.startswith("ROIs1970_fall_s2.tar.gz/") and "has 4 bands" in problem.reason
    assert result.rows[0].kinds == ("s1",)
