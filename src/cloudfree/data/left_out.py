"""Patches a dataset leaves out because they lack a file its items need (a SAR model's
patches without S1, say), counted by reason so that training and evaluation can say how many
and why instead of using fewer patches without a word. Standard library only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: Why a patch of the split is not an item, by the kind of file it lacks (``left_out``).
LEFT_OUT_REASONS = {
    "s1": "no S1 file (the model takes SAR)",
    "s2": "no cloud-free target file",
    "s2_cloudy": "no cloudy input file",
}


def left_out(
    patches: Iterable[Any], kinds: tuple[str, ...], has: Callable[[Any, str], bool]
) -> dict[str, int]:
    """How many of ``patches`` lack a kind of file an item needs, by reason
    (:data:`LEFT_OUT_REASONS`; a patch is counted once, under the first kind it lacks)."""
    counts: Counter[str] = Counter()
    for p in patches:
        missing = next((k for k in kinds if not has(p, k)), None)
        if missing is not None:
            counts[LEFT_OUT_REASONS[missing]] += 1
    return dict(counts)


def describe_left_out(used: int, left: Mapping[str, int]) -> str:
    """``"26 of 27 patches left out: 26 no S1 file (...)"``, or "" when none was."""
    n = sum(left.values())
    if not n:
        return ""
    why = ", ".join(f"{c} {reason}" for reason, c in sorted(left.items()))
    return f"{n} of {used + n} patches left out: {why}"
