"""Batching that tolerates bad patches (datasets yield None for them when not strict)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import default_collate


def collate_skip_bad(batch: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Drop None samples, batch the rest with ``default_collate``, and count what was dropped.

    Args:
        batch: samples from a dataset's ``__getitem__``; None marks a patch that could not be
            read (``SEN12MSCR(strict=False)`` warns and returns None).

    Returns:
        The collated dict (tensors stacked along a new batch axis, strings as lists) with an
        extra ``"skipped"`` (int): how many samples were dropped. None if every sample was bad:
        the training loop must skip such a batch (and count ``len(batch)`` as skipped).
    """
    good = [s for s in batch if s is not None]
    if not good:
        return None
    out = default_collate(good)
    out["skipped"] = len(batch) - len(good)
    return out
