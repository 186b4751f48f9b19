"""Random crop windows and flip/rot90 augmentation (spec section 2), checked by hand."""

from collections import Counter

import numpy as np
import pytest

from cloudfree.data.transforms import (
    apply_augmentation,
    draw_augmentation,
    draw_window,
    invert_augmentation,
)

A = np.array([[1, 2, 3], [4, 5, 6]])  # 2 x 3, every value unique: shows orientation


@pytest.mark.parametrize(
    ("flip", "k", "expected"),
    [
        (0, 0, [[1, 2, 3], [4, 5, 6]]),
        (1, 0, [[4, 5, 6], [1, 2, 3]]),  # rows (H) flipped: upside down
        (2, 0, [[3, 2, 1], [6, 5, 4]]),  # columns (W) flipped: mirrored
        (0, 1, [[3, 6], [2, 5], [1, 4]]),  # 90 degrees counter-clockwise
        (0, 2, [[6, 5, 4], [3, 2, 1]]),
        (0, 3, [[4, 1], [5, 2], [6, 3]]),
        (2, 1, [[1, 4], [2, 5], [3, 6]]),  # mirror, then rotate: a transpose
        (1, 1, [[6, 3], [5, 2], [4, 1]]),
    ],
)
def test_apply_augmentation_by_hand(flip, k, expected):
    np.testing.assert_array_equal(apply_augmentation(A, flip, k), expected)


def test_apply_augmentation_matches_upstream_numpy_calls_on_chw():
    # dataIO.py: np.flip(img, flip) if flip; np.rot90(img, k, (1, 2)) if k, on (C, H, W)
    x = np.random.default_rng(0).random((3, 5, 5))
    for flip in range(3):
        for k in range(4):
            ref = x
            if flip:
                ref = np.flip(ref, flip)
            if k:
                ref = np.rot90(ref, k, (1, 2))
            np.testing.assert_array_equal(apply_augmentation(x, flip, k), ref)


def test_apply_augmentation_same_on_every_leading_slice_and_on_masks():
    x = np.arange(2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    out = apply_augmentation(x, 2, 3)
    assert out.shape == (2, 3, 4, 4)
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(out[i, j], apply_augmentation(x[i, j], 2, 3))


def test_apply_augmentation_returns_a_contiguous_writable_copy():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    for flip, k in [(0, 0), (1, 0), (2, 3)]:
        out = apply_augmentation(x, flip, k)
        assert out.flags.c_contiguous and out.flags.writeable
        assert not np.shares_memory(out, x)


def test_invert_augmentation_round_trips_all_twelve():
    x = np.random.default_rng(1).random((2, 6, 4))  # non-square: odd k swaps H and W
    for flip in range(3):
        for k in range(4):
            y = apply_augmentation(x, flip, k)
            assert y.shape == ((2, 4, 6) if k % 2 else (2, 6, 4))
            np.testing.assert_array_equal(invert_augmentation(y, flip, k), x)


def test_apply_augmentation_rejects_bad_codes():
    with pytest.raises(ValueError, match="flip"):
        apply_augmentation(A, 3, 0)
    with pytest.raises(ValueError, match="k"):
        apply_augmentation(A, 0, 4)
    with pytest.raises(ValueError, match="2 dims"):
        apply_augmentation(np.zeros(3), 0, 0)


def test_draw_window_follows_upstream_for_256_128():
    # upstream randint(0, 128): offsets 0..127 for a 128 crop of a 256 patch, never 128
    rows, cols = Counter(), Counter()
    for i in range(3000):
        r, c, h, w = draw_window(np.random.default_rng([7, i]), 256, 128)
        assert (h, w) == (128, 128)
        rows[r] += 1
        cols[c] += 1
    assert set(rows) == set(range(128))
    assert set(cols) == set(range(128))


def test_draw_window_small_and_full_sizes():
    seen = {draw_window(np.random.default_rng(i), 64, 32)[:2] for i in range(2000)}
    assert {r for r, _ in seen} == set(range(32))
    assert {c for _, c in seen} == set(range(32))
    assert draw_window(np.random.default_rng(0), 64, 64) == (0, 0, 64, 64)
    with pytest.raises(ValueError, match="between 1 and"):
        draw_window(np.random.default_rng(0), 64, 65)


def test_draw_augmentation_covers_all_codes_uniformly():
    draws = [draw_augmentation(np.random.default_rng([3, i])) for i in range(6000)]
    flips = Counter(f for f, _ in draws)
    ks = Counter(k for _, k in draws)
    assert set(flips) == {0, 1, 2} and set(ks) == {0, 1, 2, 3}
    # uniform: each count within 10 % of its expectation (6000/3 = 2000, 6000/4 = 1500)
    assert all(abs(n - 2000) < 200 for n in flips.values())
    assert all(abs(n - 1500) < 150 for n in ks.values())
    # flip and k are independent: all 12 pairs occur
    assert len(Counter(draws)) == 12
