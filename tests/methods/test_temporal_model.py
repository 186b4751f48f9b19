"""A temporal network filling a composite (cloudfree.methods.temporal_model): the dates it is
given, the tiles it runs, and what it leaves to the median."""

from __future__ import annotations

from datetime import date

import numpy as np
import torch

from cloudfree.methods.model import ModelMethod
from cloudfree.methods.temporal import FILLED
from cloudfree.methods.temporal_model import TemporalModelFill, nearest_dates
from cloudfree.models.uncrtaints_mt import UnCRtainTSMT


def test_the_dates_nearest_the_target_in_time_order() -> None:
    assert nearest_dates([-30, -20, -10, 5, 40], 3) == [1, 2, 3]
    assert nearest_dates([-10, 10, 30], 2) == [0, 1]  # equally near: both
    assert nearest_dates([-10, 10, 30], 1) == [0]  # the earlier of equals
    assert nearest_dates([-5, 0], 3) == [0, 1]  # fewer dates than asked: all


def _fill(tile: int) -> TemporalModelFill:
    torch.manual_seed(0)
    net = UnCRtainTSMT(include_sar=False, encoder_widths=[8], decoder_widths=[8], n_head=2,
                       d_model=8)  # fmt: skip
    method = ModelMethod(net, name="mt", device="cpu", backend="torch", series=True)
    fill = TemporalModelFill(method, [-20, -10, 0, 10], date(2021, 5, 1))
    fill.tile = tile
    return fill


def test_only_the_tiles_over_the_holes_run_and_give_the_same_values() -> None:
    fill = _fill(64)
    assert fill.chosen == [1, 2, 3] and fill.abs_days.tolist() == [[2575, 2585, 2595]]
    rng = np.random.default_rng(0)
    dn = rng.uniform(500, 3000, (3, 13, 160, 160)).astype(np.float32)
    full = fill.predict_dn(dn, None)
    where = np.zeros((160, 160), bool)
    where[5:20, 140:150] = True  # a hole in the top-right corner
    part = fill.predict_dn(dn, None, where)
    assert np.allclose(part[:, where], full[:, where], rtol=0, atol=1e-3)
    assert np.isnan(part[:, 150:, :20]).all()  # the bottom-left tile did not run
    assert np.isfinite(full).all() and (full > 0).all()


def test_combine_keeps_the_median_and_fills_only_what_no_date_sees() -> None:
    fill = _fill(64)
    dn = np.stack([np.full((13, 40, 40), v, np.float32) for v in (1000, 2000, 3000, 4000)])
    masks = np.zeros((4, 40, 40), np.uint8)
    masks[:, :10, :10] = 1  # no date clear there
    masks[0, 20:, 20:] = 1  # one date masked there
    img, made = fill.combine(dn, masks, np.array([-20, -10, 0, 10]))
    holes = np.zeros((40, 40), bool)
    holes[:10, :10] = True
    assert (made[holes] == FILLED).all() and (made[20:, 20:] == 3).all()
    assert (made[~holes] > 0).all()
    assert (img[:, 20:, 20:] == 3000).all() and (img[:, 10:20, 10:20] == 2500).all()  # medians
    want = fill.predict_dn(dn[[1, 2, 3]], None)
    assert np.allclose(img[:, holes], want[:, holes], atol=1e-3)
