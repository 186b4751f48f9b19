"""``cloudfree index`` on a SEN12MS-CR-TS copy: folders and release archives, what is complete,
misplaced files, duplicates, header checks."""

from __future__ import annotations

import tarfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cloudfree.cli import main
from cloudfree.data.timeseries.index import (
    build_ts_index,
    looks_like_timeseries,
    read_ts_index,
)
from cloudfree.data.timeseries.names import TSFile, relative_path
from cloudfree.errors import DataError


def _tif(path: Path, bands: int, side: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    prof = dict(driver="GTiff", width=side, height=side, count=bands, dtype="uint16",
                crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10))  # fmt: skip
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(np.ones((bands, side, side), dtype=np.uint16))


def _series(top: Path, roi: str, patch: int, modalities=("s2", "s1"), dates=range(30)) -> None:
    day0 = date(2018, 1, 3)
    for t in dates:
        for m in modalities:
            # S1 is acquired within days of S2: its own date in its name
            day = day0 + timedelta(days=12 * t + (2 if m == "s1" else 0))
            rel = relative_path(TSFile(m, roi, t, day, patch))
            _tif(top / rel, 13 if m == "s2" else 2)


def _archive(path: Path, folder: Path, arcname: str) -> None:
    with tarfile.open(path, "w:gz") as tf:
        tf.add(folder, arcname=arcname)


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    root = tmp_path / "SEN12MSCRTS"
    _series(root, "ROIs1970/21", 0)  # train (africa), complete with S1
    _series(root, "ROIs1970/21", 1, modalities=("s2",))  # S2 only
    _series(root, "ROIs1970/21", 2, dates=range(29))  # a date missing
    # A test ROI only as the authors' archive: s2_africa_test.tar.gz -> s2_africa_test/ROIs...
    staged = tmp_path / "staged"
    _series(staged, "ROIs2017/32", 5, modalities=("s2",))
    _archive(root / "s2_africa_test.tar.gz", staged, "s2_africa_test")
    # The same file unpacked and archived: the unpacked copy is used
    _series(root, "ROIs2017/32", 5, modalities=("s2",), dates=[0])
    # A file in another date's folder
    wrong = root / "ROIs1970/21/S2/3/s2_ROIs1970_21_ImgNo_4_2018-02-20_patch_0.tif"
    _tif(wrong, 13)
    return root


def test_index_finds_folders_and_archives(copy: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert looks_like_timeseries(copy)
    out = tmp_path / "ts.csv"
    assert main(["index", str(copy), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    rows = read_ts_index(out)
    assert len(rows) == 30 * 4 - 1  # one row per patch and date found (patch 2 lacks one)
    first = rows[0]
    assert (first["roi"], first["patch"], first["t"], first["split"], first["region"]) == (
        "ROIs1970/21", "0", "0", "train", "africa")  # fmt: skip
    assert first["s2_date"] == "2018-01-03" and first["s1_date"] == "2018-01-05"
    assert first["s2"] == "ROIs1970/21/S2/0/s2_ROIs1970_21_ImgNo_0_2018-01-03_patch_0.tif"
    test_rows = [r for r in rows if r["roi"] == "ROIs2017/32"]
    assert {r["split"] for r in test_rows} == {"test"} and len(test_rows) == 30
    assert test_rows[0]["s2"].startswith("ROIs2017/32/S2/0/")  # unpacked beats archived
    assert test_rows[1]["s2"].startswith("s2_africa_test.tar.gz/s2_africa_test/ROIs2017/32/S2/1/")
    assert all(r["s1"] == "" for r in test_rows)
    missing = [r for r in rows if r["roi"] == "ROIs1970/21" and r["patch"] == "2"]
    assert len(missing) == 29
    assert "train: 3 patches of 1 ROIs; 2 with all 30 S2 dates" in text
    assert "1 with S1 too" in text and "test: 1 patches of 1 ROIs; 1 with all 30" in text
    assert "1 files found twice" in text
    assert "not in its release folder ROIs1970/21/S2/4/" in text
    from cloudfree.data.timeseries.index import ts_index_root

    assert ts_index_root(out) == copy.resolve()  # from the sidecar written beside it


def test_an_archived_file_reads_through_gdal(copy: Path, tmp_path: Path) -> None:
    from cloudfree.io import gdal_path

    index = build_ts_index(copy)
    rel = index.files[("ROIs2017/32", 5, 7)]["s2"][0]
    with rasterio.open(gdal_path(copy / rel)) as ds:
        assert ds.count == 13


def test_check_takes_out_files_of_the_wrong_shape(copy: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "ts.csv"
    assert main(["index", str(copy), "--out", str(out), "--check"]) == 0
    text = capsys.readouterr().out
    assert "13 bands of 8 x 8 px where the release has 13 bands of 256 x 256" in text
    assert main(["index", str(copy), "--out", str(out), "--check", "--strict"]) == 1
    assert "256 x 256" in capsys.readouterr().err


def test_not_a_timeseries_and_wrong_options(tmp_path: Path, copy: Path, capsys) -> None:  # noqa: ANN001
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not looks_like_timeseries(empty)
    with pytest.raises(DataError, match="holds no SEN12MS-CR-TS file"):
        build_ts_index(empty)
    assert main(["index", str(copy), "--out", str(tmp_path / "x.csv"),
                 "--splits", str(tmp_path / "s.csv")]) == 1  # fmt: skip
    assert "official ROI split" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_coverage_computed_or_taken_from_the_authors_file(copy: Path, tmp_path: Path) -> None:
    import torch

    from cloudfree.data.timeseries.coverage import read_coverage_cache

    out = tmp_path / "ts.csv"
    assert main(["index", str(copy), "--out", str(out), "--coverage", "dsen2cr"]) == 0
    cache = read_coverage_cache(tmp_path / "ts.coverage-dsen2cr.csv")
    assert len(cache) == 119 and all(0 <= c <= 1 for _, c in cache.values())
    # the authors' file covers patch 0 of ROIs1970/21 only
    paths = [relative_path(TSFile("s2", "ROIs1970/21", t, date(2018, 1, 3) + timedelta(12 * t),
                                  0)) for t in range(30)]  # fmt: skip
    np.save(tmp_path / "generic_3_train_all_s2cloudless_mask.npy", {0: {
        "coverage": [torch.tensor([t / 100]) for t in range(30)],
        "paths": {"S1": paths, "S2": paths}}})  # fmt: skip
    assert main(["index", str(copy), "--out", str(out),
                 "--samples", str(tmp_path / "generic_3_train_all_s2cloudless_mask.npy")]) == 0  # fmt: skip
    cache = read_coverage_cache(tmp_path / "ts.coverage-s2cloudless.csv")
    assert len(cache) == 30 and cache[paths[7]][1] == pytest.approx(0.07)


def test_coverage_options_need_a_timeseries(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    shared = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "sen12mscr"
    if not shared.is_dir():
        pytest.skip("needs ../shared/data/sen12mscr")
    assert main(["index", str(shared), "--out", str(tmp_path / "i.csv"),
                 "--coverage", "dsen2cr"]) == 1  # fmt: skip
    assert "are for SEN12MS-CR-TS" in capsys.readouterr().err
