"""Which dates of a SEN12MS-CR-TS series are the inputs and which is the target: upstream's
samplers (PatrickTUM/UnCRtainTS ``data/dataLoader.py``: ``fixed_sampler``, ``random_sampler``).

Both read the cloud coverage of each of the 30 dates (the mean of its cloud mask, in [0, 1]).

- ``fixed`` (validation and test): the target is the least cloudy date; the inputs are the
  first ``n_input`` dates whose coverage lies in ``[min_cov, max_cov]``, else the first
  ``n_input`` dates other than the target. **Upstream's quirk**: in the first case the target
  is not excluded, so with the defaults (``min_cov=0, max_cov=1``: every date qualifies) the
  inputs are dates 0, 1, 2 and the target is among them whenever one of them is the least
  cloudy. cloudfree leaves the target out of the inputs unless ``upstream_quirk=True``
  (what the published numbers were computed with; reproduce them with it). Upstream takes the
  target as the first entry of ``np.argsort(coverage)`` (numpy's default sort, which does not
  promise the earliest of equal coverages); cloudfree takes the earliest of the least cloudy
  dates, and the quirk mode upstream's own ``argsort``.
- ``random`` (training): the target is a random date with coverage below ``clear_threshold``
  (0.1 %), else the least cloudy; the inputs are the other dates of the middle one of the
  windows of ``n_input + 1`` consecutive dates that contain the target.

The result flags whether the requested coverages were met (upstream's ``coverage_match``):
the inputs in ``[min_cov, max_cov]`` and the target below ``clear_threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

#: Upstream's ``clear_tresh``: a target with less cloud than this (0.1 %) counts as clear.
CLEAR_THRESHOLD: Final[float] = 1e-3
SAMPLERS: Final[tuple[str, ...]] = ("fixed", "random")


@dataclass(frozen=True)
class DateSample:
    """The dates of one sample: ``inputs`` (time points, in time order as upstream lists them)
    and ``target``; ``match``: the requested coverages were met."""

    inputs: tuple[int, ...]
    target: int
    match: bool


def fixed_sample(
    coverage: Sequence[float],
    n_input: int = 3,
    min_cov: float = 0.0,
    max_cov: float = 1.0,
    clear_threshold: float = CLEAR_THRESHOLD,
    upstream_quirk: bool = False,
) -> DateSample:
    """Upstream's ``fixed_sampler`` (module docstring); ``upstream_quirk`` keeps its target
    among the inputs where it falls there.

    Raises:
        ValueError: fewer than ``n_input + 1`` dates, or ``n_input < 1``.
    """
    cov = _check(coverage, n_input)
    if upstream_quirk:
        target = int(np.argsort(cov)[0])
        candidates = [i for i, c in enumerate(cov) if min_cov <= c <= max_cov]
    else:
        target = int(np.argmin(cov))  # the earliest of the least cloudy
        candidates = [i for i, c in enumerate(cov) if min_cov <= c <= max_cov and i != target]
    inputs = candidates[:n_input]
    match = len(inputs) == n_input
    if not match:
        inputs = [i for i in range(len(cov)) if i != target][:n_input]
    if cov[target] > clear_threshold:
        match = False
    return DateSample(tuple(inputs), target, match)


def random_sample(
    coverage: Sequence[float],
    n_input: int,
    rng: np.random.Generator,
    clear_threshold: float = CLEAR_THRESHOLD,
) -> DateSample:
    """Upstream's ``random_sampler`` (module docstring), drawing from ``rng``."""
    cov = _check(coverage, n_input)
    clear = np.flatnonzero(cov < clear_threshold)
    target = int(clear[rng.integers(len(clear))]) if len(clear) else int(np.argmin(cov))
    starts = [s for s in range(len(cov) - n_input) if s <= target <= s + n_input]
    start = starts[len(starts) // 2]
    inputs = tuple(t for t in range(start, start + n_input + 1) if t != target)
    return DateSample(inputs, target, True)


def _check(coverage: Sequence[float], n_input: int) -> np.ndarray:
    cov = np.asarray(coverage, dtype=np.float64)
    if n_input < 1:
        raise ValueError(f"n_input must be >= 1 input date, got {n_input}")
    if cov.ndim != 1 or len(cov) < n_input + 1:
        raise ValueError(
            f"a series of {cov.size} dates cannot give {n_input} input dates and a target: "
            f"it needs at least {n_input + 1}"
        )
    if not np.isfinite(cov).all():
        raise ValueError("cloud coverages must be finite numbers in [0, 1]")
    return cov
