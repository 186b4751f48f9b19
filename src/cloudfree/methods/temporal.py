"""Methods of several dates of one place: a cloud-free image from a series (issue 31).

A temporal method reads a batch with a time axis (:mod:`cloudfree.models.contract`):
``s2_series`` (B, T, 13, H, W) in the method's network scale, ``masks_series`` (B, T, H, W)
(0 clear; nonzero cloud, shadow or no data: the trusted scene mask of each date) and ``dates``
(B, T), days of each date from the target's. One-date methods keep their own batches.

The methods, each on the clear observations of each pixel:

- ``least-cloudy``: the date with the smallest masked fraction, as it is (the benchmark's
  "least cloudy" row: the earliest of equals);
- ``mosaic``: the mean of the clear observations, and where no date is clear a neutral value,
  as the SEN12MS-CR-TS authors define the "mosaicing" row (PatrickTUM/SEN12MS-CR-TS
  ``test.py``: 0.5 on their [-1, 1] scale, i.e. reflectance 0.75);
- ``median``: the per-pixel median of the clear observations (the usual composite);
- ``nearest-clear``: the clear observation nearest in time to the target date (the earlier of
  two equally near);
- ``composite`` (the default): ``median`` where some date is clear, and what no date sees clear
  filled by a one-image method (push-pull inpainting by default,
  :mod:`cloudfree.inpaint`) from the composite around it.

Where no date is clear, ``median`` and ``nearest-clear`` keep the least cloudy date's value.
:meth:`TemporalMethod.explain` also returns how each pixel was made: the number of clear
observations used (``nearest-clear``: 1), :data:`FROM_LEAST_CLOUDY` (0) where none was, or
:data:`FILLED` (-1) where a one-image method filled it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import torch

from cloudfree.bands import NUM_S2_BANDS, S2_DN_PER_REFLECTANCE, get_scaling
from cloudfree.methods.base import Method

#: ``made`` codes besides the count of clear observations.
FROM_LEAST_CLOUDY: Final[int] = 0
FILLED: Final[int] = -1
#: The mosaicing row's value where no date is clear: 0.5 on upstream's [-1, 1] scale.
MOSAIC_NEUTRAL_REFLECTANCE: Final[float] = 0.75
TEMPORAL_METHODS: Final[tuple[str, ...]] = (
    "least-cloudy", "mosaic", "median", "nearest-clear", "composite",
)  # fmt: skip


def least_cloudy_index(masks: np.ndarray) -> int:
    """The date (index into T) with the smallest masked fraction; the earliest of equals.
    ``masks``: (T, H, W), nonzero = masked."""
    return int(np.argmin((np.asarray(masks) != 0).mean(axis=(1, 2))))


def series_statistic(
    s2: np.ndarray, masks: np.ndarray, days: np.ndarray, how: str
) -> tuple[np.ndarray, np.ndarray]:
    """One image from a series, pixel by pixel, from the clear observations.

    Args:
        s2: (T, C, H, W) float values (any scale).
        masks: (T, H, W), 0 = clear.
        days: (T,) days from the target date.
        how: ``"least-cloudy"``, ``"mean"``, ``"median"`` or ``"nearest-clear"``.

    Returns:
        ``(image (C, H, W) float32, made (H, W) int16)``: where no date is clear the least
        cloudy date's value and ``made`` :data:`FROM_LEAST_CLOUDY`, else the count of clear
        observations used (1 for ``nearest-clear`` and ``least-cloudy``).
    """
    s2 = np.asarray(s2, dtype=np.float32)
    clear = np.asarray(masks) == 0  # (T, H, W)
    c = s2.shape[1]
    least = least_cloudy_index(masks)
    out = s2[least].copy()
    count = clear.sum(axis=0)
    seen = count > 0
    if how == "least-cloudy":
        return out, clear[least].astype(np.int16)
    if how in ("mean", "median"):
        values = np.where(clear[:, None, seen], s2[:, :, seen], np.nan)  # (T, C, N)
        if how == "mean":
            with np.errstate(invalid="ignore"):
                out[:, seen] = np.nanmean(values, axis=0)
        else:
            out[:, seen] = _median_of_clear(values, count[seen])
        return out, np.where(seen, count, FROM_LEAST_CLOUDY).astype(np.int16)
    if how == "nearest-clear":
        # distance in days, clear dates only; ties to the earlier date (its smaller offset
        # breaks the tie: |d| then d)
        d = np.asarray(days, dtype=np.float64)
        key = np.abs(d) * 2 + (d > 0)  # earlier first among equals
        cost = np.where(clear, key[:, None, None], np.inf)
        pick = np.argmin(cost, axis=0)  # (H, W)
        chosen = np.take_along_axis(s2, pick[None, None].repeat(c, 1), axis=0)[0]
        out[:, seen] = chosen[:, seen]
        return out, seen.astype(np.int16)
    raise ValueError(f"unknown statistic {how!r}")


def _median_of_clear(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median over the first axis of (T, C, N) values, NaN where a date is not clear, ``count``
    (N,) >= 1 clear dates per pixel: the sorted values (NaN last) at the middle one or two
    places; the same as ``np.nanmedian``, 10-20x faster for a few dates."""
    ordered = np.sort(values, axis=0)
    lo = ((count - 1) // 2)[None, None].repeat(values.shape[1], 1)
    hi = (count // 2)[None, None].repeat(values.shape[1], 1)
    a = np.take_along_axis(ordered, lo, axis=0)[0]
    b = np.take_along_axis(ordered, hi, axis=0)[0]
    return (a + b) / 2


class TemporalMethod(Method):
    """A method of a series (module docstring).

    Args:
        name: one of :data:`TEMPORAL_METHODS`.
        scaling: the network scaling of the series (``"reflectance"`` for SEN12MS-CR-TS).
        fill: the one-image method that fills what no date sees clear (``composite`` only):
            an inpainting method of :mod:`cloudfree.inpaint` (``"push-pull"`` by default).
        statistic: what ``composite`` takes where some date is clear: ``"median"`` (default)
            or ``"nearest-clear"``.
    """

    temporal = True
    needs_mask = True
    include_sar = False

    def __init__(self, name: str = "composite", scaling: str = "reflectance",
                 fill: str = "push-pull", statistic: str = "median") -> None:  # fmt: skip
        if name not in TEMPORAL_METHODS:
            raise ValueError(f"unknown temporal method {name!r}; expected one of "
                             f"{list(TEMPORAL_METHODS)}")  # fmt: skip
        if statistic not in ("median", "nearest-clear"):
            raise ValueError(f"statistic must be 'median' or 'nearest-clear', got {statistic!r}")
        self.name, self.scaling, self.statistic = name, scaling, statistic
        self.fill_name = fill if name == "composite" else None
        self._inpainter: Any = None
        if self.fill_name is not None:
            from cloudfree.inpaint.registry import get_inpainter

            self._inpainter = get_inpainter(self.fill_name)
            self.include_sar = self._inpainter.needs_sar

    def explain(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(prediction (B, 13, H, W), made (B, H, W) int16)`` (module docstring)."""
        s2, masks, days = _series(batch)
        scaling = get_scaling(self.scaling)
        scale = np.float32(scaling.s2_scale)
        preds, made = [], []
        for i in range(s2.shape[0]):
            s1 = None
            if self.include_sar:
                from cloudfree.data.preprocess import denormalize_s1

                s1 = denormalize_s1(np.asarray(batch["s1"][i], dtype=np.float32), scaling)
            img, m = self.combine(s2[i] * scale, masks[i], days[i], s1)
            preds.append(img / scale)
            made.append(m)
        return torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack(made))

    def combine(self, dn: np.ndarray, masks: np.ndarray, days: np.ndarray,
                s1: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """One series in DN: ``dn`` (T, 13, H, W), ``masks`` (T, H, W) 0 clear, ``days`` (T,),
        ``s1`` (2, H, W) dB for a fill that reads SAR. Returns ``(image (13, H, W) DN float32,
        made (H, W) int16)``."""
        if self.name == "mosaic":
            img, m = series_statistic(dn, masks, days, "mean")
            img[:, m == FROM_LEAST_CLOUDY] = MOSAIC_NEUTRAL_REFLECTANCE * S2_DN_PER_REFLECTANCE
            return img, m
        how = self.statistic if self.name == "composite" else self.name
        img, m = series_statistic(dn, masks, days, how)
        if self.name == "composite" and (m == FROM_LEAST_CLOUDY).any():
            img, m = self._fill(img, m, s1)
        return img, m

    def _fill(self, dn: np.ndarray, made: np.ndarray,
              s1: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        holes = made == FROM_LEAST_CLOUDY
        filled = self._inpainter(dn[None], holes[None], None if s1 is None else s1[None])[0]
        changed = self._inpainter.masks(dn[None], holes[None])[0]
        out = np.where(changed[None], filled, dn).astype(np.float32)
        return out, np.where(changed, FILLED, made).astype(np.int16)

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The cloud-free image of each series; see :meth:`Method.predict`."""
        return self.explain(batch)[0]


def _series(batch: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    for key in ("s2_series", "masks_series", "dates"):
        if key not in batch:
            raise ValueError(
                f"a temporal method reads s2_series (B, T, 13, H, W), masks_series (B, T, H, W) "
                f"and dates (B, T); the batch has no {key!r}"
            )
    s2 = torch.as_tensor(batch["s2_series"]).detach().cpu().numpy()
    masks = torch.as_tensor(batch["masks_series"]).detach().cpu().numpy()
    days = torch.as_tensor(batch["dates"]).detach().cpu().numpy()
    if s2.ndim != 5 or s2.shape[2] != NUM_S2_BANDS:
        raise ValueError(f"s2_series must be (B, T, {NUM_S2_BANDS}, H, W), got {s2.shape}")
    b, t, _, h, w = s2.shape
    if masks.shape != (b, t, h, w) or days.shape != (b, t):
        raise ValueError(
            f"masks_series {masks.shape} and dates {days.shape} must be ({b}, {t}, {h}, {w}) "
            f"and ({b}, {t}) like s2_series {s2.shape}"
        )
    return s2, masks, days
