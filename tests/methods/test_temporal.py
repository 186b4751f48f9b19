"""Temporal methods (issue 31, step 2) against values worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cloudfree.methods.temporal import (
    FILLED,
    FROM_LEAST_CLOUDY,
    TemporalMethod,
    least_cloudy_index,
    series_statistic,
)


def _series() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T=4 dates of a 1 x 3 image, 13 bands equal; values 10, 20, 30, 40 by date; dates -30,
    -10, +10, +40 days from the target. Pixel 0: clear on dates 0, 1, 3; pixel 1: clear on
    date 2 only; pixel 2: never clear."""
    s2 = np.zeros((4, 13, 1, 3), dtype=np.float32)
    for t in range(4):
        s2[t] = 10 * (t + 1)
    masks = np.ones((4, 1, 3), dtype=np.uint8)
    masks[[0, 1, 3], 0, 0] = 0
    masks[2, 0, 1] = 0
    return s2, masks, np.array([-30, -10, 10, 40])


@pytest.mark.parametrize(("how", "values", "made"), [
    # least cloudy: dates 0, 1, 3 mask 2 of 3 px, date 2 too: all equal, the earliest (0)
    ("least-cloudy", [10, 10, 10], [1, 0, 0]),
    ("mean", [(10 + 20 + 40) / 3, 30, 10], [3, 1, FROM_LEAST_CLOUDY]),
    ("median", [20, 30, 10], [3, 1, FROM_LEAST_CLOUDY]),
    # nearest: pixel 0 -> date 1 (10 days before); pixel 1 -> date 2 (its only clear date)
    ("nearest-clear", [20, 30, 10], [1, 1, FROM_LEAST_CLOUDY]),
])  # fmt: skip
def test_statistics_by_hand(how: str, values: list[float], made: list[int]) -> None:
    s2, masks, days = _series()
    img, m = series_statistic(s2, masks, days, how)
    assert np.allclose(img[:, 0, :], np.array(values, dtype=np.float32)[None])
    assert m[0].tolist() == made


def test_nearest_clear_prefers_the_earlier_of_two_equally_near() -> None:
    s2, masks, _ = _series()
    img, _ = series_statistic(s2, masks, np.array([-30, -10, 10, 10]), "nearest-clear")
    assert img[0, 0, 0] == 20  # date 1 (-10) before date 3 (+10)
    masks[1, 0, 0] = 1
    img, _ = series_statistic(s2, masks, np.array([-30, -10, 10, 10]), "nearest-clear")
    assert img[0, 0, 0] == 40  # date 3 (+10) beats date 0 (-30)


def test_least_cloudy_is_the_smallest_masked_fraction() -> None:
    masks = np.ones((3, 2, 2))
    masks[1, 0, 0] = masks[2, 0] = 0
    assert least_cloudy_index(masks) == 2


def _batch(s2: np.ndarray, masks: np.ndarray, days: np.ndarray) -> dict:
    return {"s2_series": torch.from_numpy(s2[None]), "masks_series": torch.from_numpy(masks[None]),
            "dates": torch.from_numpy(days[None])}  # fmt: skip


def test_mosaic_puts_the_neutral_value_where_no_date_is_clear() -> None:
    s2, masks, days = _series()
    pred, made = TemporalMethod("mosaic", scaling="reflectance").explain(_batch(s2, masks, days))
    assert torch.allclose(pred[0, :, 0, 2], torch.tensor(0.75))  # reflectance 0.75
    assert pred[0, 0, 0, 0] == pytest.approx(70 / 3) and made[0, 0].tolist() == [3, 1, 0]
    dsen2cr = TemporalMethod("mosaic", scaling="dsen2cr").predict(_batch(s2, masks, days))
    assert dsen2cr[0, 0, 0, 2] == pytest.approx(0.75 * 10000 / 2000)


def test_composite_fills_what_no_date_sees_clear() -> None:
    """A 9 x 9 place: every pixel clear on some date (median 1000 DN) but the centre, clear on
    none: push-pull fills it from its flat surroundings, 1000 DN."""
    t, h = 3, 9
    s2 = np.full((t, 13, h, h), 0.1, dtype=np.float32)  # reflectance 0.1 = 1000 DN
    s2[0] += 0.5  # date 0 is cloud everywhere it is not masked out
    masks = np.zeros((t, h, h), dtype=np.uint8)
    masks[0] = 1
    masks[:, 4, 4] = 1
    pred, made = TemporalMethod("composite").explain(_batch(s2, masks, np.array([-5, 3, 9])))
    assert made[0, 4, 4] == FILLED and (made[0][made[0] != FILLED] == 2).all()
    assert torch.allclose(pred, torch.full_like(pred, 0.1), atol=1e-6)
    # the median alone keeps the least cloudy date's value there (date 1: 0.1, no cloud)
    pred_m, made_m = TemporalMethod("median").explain(_batch(s2, masks, np.array([-5, 3, 9])))
    assert made_m[0, 4, 4] == FROM_LEAST_CLOUDY


def test_bad_series_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown temporal method 'mean'"):
        TemporalMethod("mean")
    s2, masks, days = _series()
    with pytest.raises(ValueError, match="the batch has no 'dates'"):
        TemporalMethod("median").predict({"s2_series": s2[None], "masks_series": masks[None]})
    with pytest.raises(ValueError, match="must be"):
        TemporalMethod("median").predict(_batch(s2, masks[:2], days))


def test_fast_median_equals_numpy_nanmedian() -> None:
    from cloudfree.methods.temporal import _median_of_clear

    rng = np.random.default_rng(0)
    values = rng.normal(1000, 300, (5, 13, 400)).astype(np.float32)
    clear = rng.random((5, 400)) < 0.6
    clear[0, ~clear.any(axis=0)] = True  # every pixel has a clear date
    v = np.where(clear[:, None], values, np.nan)
    assert np.allclose(_median_of_clear(v, clear.sum(axis=0)), np.nanmedian(v, axis=0))
