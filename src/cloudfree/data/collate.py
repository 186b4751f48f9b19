"""Batching that tolerates bad patches (datasets yield None for them when not strict)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from torch.utils.data import default_collate

from cloudfree.errors import DataError


def load_or_skip(
    load: Callable[[int], dict[str, Any]],
    index: int,
    patch_id: str,
    strict: bool,
    record: Any = None,
) -> dict[str, Any] | None:
    """``load(index)``; for a bad patch (DataError) raise if ``strict``, else warn and return None.

    The one policy of both datasets (per-file and packed): one bad patch in a large index is
    reported, not fatal, unless the user asks for strict mode; :func:`collate_skip_bad` then
    drops and counts it. The first such message is kept in ``record.first_bad`` (a dataset),
    so that a summary can say why patches were skipped.
    """
    try:
        return load(index)
    except DataError as e:
        if strict:
            raise
        if record is not None and getattr(record, "first_bad", None) is None:
            record.first_bad = str(e)  # names the patch or its file
        warnings.warn(f"skipping bad patch {patch_id}: {e}", stacklevel=3)
        return None


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
