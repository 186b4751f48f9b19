"""Tests of the cached cloud masks: MaskCache beside an index, SampleConfig(mask=...), packs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import cloudfree.masks.csm as csm
from cloudfree.bands import DSEN2CR
from cloudfree.data.packed.dataset import PackedDataset
from cloudfree.data.packed.pack import pack
from cloudfree.data.preprocess import normalize_s2
from cloudfree.data.release.dataset import SEN12MSCR
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import read_index, write_index
from cloudfree.data.release.mask_cache import MaskCache
from cloudfree.data.sample import SampleConfig
from cloudfree.data.synthetic.release import synthesize
from cloudfree.errors import DataError
from cloudfree.io import read_raster
from cloudfree.masks import cloud_shadow_mask

SIZE = 64
CROP = 32


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 synthetic 64x64 triplets with clouds and their index (module-wide: read only)."""
    root = tmp_path_factory.mktemp("synth")
    synthesize(root / "data", n=6, seed=3, size=SIZE)
    write_index(build_index(root / "data"), root / "index.csv")
    return root


@pytest.fixture
def index(data: Path, tmp_path: Path) -> Path:
    """A private copy of the index (its cache lives beside it), same dataset root."""
    result = read_index(data / "index.csv")
    write_index(result, tmp_path / "index.csv")
    return tmp_path / "index.csv"


def _full(ds: SEN12MSCR, i: int) -> np.ndarray:
    arr, _ = read_raster(ds.index.resolve(ds.rows[i], "s2_cloudy"))
    return arr


def _aug(a: np.ndarray, sample: dict) -> np.ndarray:
    """Independent flip-then-rot90 of the last two axes, as the sample records it."""
    flip, k = (int(v) for v in sample["aug"])
    if flip == 1:
        a = a[..., ::-1, :]
    elif flip == 2:
        a = a[..., :, ::-1]
    return np.rot90(a, k, axes=(-2, -1))


def _cfg(mask: str, **kw: object) -> SampleConfig:
    return SampleConfig(crop_size=CROP, include_sar=False, mask=mask, **kw)  # type: ignore[arg-type]


def test_mask_mode_validated() -> None:
    assert SampleConfig().mask == "none"
    with pytest.raises(ValueError, match="unknown mask mode 'full'"):
        SampleConfig(mask="full")


def test_cached_mask_is_full_patch_mask_cropped_and_augmented(index: Path) -> None:
    ds = SEN12MSCR(index, config=_cfg("cached"), patch_size=SIZE)
    assert (index.parent / "index.masks.npy").is_file()
    assert "mask" not in SEN12MSCR(index, config=_cfg("none"), patch_size=SIZE)[0]
    seen_aug = set()
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            s = ds[i]
            full = _full(ds, i)
            r, c, h, w = (int(v) for v in s["window"])
            expected = _aug(cloud_shadow_mask(full)[r : r + h, c : c + w], s)
            assert s["mask"].dtype == torch.uint8
            np.testing.assert_array_equal(s["mask"].numpy(), expected)
            # The images went through the very same window and augmentation.
            img = _aug(normalize_s2(full[:, r : r + h, c : c + w], DSEN2CR), s)
            np.testing.assert_array_equal(s["s2_cloudy"].numpy(), img)
            seen_aug.add(tuple(int(v) for v in s["aug"]))
    assert len(seen_aug) > 2  # flips and rotations were exercised
    assert any(cloud_shadow_mask(_full(ds, i)).any() for i in range(len(ds)))  # some cloud


def test_crop_mode_is_mask_of_raw_crop(index: Path) -> None:
    ds = SEN12MSCR(index, config=_cfg("crop"), patch_size=SIZE)
    assert not (index.parent / "index.masks.npy").exists()  # no cache in crop mode
    differs = 0
    for i in range(len(ds)):
        s = ds[i]
        full = _full(ds, i)
        r, c, h, w = (int(v) for v in s["window"])
        expected = _aug(cloud_shadow_mask(full[:, r : r + h, c : c + w]), s)
        np.testing.assert_array_equal(s["mask"].numpy(), expected)
        differs += not np.array_equal(
            expected, _aug(cloud_shadow_mask(full)[r : r + h, c : c + w], s)
        )
    assert differs > 0  # the crop's own thresholds / borders do change some masks


def test_cache_computed_once(index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = csm.cloud_shadow_mask

    def counting(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(csm, "cloud_shadow_mask", counting)
    ds = SEN12MSCR(index, config=_cfg("cached"), patch_size=SIZE)
    first = [ds[i]["mask"] for i in range(len(ds))]
    assert len(calls) == len(ds)
    ds.set_epoch(1)
    [ds[i] for i in range(len(ds))]
    again = SEN12MSCR(index, config=_cfg("cached"), patch_size=SIZE)  # reopens the file
    assert all(torch.equal(again[i]["mask"], first[i]) for i in range(len(ds)))
    assert len(calls) == len(ds)  # never recomputed
    cache = MaskCache(index, patch_size=SIZE)
    assert cache.precompute() == 0 and all(cache.is_computed(i) for i in range(len(cache)))


def test_cache_survives_dataloader_workers(index: Path) -> None:
    ds = SEN12MSCR(index, config=_cfg("cached"), patch_size=SIZE)
    loader = DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert sum(len(b["id"]) for b in batches) == len(ds)
    stored = np.load(index.parent / "index.masks.npy")
    for i, row in enumerate(ds.index.rows):
        arr, _ = read_raster(ds.index.resolve(row, "s2_cloudy"))
        np.testing.assert_array_equal(stored[i], cloud_shadow_mask(arr))


def test_precompute_with_workers(index: Path) -> None:
    cache = MaskCache(index, patch_size=SIZE)
    assert not cache.is_computed(0)
    assert cache.precompute(workers=2) == len(cache)
    stored = np.load(cache.path)
    for i, row in enumerate(cache.rows):
        arr, _ = read_raster(cache.index.resolve(row, "s2_cloudy"))
        np.testing.assert_array_equal(stored[i], cloud_shadow_mask(arr))


def test_stale_cache_rebuilt(index: Path) -> None:
    cache = MaskCache(index, patch_size=SIZE)
    cache.precompute()
    assert cache.record["num_rows"] == len(cache) == 6
    # The index changes (a row dropped): the cache is stale and rebuilt, not reused.
    result = read_index(index)
    write_index(type(result)(rows=result.rows[1:], root=result.root), index)
    with pytest.warns(UserWarning, match="stale"):
        new = MaskCache(index, patch_size=SIZE)
    assert np.load(new.path).shape == (5, SIZE, SIZE) and not new.is_computed(0)
    new.precompute()
    # A record of other CSM parameters is stale too.
    rec = json.loads(new.record_path.read_text())
    rec["params"]["cloud_threshold"] = 0.3
    new.record_path.write_text(json.dumps(rec))
    with pytest.warns(UserWarning, match="stale"):
        assert not MaskCache(index, patch_size=SIZE).is_computed(0)


def test_in_memory_index_needs_cache_path(index: Path, tmp_path: Path) -> None:
    result = read_index(index)
    with pytest.raises(DataError, match="explicit cache path"):
        SEN12MSCR(result, config=_cfg("cached"), patch_size=SIZE)
    ds = SEN12MSCR(
        result, config=_cfg("cached"), patch_size=SIZE, mask_cache=tmp_path / "m.masks.npy"
    )
    full = cloud_shadow_mask(_full(ds, 0))
    s = ds[0]
    r, c, h, w = (int(v) for v in s["window"])
    np.testing.assert_array_equal(s["mask"].numpy(), _aug(full[r : r + h, c : c + w], s))
    assert (tmp_path / "m.masks.json").is_file()


def test_packed_and_per_file_masks_identical(index: Path, tmp_path: Path) -> None:
    pack(index, tmp_path / "packed", workers=0)
    for mode in ("cached", "crop"):
        files = SEN12MSCR(index, config=_cfg(mode), patch_size=SIZE)
        packed = PackedDataset(tmp_path / "packed", config=_cfg(mode))
        assert len(files) == len(packed)
        for epoch in (0, 1):
            files.set_epoch(epoch)
            packed.set_epoch(epoch)
            for i in range(len(files)):
                a, b = files[i], packed[i]
                assert a["id"] == b["id"] and torch.equal(a["mask"], b["mask"])
                assert torch.equal(a["s2_cloudy"], b["s2_cloudy"])


def test_real_patch_cached_mask(sen12mscr_root: Path, tmp_path: Path) -> None:
    write_index(build_index(sen12mscr_root), tmp_path / "index.csv")
    ds = SEN12MSCR(tmp_path / "index.csv", config=SampleConfig(include_sar=False, mask="cached"))
    s = ds[0]
    full = cloud_shadow_mask(_full(ds, 0))
    assert full.shape == (256, 256)
    r, c, h, w = (int(v) for v in s["window"])
    np.testing.assert_array_equal(s["mask"].numpy(), _aug(full[r : r + h, c : c + w], s))
    stored = np.load(tmp_path / "index.masks.npy", mmap_mode="r")
    assert stored.shape[1:] == (256, 256)
    np.testing.assert_array_equal(stored[ds.index.rows.index(ds.rows[0])], full)
