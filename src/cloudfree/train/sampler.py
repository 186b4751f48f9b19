"""A distributed sampler that can resume in the middle of an epoch.

The index lists are exactly those of :class:`torch.utils.data.DistributedSampler` for the same
``seed``, ``epoch``, ``num_replicas``, ``rank``, ``shuffle`` and ``drop_last`` (permutation from
``torch.randperm`` with a generator seeded ``seed + epoch``; padding by repeating the start of
the list, or dropping the tail, so every rank gets the same count; rank ``r`` takes
``r::num_replicas``), so runs can be compared with plain PyTorch code.

On top of that it keeps a *position*: how many of this epoch's samples (per rank) the training
loop has consumed. **The loop must call** :meth:`ResumableDistributedSampler.advance` with the
number of samples of each step it completed (``advance(len(batch))``); the sampler does not
count what it yields, because a DataLoader with workers prefetches batches that were never
trained on, and counting them would skip data after a resume. After :meth:`load_state_dict`
iteration starts with the first sample that was not consumed.

Every rank consumes the same number of samples per step, so the position is the same on every
rank and a checkpoint written by rank 0 resumes all ranks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import Sampler


def _num_samples(dataset_len: int, num_replicas: int, drop_last: bool) -> int:
    """Samples per rank and epoch: the arithmetic of torch's DistributedSampler."""
    if drop_last and dataset_len % num_replicas != 0:
        return math.ceil((dataset_len - num_replicas) / num_replicas)
    return math.ceil(dataset_len / num_replicas)


class ResumableDistributedSampler(Sampler[int]):
    """Shard of an epoch-seeded permutation, with a resumable position.

    Args:
        dataset_len: number of samples in the dataset (>= 1).
        num_replicas: number of processes (world size).
        rank: this process's rank in ``[0, num_replicas)``.
        shuffle: permute each epoch (training); ``False`` keeps ``0..dataset_len-1`` in order.
        seed: base seed; epoch ``e`` uses ``seed + e`` (the same on every rank).
        drop_last: drop the tail so the count divides evenly instead of padding it with
            indices repeated from the start of the permutation.

    Example:
        >>> sampler = ResumableDistributedSampler(len(ds), world, rank)
        >>> for epoch in range(start_epoch, epochs):
        ...     sampler.set_epoch(epoch)  # keeps a resumed position of the same epoch
        ...     for batch in DataLoader(ds, batch_size=bs, sampler=sampler):
        ...         train_step(batch)
        ...         sampler.advance(bs)  # what was consumed, not what was prefetched
    """

    def __init__(
        self,
        dataset_len: int,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 42,
        drop_last: bool = False,
    ) -> None:
        if not isinstance(dataset_len, int) or dataset_len < 1:
            raise ValueError(f"dataset_len must be an int >= 1, got {dataset_len!r}")
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"num_replicas must be an int >= 1, got {num_replicas!r}")
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be an int in [0, {num_replicas}), got {rank!r}")
        self.dataset_len = dataset_len
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.num_samples = _num_samples(dataset_len, num_replicas, drop_last)
        self.total_size = self.num_samples * num_replicas
        self.epoch = 0
        self.position = 0

    def epoch_indices(self, epoch: int | None = None) -> list[int]:
        """All of this rank's indices for ``epoch`` (default: the current one), ignoring position.

        Returns:
            ``num_samples`` dataset indices in iteration order.
        """
        epoch = self.epoch if epoch is None else epoch
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + epoch)
            indices = torch.randperm(self.dataset_len, generator=g).tolist()
        else:
            indices = list(range(self.dataset_len))
        if not self.drop_last:
            pad = self.total_size - len(indices)
            indices += (indices * math.ceil(pad / len(indices)))[:pad]
        else:
            indices = indices[: self.total_size]
        return indices[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        """Yield this rank's indices of the current epoch from the current position on."""
        return iter(self.epoch_indices()[self.position :])

    def __len__(self) -> int:
        """Number of indices the next ``__iter__`` yields (the rest of the epoch)."""
        return self.num_samples - self.position

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; the position restarts at 0 unless ``epoch`` is the current one.

        Keeping the position for the same epoch is what lets the loop call ``set_epoch`` as
        usual right after :meth:`load_state_dict` restored a mid-epoch position.
        """
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        if epoch != self.epoch:
            self.epoch = epoch
            self.position = 0

    def advance(self, n: int) -> None:
        """Record that ``n`` more samples of this epoch (on this rank) were trained on.

        Raises:
            ValueError: ``n`` is negative or goes past the end of the epoch.
        """
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"advance needs an int >= 0, got {n!r}")
        if self.position + n > self.num_samples:
            raise ValueError(
                f"advance({n}) from position {self.position} passes the end of the epoch "
                f"({self.num_samples} samples per rank); pass the size of the batch trained on"
            )
        self.position += n

    @property
    def epoch_done(self) -> bool:
        """Whether every sample of the current epoch was consumed."""
        return self.position >= self.num_samples

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "position", "num_replicas", "dataset_len"}``, for a checkpoint."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "num_replicas": self.num_replicas,
            "dataset_len": self.dataset_len,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore epoch and position from :meth:`state_dict`.

        A position at the start or the end of an epoch carries over to another world size;
        a mid-epoch position needs the same number of processes and the same dataset.

        Raises:
            ValueError: missing keys, or a mid-epoch state from a different world size or
                dataset length.
        """
        missing = [k for k in ("epoch", "position") if k not in state]
        if missing:
            raise ValueError(f"sampler state lacks {missing}; got keys {sorted(state)}")
        epoch, position = int(state["epoch"]), int(state["position"])
        old_replicas = int(state.get("num_replicas", self.num_replicas))
        old_len = int(state.get("dataset_len", self.dataset_len))
        if old_replicas == self.num_replicas and old_len == self.dataset_len:
            if not 0 <= position <= self.num_samples:
                raise ValueError(
                    f"sampler position {position} outside [0, {self.num_samples}] for this epoch"
                )
        elif position == 0:
            pass
        elif position >= _num_samples(old_len, old_replicas, self.drop_last):
            # Finished epoch: finished under the new world size too.
            position = self.num_samples
        else:
            raise ValueError(
                f"cannot resume mid-epoch (position {position} of epoch {epoch}) saved with "
                f"{old_replicas} processes and {old_len} samples in a job with "
                f"{self.num_replicas} processes and {self.dataset_len} samples; resume with the "
                "same number of processes and data, or from a checkpoint at an epoch end"
            )
        self.epoch, self.position = epoch, position


class ShardSampler(Sampler[int]):
    """This rank's unpadded, in-order shard ``range(rank, dataset_len, num_replicas)``.

    For validation: unlike :class:`ResumableDistributedSampler` (and torch's
    ``DistributedSampler`` with ``drop_last=False``) it does not pad the last shard with
    repeated indices, so over all ranks every sample is visited exactly once. The shards may
    differ in length by one (a rank may get none when ``dataset_len < num_replicas``); that is
    fine wherever the ranks reduce sums and counts rather than per-rank means, as
    :func:`cloudfree.train.validate.validate` does.

    Args:
        dataset_len: number of samples in the dataset (>= 0).
        num_replicas: number of processes (world size, >= 1).
        rank: this process's rank in ``[0, num_replicas)``.
    """

    def __init__(self, dataset_len: int, num_replicas: int = 1, rank: int = 0) -> None:
        if not isinstance(dataset_len, int) or dataset_len < 0:
            raise ValueError(f"dataset_len must be an int >= 0, got {dataset_len!r}")
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"num_replicas must be an int >= 1, got {num_replicas!r}")
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be an int in [0, {num_replicas}), got {rank!r}")
        self.indices = range(rank, dataset_len, num_replicas)

    def __iter__(self) -> Iterator[int]:
        """Yield this rank's indices in increasing order."""
        return iter(self.indices)

    def __len__(self) -> int:
        """Number of indices of this rank's shard."""
        return len(self.indices)
