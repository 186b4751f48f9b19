"""Tests of cloudfree.data.packed.pack: packing an index into memory-mapped shards, resuming, archives."""

from __future__ import annotations

import csv
import json
import os
import tarfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.bands import KINDS
from cloudfree.cli import main
from cloudfree.data.packed import pack as pack_module
from cloudfree.data.packed import sources as pack_sources
from cloudfree.data.packed.dataset import PackedDataset
from cloudfree.data.packed.manifest import plan_shards
from cloudfree.data.packed.pack import pack
from cloudfree.data.packed.shards import PATCH_COLUMNS, read_manifest
from cloudfree.data.release.dataset import SEN12MSCR
from cloudfree.data.release.index import IndexResult, IndexRow, read_index, write_index
from cloudfree.data.sample import SampleConfig
from cloudfree.errors import DataError, DatasetNotFoundError
from cloudfree.io import RasterMeta, read_raster, write_raster
from cloudfree.masks import CSMParams, cloud_shadow_mask

SIZE = 32  # tiny patches: the format does not care about the size
ROI = "ROIs1970_fall"
NO_S1 = 3  # patch index without S1 (a cloudy/clear pair)
NAN_S1 = 1  # patch index whose S1 has NaNs


def _rel(kind: str, scene: int, patch: int, roi: str = ROI) -> str:
    return f"{roi}_{kind}/{kind}_{scene}/{roi}_{kind}_{scene}_p{patch}.tif"


def _fake_dataset(root: Path, n: int = 10) -> Path:
    """n fake patches in the release layout + index.csv; patches 8, 9 are 'val'."""
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        scene, patch = 136, 100 + i
        meta = RasterMeta(
            SIZE, SIZE, 1, "uint16", crs=CRS.from_epsg(32631),
            transform=from_origin(500000.5 + i * SIZE * 10, 5000000.25, 10.0, 10.0),
        )  # fmt: skip
        paths = {}
        for kind in KINDS:
            if kind == "s1" and i == NO_S1:
                continue
            if kind == "s1":
                arr = rng.normal(-15, 5, (2, SIZE, SIZE)).astype(np.float32)
                if i == NAN_S1:
                    arr[0, :3, :5] = np.nan
            else:
                arr = rng.integers(0, 12000, (13, SIZE, SIZE), dtype=np.uint16)
            write_raster(root / _rel(kind, scene, patch), arr, meta)
            paths[kind] = _rel(kind, scene, patch)
        rows.append(IndexRow(ROI, scene, patch, "val" if i >= 8 else "train", **paths))
    write_index(IndexResult(rows=rows, root=root, layout="release"), root / "index.csv")
    return root / "index.csv"


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    return _fake_dataset(tmp_path / "data")


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _arrays(out: Path) -> dict[str, np.ndarray]:
    return {p.name: np.load(p) for p in sorted(out.glob("shard-*.npy"))}


def test_pack_round_trip(fake: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    m = pack(fake, out, shard_size=4, workers=0)
    assert m["num_patches"] == 10 and m["num_skipped"] == 0 and m["complete"]
    assert [s["num_patches"] for s in m["shards"]] == [4, 4, 2]
    assert json.loads((out / "manifest.json").read_text())["shards"] == m["shards"]
    assert m["patch_shape"] == [SIZE, SIZE]
    assert m["mask"]["algorithm"] == "dsen2cr-csm"
    assert m["mask"]["params"] == json.loads(json.dumps(asdict(CSMParams())))
    assert m["mask"]["classes"] == {"0": "clear", "1": "cloud", "2": "shadow"}
    assert all(e["mask"] is True for e in m["shards"])
    assert m["counts"]["has_s1"] == 9 and m["counts"]["complete"] == 9
    assert m["counts"]["by_split"] == {"train": 8, "val": 2}
    assert m["source"]["require"] == ["s2", "s2_cloudy"] and m["source"]["num_selected"] == 10

    s2 = np.load(out / "shard-00001.s2.npy")
    assert s2.dtype == np.uint16 and s2.shape == (4, 13, SIZE, SIZE)
    s1 = np.load(out / "shard-00002.s1.npy")
    assert s1.dtype == np.float32 and s1.shape == (2, 2, SIZE, SIZE)
    mask = np.load(out / "shard-00000.mask.npy")
    assert mask.dtype == np.uint8 and mask.shape == (4, SIZE, SIZE)

    recs = _csv(out / "patches.csv")
    assert tuple(recs[0]) == PATCH_COLUMNS and len(recs) == 10
    index = read_index(fake)
    for rec, row in zip(recs, index.rows, strict=True):
        assert (rec["roi_season"], int(rec["scene"]), int(rec["patch"])) == (
            row.roi_season, row.scene, row.patch,
        )  # fmt: skip
        assert rec["split"] == row.split
        assert rec["has_s1"] == str(int(bool(row.s1)))
        k, off = int(rec["shard"]), int(rec["offset"])
        for kind in ("s2", "s2_cloudy", "s1"):
            stored = np.load(out / f"shard-{k:05d}.{kind}.npy", mmap_mode="r")[off]
            if not row.has(kind):
                assert not stored.any()  # missing kinds are zeros
                continue
            arr, meta = read_raster(index.resolve(row, kind))
            # bit-exact, NaNs included (compare the bytes)
            assert stored.tobytes() == arr.tobytes()
        cloudy, meta = read_raster(index.resolve(row, "s2_cloudy"))
        stored_mask = np.load(out / f"shard-{k:05d}.mask.npy", mmap_mode="r")[off]
        np.testing.assert_array_equal(stored_mask, cloud_shadow_mask(cloudy))
        assert rec["crs"] == meta.crs.to_wkt()
        assert tuple(float(v) for v in rec["transform"].split()) == tuple(meta.transform)[:6]
    assert np.isnan(np.load(out / "shard-00000.s1.npy")[NAN_S1]).sum() == 15


def test_pack_split_and_require(fake: Path, tmp_path: Path) -> None:
    m = pack(fake, tmp_path / "val", split="val", workers=0)
    assert m["num_patches"] == 2 and len(m["shards"]) == 1
    m = pack(fake, tmp_path / "sar", require=("s1", "s2", "s2_cloudy"), workers=0)
    assert m["num_patches"] == 9 and m["counts"]["has_s1"] == 9
    with pytest.raises(DataError, match="unknown kind"):
        pack(fake, tmp_path / "x", require=("s3",))
    with pytest.raises(DatasetNotFoundError, match="no patch of split 'test'"):
        pack(fake, tmp_path / "x", split="test", workers=0)


def test_pack_new_shard_at_each_season(tmp_path: Path) -> None:
    rows = [IndexRow("ROIs1158_spring", 1, p) for p in range(3)]
    rows += [IndexRow("ROIs1868_summer", 1, p) for p in range(2)]
    got = plan_shards(rows, 2)
    assert [(s.start, s.stop) for s in got] == [(0, 2), (2, 3), (3, 5)]


def test_pack_workers_match_inline(fake: Path, tmp_path: Path) -> None:
    pack(fake, tmp_path / "a", shard_size=4, workers=0)
    pack(fake, tmp_path / "b", shard_size=4, workers=2)
    a, b = _arrays(tmp_path / "a"), _arrays(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 12
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert (tmp_path / "a/patches.csv").read_text() == (tmp_path / "b/patches.csv").read_text()


def test_pack_resumes_after_crash(fake: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "packed"
    real_finish = pack_module._Packer.finish
    finished: list[int] = []

    def crash_after_first(self, run, progress):  # noqa: ANN001
        if finished:
            raise RuntimeError("simulated crash")
        finished.append(1)
        real_finish(self, run, progress)

    monkeypatch.setattr(pack_module._Packer, "finish", crash_after_first)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pack(fake, out, shard_size=4, workers=0)
    monkeypatch.undo()
    m = read_manifest(out, complete=False)
    assert not m["complete"] and [s["name"] for s in m["shards"]] == ["shard-00000"]
    # No temporary file (the lock file of the folder's writer stays: cloudfree.locks).
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".lock"]
    with pytest.raises(DataError, match="interrupted"):
        PackedDataset(out)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("shard-*")}
    assert len(before) == 4

    read: list[str] = []
    real_read = pack_sources.read_raster

    def counting_read(path, *a, **k):  # noqa: ANN001, ANN002, ANN003
        read.append(str(path))
        return real_read(path, *a, **k)

    monkeypatch.setattr(pack_sources, "read_raster", counting_read)
    m = pack(fake, out, shard_size=4, workers=0)
    monkeypatch.undo()
    assert m["complete"] and [s["num_patches"] for s in m["shards"]] == [4, 4, 2]
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("shard-00000.*")}
    assert after == before  # the finished shard was kept, not rewritten
    assert len(read) == 3 * 6  # only patches 4..9 were read again (3 files each)
    assert not any("_p100." in p or "_p103." in p for p in read)

    clean = tmp_path / "clean"
    c = pack(fake, clean, shard_size=4, workers=0)
    a, b = _arrays(out), _arrays(clean)
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert (out / "patches.csv").read_text() == (clean / "patches.csv").read_text()
    assert m["shards"] == c["shards"] and m["counts"] == c["counts"]
    # Re-running a complete pack reads nothing.
    monkeypatch.setattr(pack_sources, "read_raster", counting_read)
    read.clear()
    assert pack(fake, out, shard_size=4, workers=0)["num_patches"] == 10 and not read


def test_pack_refuses_other_pack_unless_overwrite(fake: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    pack(fake, out, workers=0)
    with pytest.raises(DataError, match="differs from this one in: split") as e:
        pack(fake, out, split="val", workers=0)
    assert "overwrite" in str(e.value)
    m = pack(fake, out, split="val", workers=0, overwrite=True)
    assert m["num_patches"] == 2 and read_manifest(out)["source"]["split"] == "val"
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "shard-00000.s2.npy").write_bytes(b"not ours")
    with pytest.raises(DataError, match="no manifest.json"):
        pack(fake, stray, workers=0)


def _break(fake: Path, what: str) -> str:
    """Damage patch 5 (p105); returns the damaged file's name."""
    root = fake.parent
    if what == "corrupt":
        path = root / _rel("s2", 136, 105)
        path.write_bytes(path.read_bytes()[:300])  # truncated
    elif what == "bands":
        path = root / _rel("s2_cloudy", 136, 105)
        arr, meta = read_raster(path)
        write_raster(path, arr[:12], meta)
    else:  # grid: S1 shifted by one pixel
        from rasterio.transform import from_origin

        path = root / _rel("s1", 136, 105)
        arr, meta = read_raster(path)
        moved = RasterMeta(SIZE, SIZE, 2, "float32", meta.crs, from_origin(0, 0, 10, 10))
        write_raster(path, arr, moved)
    return path.name


@pytest.mark.parametrize("what", ["corrupt", "bands", "grid"])
def test_bad_patch_skipped_or_strict(fake: Path, tmp_path: Path, what: str) -> None:
    name = _break(fake, what)
    with pytest.raises(DataError, match=name):
        pack(fake, tmp_path / "strict", shard_size=4, workers=0, strict=True)
    out = tmp_path / "packed"
    with pytest.warns(UserWarning, match=f"skipping patch {ROI}_136_p105: .*{name}"):
        m = pack(fake, out, shard_size=4, workers=0)
    assert m["num_patches"] == 9 and m["num_skipped"] == 1
    assert m["skipped"][0]["id"] == f"{ROI}_136_p105" and name in m["skipped"][0]["path"]
    assert [(s["num_patches"], s["num_slots"]) for s in m["shards"]] == [(4, 4), (3, 4), (2, 2)]
    recs = _csv(out / "patches.csv")
    assert [r["patch"] for r in recs] == [str(100 + i) for i in range(10) if i != 5]
    for kind in ("s2", "s2_cloudy", "s1"):  # the skipped slot is zeros, even kinds read fine
        assert not np.load(out / f"shard-00001.{kind}.npy")[1].any()
    assert len(PackedDataset(out, config=SampleConfig(include_sar=False))) == 9


def _tar(root: Path, kind: str) -> str:
    name = f"{ROI}_{kind}"
    with tarfile.open(root / f"{name}.tar.gz", "w:gz") as tf:
        tf.add(root / name, arcname=f"./{name}")  # "./" prefix: as some tar tools write
    return f"{name}.tar.gz"


def test_pack_streams_archives(fake: Path, tmp_path: Path) -> None:
    root = fake.parent
    plain = pack(fake, tmp_path / "plain", shard_size=4, workers=0)
    arch = {k: _tar(root, k) for k in KINDS}
    index = read_index(fake)
    rows = [
        IndexRow(r.roi_season, r.scene, r.patch, r.split,
                 **{k: f"{arch[k]}/{r.path(k)}" for k in r.kinds})
        for r in index.rows
    ]  # fmt: skip
    rows[7] = IndexRow(ROI, 136, 107, "train", s2=f"{arch['s2']}/nowhere.tif",
                       s2_cloudy=f"{arch['s2_cloudy']}/{_rel('s2_cloudy', 136, 107)}")  # fmt: skip
    write_index(IndexResult(rows=rows, root=root), tmp_path / "arch.csv")
    with pytest.warns(UserWarning, match="nowhere.tif: not found in the archive"):
        m = pack(tmp_path / "arch.csv", tmp_path / "arch", shard_size=4, workers=2)
    assert m["num_patches"] == 9 and m["skipped"][0]["id"] == f"{ROI}_136_p107"
    a, b = _arrays(tmp_path / "plain"), _arrays(tmp_path / "arch")
    assert a.keys() == b.keys()
    for k in a:
        if k.startswith("shard-00001.") and not k.endswith("mask.npy"):
            assert a[k][:3].tobytes() == b[k][:3].tobytes() and not b[k][3].any()
        elif k == "shard-00001.mask.npy":  # the skipped patch's mask slot is left unset
            assert a[k][:3].tobytes() == b[k][:3].tobytes() and (b[k][3] == 255).all()
        else:
            assert a[k].tobytes() == b[k].tobytes()
    assert plain["num_patches"] == 10


def test_pack_truncated_archive(fake: Path, tmp_path: Path) -> None:
    root = fake.parent
    arch = {k: _tar(root, k) for k in KINDS}
    path = root / arch["s2_cloudy"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    rows = [
        IndexRow(r.roi_season, r.scene, r.patch, r.split,
                 **{k: f"{arch[k]}/{r.path(k)}" for k in r.kinds})
        for r in read_index(fake).rows
    ]  # fmt: skip
    write_index(IndexResult(rows=rows, root=root), tmp_path / "arch.csv")
    with pytest.raises(DataError, match="unreadable from there on"):
        pack(tmp_path / "arch.csv", tmp_path / "strict", workers=0, strict=True)
    with pytest.warns(UserWarning, match="unreadable from there on"):
        m = pack(tmp_path / "arch.csv", tmp_path / "packed", workers=0)
    # Members before the damage are packed, the others skipped.
    assert 0 < m["num_patches"] < 10 and m["num_patches"] + m["num_skipped"] == 10


def _same_sample(x: dict, y: dict) -> None:
    assert x.keys() == y.keys()
    for k in x:
        if isinstance(x[k], torch.Tensor):
            assert x[k].dtype == y[k].dtype and torch.equal(x[k], y[k]), k
        else:
            assert x[k] == y[k], k


def test_cli_pack(fake: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "cli"
    assert main(["pack", str(fake), "--out", str(out)]) == 0
    assert "packed 10 patches into 1 shards" in capsys.readouterr().out
    assert read_manifest(out)["num_patches"] == 10
    assert main(["pack", str(fake), "--out", str(out), "--split", "val"]) == 1
    assert "differs" in capsys.readouterr().err


def test_pack_real_sen12mscr(sen12mscr_root: Path, tmp_path: Path) -> None:
    from cloudfree.data.release.discover import build_index

    index = build_index(sen12mscr_root)
    write_index(index, tmp_path / "index.csv")
    pairs = index.select(None, ("s2", "s2_cloudy"))
    assert len(pairs) == 27  # 1 complete triplet + 26 cloudy/clear pairs (shared/data README)
    m = pack(tmp_path / "index.csv", tmp_path / "packed", workers=0)
    assert m["num_patches"] == 27 and m["num_skipped"] == 0 and m["patch_shape"] == [256, 256]
    assert m["counts"]["has_s1"] == 1 and m["counts"]["complete"] == 1
    # One shard per release season present: spring, summer, fall, winter.
    assert [s["num_patches"] for s in m["shards"]] == [
        sum(r.roi_season == season for r in pairs)
        for season in dict.fromkeys(r.roi_season for r in pairs)
    ]
    triplet = PackedDataset(tmp_path / "packed", config=SampleConfig(mode="eval", crop_size=None))
    assert len(triplet) == 1 and triplet[0]["id"] == "ROIs2017_winter_112_p797"
    p = triplet.patches[0]
    for kind in ("s1", "s2", "s2_cloudy"):
        row = next(r for r in pairs if r.id == p.id)
        arr, _ = read_raster(index.resolve(row, kind))
        stored = np.load(tmp_path / "packed" / f"shard-{p.shard:05d}.{kind}.npy", mmap_mode="r")
        assert stored[p.offset].tobytes() == arr.tobytes()
    files = SEN12MSCR(tmp_path / "index.csv", config=SampleConfig(include_sar=False))
    packed = PackedDataset(tmp_path / "packed", config=SampleConfig(include_sar=False))
    for i in (0, 13, 26):
        _same_sample(packed[i], files[i])
    assert os.path.getsize(tmp_path / "packed" / "shard-00000.s2.npy") == 128 + 3 * 13 * 256**2 * 2


def test_pack_no_mask_then_fill(fake: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    out = tmp_path / "nomask"
    assert main(["pack", str(fake), "--out", str(out), "--shard-size", "4", "--no-mask"]) == 0
    m = read_manifest(out)
    assert m["mask"] is None and all(e["mask"] is False for e in m["shards"])
    assert all((np.load(p) == 255).all() for p in out.glob("shard-*.mask.npy"))
    with pytest.raises(DataError, match="no cloud masks.*without --no-mask"):
        PackedDataset(out, config=SampleConfig(include_sar=False, crop_size=16, mask="cached"))
    crop = PackedDataset(out, config=SampleConfig(include_sar=False, crop_size=16, mask="crop"))
    assert crop[0]["mask"].dtype == torch.uint8
    # Re-running with masks keeps the shards (not re-read) and fills their masks.
    calls = []
    real_read = pack_sources.read_raster

    def counting(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls.append(a)
        return real_read(*a, **k)

    monkeypatch.setattr(pack_sources, "read_raster", counting)
    m = pack(fake, out, shard_size=4, workers=0)
    monkeypatch.undo()
    assert calls == [] and m["mask"]["algorithm"] == "dsen2cr-csm"
    assert read_manifest(out)["mask"] == m["mask"]
    ref = tmp_path / "ref"
    pack(fake, ref, shard_size=4, workers=0)
    for p in sorted(ref.glob("shard-*.mask.npy")):
        np.testing.assert_array_equal(np.load(out / p.name), np.load(p))
    assert PackedDataset(out, config=SampleConfig(include_sar=False, crop_size=16, mask="cached"))[
        0
    ]["mask"].shape


def test_skipped_patch_mask_slot_stays_unset(fake: Path, tmp_path: Path) -> None:
    _break(fake, "corrupt")  # the clear S2 of p105: its cloudy file (and mask) read fine
    with pytest.warns(UserWarning, match="skipping patch"):
        m = pack(fake, tmp_path / "packed", workers=0)
    assert m["num_skipped"] == 1
    bad = m["skipped"][0]["position"]
    mask = np.load(tmp_path / "packed" / "shard-00000.mask.npy")
    assert (mask[bad] == 255).all()
    listed = [int(r["offset"]) for r in _csv(tmp_path / "packed" / "patches.csv")]
    assert bad not in listed and not (mask[listed] == 255).any()
