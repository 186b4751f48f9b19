"""Tests of cloudfree.data.packed.shards: reading packed shards as PackedDataset samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from cloudfree.data.packed.dataset import PackedDataset
from cloudfree.data.packed.pack import pack
from cloudfree.data.release.dataset import SEN12MSCR
from cloudfree.data.sample import SampleConfig

# The fake release (and the sample comparison) are shared with the pack tests.
from .test_pack import SIZE, _fake_dataset, _same_sample


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    return _fake_dataset(tmp_path / "data")


@pytest.mark.parametrize(
    "cfg",
    [
        SampleConfig(crop_size=16),
        SampleConfig(crop_size=16, include_sar=False, scaling="reflectance"),
        SampleConfig(mode="eval", crop_size=None),
    ],
)
def test_packed_dataset_equals_geotiff_dataset(fake: Path, tmp_path: Path, cfg) -> None:  # noqa: ANN001
    out = tmp_path / "packed"
    pack(fake, out, shard_size=4, workers=0)
    for split in (None, "train"):
        packed = PackedDataset(out, split=split, config=cfg, seed=7)
        files = SEN12MSCR(fake, split=split, config=cfg, seed=7, patch_size=SIZE)
        assert len(packed) == len(files) == (9 if cfg.include_sar else 10) - 2 * (split == "train")
        for epoch in (0, 3):
            packed.set_epoch(epoch)
            files.set_epoch(epoch)
            for i in range(len(packed)):
                _same_sample(packed[i], files[i])
    sample = packed[0]
    assert sample["s2"].shape == (13, cfg.crop_size or SIZE, cfg.crop_size or SIZE)
    assert "mask" not in sample  # the manifest says no mask was computed
    with pytest.raises(IndexError):
        packed[len(packed)]


def test_dataloader_workers_and_distributed_sampler(fake: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    pack(fake, out, shard_size=4, workers=0)
    ds = PackedDataset(out, config=SampleConfig(crop_size=16, include_sar=False))
    assert len(ds) == 10
    ds[0]  # open some maps: they must not travel to the workers
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert [b["s2"].shape[0] for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b["s2_cloudy"] for b in batches])[5], ds[5]["s2_cloudy"])
    assert sum((b["id"] for b in batches), []) == [ds.patches[i].id for i in range(10)]

    ranks = []
    for r in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=0)
        sampler.set_epoch(1)
        ranks.append(list(sampler))
    assert not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == list(range(len(ds)))
    assert {ds[i]["id"] for i in ranks[0]}.isdisjoint(ds[i]["id"] for i in ranks[1])


def test_bad_slot_is_skipped_unless_strict(tmp_path):
    """A mask slot left at 255 in a pack that records masks: None + warning, or DataError."""
    import numpy as np
    import pytest

    from cloudfree.data.packed.dataset import PackedDataset
    from cloudfree.data.packed.pack import pack
    from cloudfree.data.packed.shards import read_manifest
    from cloudfree.data.release.discover import build_index
    from cloudfree.data.release.index import write_index
    from cloudfree.data.sample import SampleConfig
    from cloudfree.data.synthetic.release import synthesize
    from cloudfree.errors import DataError

    synthesize(tmp_path / "d", n=4, seed=0, size=64)
    write_index(build_index(tmp_path / "d"), tmp_path / "index.csv")
    pack(tmp_path / "index.csv", tmp_path / "p", workers=0)
    shard = read_manifest(tmp_path / "p")["shards"][0]
    masks = np.load(tmp_path / "p" / shard["files"]["mask"], mmap_mode="r+")
    masks[0] = 255  # as if the mask of the first packed patch were never written
    masks.flush()
    cfg = SampleConfig(mode="eval", crop_size=None, mask="cached")
    ds = PackedDataset(tmp_path / "p", config=cfg)
    with pytest.warns(UserWarning, match="skipping bad patch"):
        assert ds[0] is None
    assert ds[1] is not None
    with pytest.raises(DataError, match="no computed cloud mask"):
        PackedDataset(tmp_path / "p", config=cfg, strict=True)[0]
