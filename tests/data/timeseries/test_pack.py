"""``cloudfree pack`` of SEN12MS-CR-TS: the packed values are the release's, samples from a
pack equal samples from the index, an interrupted pack resumes, and what is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from cloudfree.cli import main
from cloudfree.data.source import series_kind
from cloudfree.data.timeseries.coverage import compute_coverage, coverage_cache_path
from cloudfree.data.timeseries.dataset import SeriesDataset
from cloudfree.data.timeseries.index import build_ts_index, write_ts_index
from cloudfree.data.timeseries.pack import PackedSeries, pack_series
from cloudfree.errors import DataError
from tests.data.timeseries.test_dataset import COV, _copy


def _index(tmp: Path, **kw) -> Path:  # noqa: ANN003
    root = _copy(tmp / "ts", **kw)
    index = tmp / "ts.csv"
    write_ts_index(build_ts_index(root), index)
    return index


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read().astype(np.float32)


def test_packed_values_and_samples_are_the_releases(tmp_path: Path) -> None:
    index = _index(tmp_path, size=8)
    rows = build_ts_index(tmp_path / "ts").rows()
    cache = coverage_cache_path(index, "dsen2cr")
    compute_coverage(tmp_path / "ts", [r["s2"] for r in rows], cache, "dsen2cr")
    manifest = pack_series(index, tmp_path / "pack", shard_patches=1, progress=False)
    assert manifest["include_s1"] and len(manifest["shards"]) == 2
    assert series_kind(tmp_path / "pack") == "packed" and series_kind(tmp_path / "ts") is None
    assert series_kind(index) == "index" and series_kind(tmp_path / "nothing.csv") is None
    packed = PackedSeries(tmp_path / "pack")
    for r in rows[::7]:
        assert np.array_equal(packed.read(r["s2"]), _read(tmp_path / "ts" / r["s2"]))
        np.testing.assert_array_equal(packed.read(r["s1"]), _read(tmp_path / "ts" / r["s1"]))
        assert np.isnan(packed.read(r["s1"])[:, 0, 0]).all()  # the release's NaN, kept
    # the coverage cache travels with the pack: nothing recomputed, the same values
    cov = packed.coverage("dsen2cr")
    assert cov == compute_coverage(tmp_path / "ts", [r["s2"] for r in rows], cache, "dsen2cr")
    coverage = {r["s2"]: COV[int(r["t"])] for r in rows}
    kw = dict(coverage=coverage, split="test", min_cov=0.1, max_cov=0.6, masker="dsen2cr")
    a = SeriesDataset(tmp_path / "ts", rows, **kw)[1]  # type: ignore[arg-type]
    b = SeriesDataset(packed.root, packed.rows, reader=packed.read, **kw)[1]  # type: ignore[arg-type]
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert torch.equal(v, b[k]) if isinstance(v, torch.Tensor) else v == b[k], k


def test_an_interrupted_pack_resumes_and_another_index_is_refused(tmp_path: Path) -> None:
    index = _index(tmp_path)
    out = tmp_path / "pack"
    pack_series(index, out, shard_patches=1, progress=False)
    first = (out / "shard_00000" / "s2.npy").stat().st_mtime_ns
    # as if killed during the second shard: its files gone, the manifest says not done
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"][1]["done"] = False
    (out / "manifest.json").write_text(json.dumps(manifest))
    for f in (out / "shard_00001").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="unfinished pack"):
        PackedSeries(out)
    assert main(["pack", str(index), "--out", str(out), "--shard-size", "1"]) == 0
    assert (out / "shard_00000" / "s2.npy").stat().st_mtime_ns == first  # kept, not re-read
    assert len(PackedSeries(out).rows) == 60
    other = _index(tmp_path / "b", patches=(0,))
    with pytest.raises(DataError, match="pack of another index"):
        pack_series(other, out, progress=False)
    assert pack_series(other, out, overwrite=True, progress=False)["shards"][0]["patches"] == [
        ["ROIs1868/119", 0]]  # fmt: skip
    assert not any(p.name.endswith(".part") for p in out.rglob("*"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(DataError, match="replaces only a pack"):
        pack_series(other, tmp_path / "mine", overwrite=True, progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_incomplete_and_unreadable_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = _index(tmp_path, s1_missing_at=5)  # patch 1 lacks one S1 date
    m = pack_series(index, tmp_path / "s2only", progress=False)
    assert not m["include_s1"] and [s["patches"] for s in m["shards"]] == [
        [["ROIs1868/119", 0], ["ROIs1868/119", 1]]]  # fmt: skip
    assert not (tmp_path / "s2only" / "shard_00000" / "s1.npy").exists()
    with pytest.raises(DataError, match="is not in the pack"):
        PackedSeries(tmp_path / "s2only").read(build_ts_index(tmp_path / "ts").rows()[0]["s1"])
    bad = next((tmp_path / "ts").rglob("*ImgNo_3_*patch_0.tif"))
    bad.write_bytes(b"not a tiff")
    with pytest.warns(UserWarning, match="series ROIs1868/119/0 skipped"):
        m = pack_series(index, tmp_path / "skip", include_s1=False, progress=False)
    assert m["skipped"][0]["patch"] == 0
    assert {r["patch"] for r in PackedSeries(tmp_path / "skip").rows} == {"1"}
    with pytest.raises(DataError, match="cannot be read"):
        pack_series(index, tmp_path / "strict", include_s1=False, strict=True, progress=False)
    assert main(["pack", str(index), "--out", str(tmp_path / "x"), "--no-mask"]) == 1
    assert "apply to SEN12MS-CR packs" in capsys.readouterr().err


def test_evaluate_on_a_pack_equals_evaluate_on_the_index(tmp_path: Path) -> None:
    index = _index(tmp_path, size=8)
    assert main(["pack", str(index), "--out", str(tmp_path / "pack")]) == 0
    for name, data in (("i", index), ("p", tmp_path / "pack")):
        assert main(["evaluate", "--checkpoint", "median", "--data", str(data), "--out",
                     str(tmp_path / name), "--coverage", "dsen2cr", "--no-progress"]) == 0  # fmt: skip
    a, b = ((tmp_path / n / "per_patch.csv").read_text() for n in ("i", "p"))
    assert a == b and len(a.splitlines()) == 3
    assert os.path.exists(tmp_path / "pack" / "index.coverage-dsen2cr.csv")
