"""Tile plans, blending weights and reflect padding."""

from __future__ import annotations

import numpy as np
import pytest

from cloudfree.predict.tiling import (
    BLEND_EPS,
    axis_positions,
    blend_margin,
    blend_weights,
    coverage_reach,
    coverage_weights,
    fit_tile,
    plan_tiles,
)
from cloudfree.windows import clip_window, grow, pad_reflect, windows


def test_axis_positions_stride_and_flush_last() -> None:
    assert axis_positions(1056, 256, 32) == [0, 224, 448, 672, 800]
    assert axis_positions(256, 256, 32) == [0]
    assert axis_positions(100, 256, 32) == [0]  # one tile, cut to the axis
    assert axis_positions(480, 256, 32) == [0, 224]  # exactly two tiles, no extra flush tile


@pytest.mark.parametrize(
    "height,width,tile,overlap", [(200, 333, 64, 16), (64, 64, 64, 8), (97, 130, (40, 50), 10)]
)
def test_plan_tiles_covers_every_pixel_with_at_least_the_overlap(
    height, width, tile, overlap
) -> None:
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    cover = np.zeros((height, width), dtype=int)
    plan = plan_tiles(height, width, tile, overlap)
    for r, c in plan:
        assert r + min(th, height) <= height and c + min(tw, width) <= width
        cover[r : r + th, c : c + tw] += 1
    assert cover.min() >= 1
    rows = sorted({r for r, _ in plan})
    assert rows[-1] + min(th, height) == height  # last row flush with the edge
    assert all(b - a <= th - overlap for a, b in zip(rows, rows[1:], strict=False))


def test_plan_tiles_rejects_bad_overlap() -> None:
    with pytest.raises(ValueError, match="overlap"):
        plan_tiles(100, 100, 32, 32)


def test_fit_tile_same_count_less_work() -> None:
    # 1056 px with 256-px tiles and 32 overlap: 5 tiles either way, 237 px is enough (240:
    # the next multiple of 16).
    t = fit_tile(1056, 256, 32)
    assert t == 240
    assert len(axis_positions(1056, t, 32)) == len(axis_positions(1056, 256, 32)) == 5
    assert fit_tile(100, 256, 32) == 100
    for length in range(40, 700, 7):
        t = fit_tile(length, 64, 16)
        assert (
            t <= 64
            and (t % 16 == 0 or t == 64 or t == length)
            and len(axis_positions(length, t, 16)) == len(axis_positions(length, 64, 16))
        )


def test_blend_weights_shape_range_and_fall_to_edges() -> None:
    w = blend_weights(64, 32)
    assert w.shape == (64, 64) and w.dtype == np.float32
    assert w.min() >= np.float32(BLEND_EPS**2) * 0.999 and w.max() == 1.0
    assert w[32, 32] == 1.0 and w[0, 0] == pytest.approx(BLEND_EPS**2)
    np.testing.assert_array_equal(w, w.T)
    np.testing.assert_array_equal(w, w[::-1, ::-1])
    row = w[32]
    assert np.all(np.diff(row[:32]) >= 0)  # rises from the edge to the inside
    assert blend_weights((40, 50), 16).shape == (40, 50)


def test_blend_weights_margin_and_partition_of_unity() -> None:
    overlap = 32
    m = blend_margin(overlap)
    assert m == 8
    ramp = blend_weights(96, overlap)[48]
    # Untrusted outer margin: only BLEND_EPS.
    assert np.all(ramp[:m] == np.float32(BLEND_EPS))
    assert ramp[m] > 10 * BLEND_EPS
    # Two tiles overlapping by exactly `overlap`: the weights sum to 1 across the overlap.
    stride = 96 - overlap
    total = np.zeros(96 + stride)
    total[:96] += ramp
    total[stride:] += ramp
    zone = total[stride + m : 96 - m]
    np.testing.assert_allclose(zone, 1.0, atol=1e-6)


def test_pad_reflect_matches_hand_example() -> None:
    x = np.arange(1, 5, dtype=np.float32)[None, None, :].repeat(2, axis=1)  # rows [1 2 3 4]
    out = pad_reflect(x, 0, 1, 2, 3)
    np.testing.assert_array_equal(out[0, 0], [3, 2, 1, 2, 3, 4, 3, 2, 1])
    assert out.shape == (1, 3, 9)
    assert pad_reflect(x, 0, 0, 0, 0) is x
    one = np.ones((1, 1, 3))
    assert pad_reflect(one, 2, 2, 0, 0).shape == (1, 5, 3)  # a 1-pixel axis is repeated


def test_windows_grow_clip() -> None:
    wins = list(windows(100, 130, 64))
    assert wins == [
        (0, 0, 64, 64),
        (0, 64, 64, 64),
        (0, 128, 64, 2),
        (64, 0, 36, 64),
        (64, 64, 36, 64),
        (64, 128, 36, 2),
    ]
    with pytest.raises(ValueError, match="window size must be >= 1"):
        list(windows(10, 10, 0))
    assert grow((0, 0, 64, 64), 8) == (-8, -8, 80, 80)
    assert clip_window((-8, -8, 80, 80), 70, 100) == (0, 0, 70, 72)


def test_coverage_weights_ramp_like_a_tile_edge() -> None:
    # S1 covers columns 0..19 of a 3 x 30 strip; overlap 16: margin 4, ramp over 8 px.
    cov = np.zeros((3, 30), bool)
    cov[:, :20] = True
    w = coverage_weights(cov, 16)
    # Column c is 20 - c px from the nearest pixel without S1: clip((20 - c - 4) / 9, 0, 1).
    expected = np.clip((20 - np.arange(30) - 4) / 9, 0, 1)
    expected[20:] = 0
    np.testing.assert_allclose(w, np.broadcast_to(expected, w.shape), atol=1e-7)
    assert w.dtype == np.float32 and coverage_reach(16) == 12
    assert (w[:, : 20 - coverage_reach(16)] == 1).all() and (w[:, 20 - 4 :] == 0).all()
    # As a tile's 1-D ramp, mirrored at the edge: the two sum to 1 across the blend.
    from cloudfree.predict.tiling import _ramp

    tile = _ramp(40, 16)[:20]  # the rising ramp of a tile starting at the coverage edge
    np.testing.assert_allclose(w[0, :20][::-1], np.where(tile <= 1e-6, 0, tile), atol=1e-6)
    assert (coverage_weights(np.ones((4, 4), bool), 16) == 1).all()
    assert (coverage_weights(np.zeros((4, 4), bool), 16) == 0).all()
    np.testing.assert_array_equal(coverage_weights(cov, 0), cov.astype(np.float32))  # no ramp
