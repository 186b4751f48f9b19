"""Tests for cloudfree.train.sampler.ResumableDistributedSampler."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from cloudfree.train.sampler import ResumableDistributedSampler, ShardSampler


def _torch_indices(
    n: int, replicas: int, rank: int, epoch: int, shuffle: bool, seed: int, drop_last: bool
) -> list[int]:
    ref = DistributedSampler(
        range(n),  # type: ignore[arg-type]
        num_replicas=replicas,
        rank=rank,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
    )
    ref.set_epoch(epoch)
    return list(ref)


@pytest.mark.parametrize("n", [1, 7, 10, 13])
@pytest.mark.parametrize("replicas", [1, 3, 4])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [True, False])
def test_matches_torch_distributed_sampler(
    n: int, replicas: int, shuffle: bool, drop_last: bool
) -> None:
    for epoch in (0, 3):
        for rank in range(replicas):
            ours = ResumableDistributedSampler(
                n, replicas, rank, shuffle=shuffle, seed=5, drop_last=drop_last
            )
            ours.set_epoch(epoch)
            expected = _torch_indices(n, replicas, rank, epoch, shuffle, 5, drop_last)
            assert list(ours) == expected
            assert len(ours) == len(expected)


def test_ranks_cover_dataset_disjointly_with_padding() -> None:
    n, replicas = 10, 4  # 10 samples -> 3 per rank, 2 padded from the permutation's start
    samplers = [ResumableDistributedSampler(n, replicas, r, seed=1) for r in range(replicas)]
    shards = [list(s) for s in samplers]
    assert all(len(s) == 3 for s in shards)
    flat = [i for s in shards for i in s]
    assert sorted(set(flat)) == list(range(n))  # every sample seen
    # Interleaving the shards gives back the padded permutation: first 10 are distinct,
    # the last 2 repeat its first 2.
    perm = [shards[j % replicas][j // replicas] for j in range(12)]
    assert len(set(perm[:10])) == 10
    assert perm[10:] == perm[:2]


def test_drop_last_gives_disjoint_equal_shards() -> None:
    n, replicas = 10, 4  # 10 -> 2 per rank, 2 samples dropped
    shards = [list(ResumableDistributedSampler(n, replicas, r, drop_last=True)) for r in range(4)]
    flat = [i for s in shards for i in s]
    assert all(len(s) == 2 for s in shards)
    assert len(set(flat)) == 8 and set(flat) <= set(range(n))


def test_same_permutation_across_ranks_and_epochs_differ() -> None:
    a = ResumableDistributedSampler(12, 2, 0, seed=3)
    b = ResumableDistributedSampler(12, 2, 1, seed=3)
    g = torch.Generator().manual_seed(3 + 0)  # the documented seeding rule, independently
    perm = torch.randperm(12, generator=g).tolist()
    assert list(a) == perm[0::2] and list(b) == perm[1::2]
    e0 = a.epoch_indices(0)
    a.set_epoch(1)
    assert list(a) != e0 and sorted(list(a) + list(b.epoch_indices(1))) == list(range(12))
    # The seed matters too.
    assert ResumableDistributedSampler(12, 1, 0, seed=4).epoch_indices(0) != perm


def test_resume_mid_epoch_yields_exactly_the_remaining_indices() -> None:
    n, replicas, bs = 23, 2, 3
    for rank in range(replicas):
        full = ResumableDistributedSampler(n, replicas, rank, seed=9)
        full.set_epoch(2)
        everything = list(full)
        run = ResumableDistributedSampler(n, replicas, rank, seed=9)
        run.set_epoch(2)
        consumed: list[int] = []
        for batch in DataLoader(range(n), batch_size=bs, sampler=run):  # type: ignore[arg-type]
            consumed += batch.tolist()
            run.advance(len(batch))
            if len(consumed) >= 2 * bs:
                break
        state = run.state_dict()
        assert state["epoch"] == 2 and state["position"] == 2 * bs

        resumed = ResumableDistributedSampler(n, replicas, rank, seed=9)
        resumed.load_state_dict(state)
        resumed.set_epoch(2)  # the loop calls it as usual: must keep the position
        rest = list(resumed)
        assert len(resumed) == len(everything) - 2 * bs
        assert consumed + rest == everything
        # The next epoch starts from its beginning.
        resumed.set_epoch(3)
        assert resumed.position == 0 and list(resumed) == full.epoch_indices(3)


def test_prefetch_does_not_move_position() -> None:
    s = ResumableDistributedSampler(8, 1, 0)
    it = iter(s)
    taken = [next(it) for _ in range(5)]  # e.g. DataLoader workers prefetching
    s.advance(2)  # but only one batch of 2 was trained on
    resumed = ResumableDistributedSampler(8, 1, 0)
    resumed.load_state_dict(s.state_dict())
    assert next(iter(resumed)) == taken[2]


def test_advance_past_end_and_bad_args_raise() -> None:
    s = ResumableDistributedSampler(5, 2, 1)  # 3 per rank
    s.advance(3)
    assert s.epoch_done and list(s) == [] and len(s) == 0
    with pytest.raises(ValueError, match="passes the end of the epoch"):
        s.advance(1)
    with pytest.raises(ValueError, match="advance needs"):
        s.advance(-1)
    with pytest.raises(ValueError, match="rank"):
        ResumableDistributedSampler(5, 2, 2)
    with pytest.raises(ValueError, match="dataset_len"):
        ResumableDistributedSampler(0)
    with pytest.raises(ValueError, match="lacks"):
        s.load_state_dict({"epoch": 1})


def test_world_size_change_allowed_only_at_epoch_boundaries() -> None:
    two = ResumableDistributedSampler(10, 2, 0)
    two.set_epoch(4)
    two.advance(5)  # epoch finished with 2 processes
    four = ResumableDistributedSampler(10, 4, 3)
    four.load_state_dict(two.state_dict())
    assert four.epoch == 4 and four.epoch_done
    start = ResumableDistributedSampler(10, 4, 0)
    start.load_state_dict({"epoch": 2, "position": 0, "num_replicas": 2, "dataset_len": 10})
    assert start.epoch == 2 and len(start) == 3
    mid = {"epoch": 2, "position": 2, "num_replicas": 2, "dataset_len": 10}
    with pytest.raises(ValueError, match="same number of processes"):
        ResumableDistributedSampler(10, 4, 0).load_state_dict(mid)
    with pytest.raises(ValueError, match="outside"):
        ResumableDistributedSampler(10, 2, 0).load_state_dict({"epoch": 0, "position": 6})


@pytest.mark.parametrize(("n", "replicas"), [(0, 2), (1, 3), (5, 2), (7, 3), (8, 4)])
def test_shard_sampler_visits_every_index_once(n: int, replicas: int) -> None:
    shards = [list(ShardSampler(n, replicas, r)) for r in range(replicas)]
    assert sorted(i for s in shards for i in s) == list(range(n))  # no padding, no repeats
    assert [len(ShardSampler(n, replicas, r)) for r in range(replicas)] == [len(s) for s in shards]
    # e.g. 5 over 2 ranks: [0, 2, 4] and [1, 3]; torch's sampler would pad rank 1 with 0.
    assert shards[0] == list(range(0, n, replicas))


def test_shard_sampler_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rank"):
        ShardSampler(5, 2, 2)
    with pytest.raises(ValueError, match="dataset_len"):
        ShardSampler(-1, 2, 0)
    with pytest.raises(ValueError, match="num_replicas"):
        ShardSampler(5, 0, 0)
