"""What the two datasets share: the per-file SEN12MS-CR dataset and the packed one.

:class:`PatchDataset` holds the sampling state (config, seed, epoch), the kinds of file an
item reads, the per-item plan of its window and augmentation, and the bad-patch policy, so
that :class:`~cloudfree.data.release.dataset.SEN12MSCR` and
:class:`~cloudfree.data.packed.dataset.PackedDataset` differ only in where they read the raw
arrays from; both then build the sample with :func:`cloudfree.data.sample.make_sample`, and for
the same patches, config, seed and epoch return the same tensors.
"""

from __future__ import annotations

import abc
from typing import Any

from torch.utils.data import Dataset

from cloudfree.data.collate import load_or_skip
from cloudfree.data.sample import SampleConfig, SamplePlan, plan_sample, sample_rng


def sample_kinds(config: SampleConfig, require_target: bool) -> tuple[str, ...]:
    """The kinds of file an item reads: the cloudy S2, the target unless prediction-only, S1
    when the config includes SAR."""
    return (
        ("s2_cloudy",)
        + (("s2",) if require_target else ())
        + (("s1",) if config.include_sar else ())
    )


class PatchDataset(Dataset, abc.ABC):
    """Base of the patch datasets: item ``i`` of epoch ``e`` draws from ``sample_rng(seed, e, i)``.

    Subclasses call :meth:`_init_sampling`, and define ``__len__``, :meth:`_item_id` and
    :meth:`_load` (the sample of item ``i``, raising :class:`~cloudfree.errors.DataError` for a
    bad patch).

    Epochs: call :meth:`set_epoch` before each epoch to redraw crops and augmentations (as
    upstream's ``on_epoch_end``). DataLoader workers get a copy of the dataset when an epoch's
    iterator starts, so this works unless ``persistent_workers=True``.
    """

    config: SampleConfig
    seed: int
    epoch: int
    strict: bool
    patch_size: int | None
    kinds: tuple[str, ...]
    #: The split the dataset serves (None: every patch).
    split: str | None
    #: Patches of the split that are not items, by reason (:func:`left_out`): e.g. the patches
    #: without S1 when the model takes SAR (:mod:`cloudfree.data.left_out`). Reported by
    #: training and evaluation.
    left_out: dict[str, int]
    #: The message of the first bad patch this process skipped (None: none yet), for a
    #: summary that says why patches were skipped (the count comes from the collate).
    first_bad: str | None

    def _init_sampling(
        self,
        config: SampleConfig,
        seed: int,
        require_target: bool,
        strict: bool,
        patch_size: int | None,
    ) -> None:
        self.config, self.seed, self.epoch = config, int(seed), 0
        self.require_target, self.strict, self.patch_size = require_target, strict, patch_size
        self.kinds = sample_kinds(config, require_target)
        self.left_out = {}
        self.first_bad = None

    def usable_hint(self) -> str:
        """What would make patches usable, in the user's terms (flags and config keys, not
        Python arguments), for the error of a split without any usable patch."""
        hints = []
        if self.config.include_sar:
            hints.append(
                "a no-SAR model for the cloudy/clear pairs without S1 (to train: "
                "model.name=dsen2cr-nosar; to evaluate: a no-SAR --checkpoint)"
            )
        if self.require_target:
            hints.append(
                "patches with their cloud-free target, which training and evaluation compare "
                "against ('cloudfree predict' needs none)"
            )
        if self.split:
            hints.append(
                f"another split than {self.split!r} ('evaluate --split', data.train_split, "
                "data.val_split)"
            )
        return "; or ".join(hints)

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def _item_id(self, index: int) -> str:
        """The patch id of item ``index`` (for the bad-patch warning)."""

    @abc.abstractmethod
    def _load(self, index: int) -> dict[str, Any]:
        """The sample of item ``index`` (0 <= index < len)."""

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops and augmentations items draw (reproducible per epoch)."""
        self.epoch = int(epoch)

    def plan(self, index: int, size: int | None = None) -> SamplePlan:
        """The window and augmentation item ``index`` draws in the current epoch, on a patch of
        side ``size`` (default: the dataset's patch size)."""
        side = self.patch_size if size is None else size
        if side is None:
            raise ValueError("the patch size is read per item: pass size=")
        return plan_sample(self.config, sample_rng(self.seed, self.epoch, index), side)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        """One sample (dict of tensors, :func:`~cloudfree.data.sample.make_sample`), or None for
        a bad patch when not ``strict`` (``collate_skip_bad`` then drops and counts it)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} patches")
        index = index % len(self)
        return load_or_skip(self._load, index, self._item_id(index), self.strict, self)
