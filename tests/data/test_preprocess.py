"""NaN filling and S1/S2 normalisation against values worked out by hand (spec section 2)."""

import numpy as np
import pytest

from cloudfree.bands import DSEN2CR, REFLECTANCE, get_scaling
from cloudfree.data.preprocess import (
    denormalize_s1,
    denormalize_s2,
    fill_nan,
    normalize_s1,
    normalize_s2,
)


def test_normalize_s2_dsen2cr_by_hand():
    # clip to [0, 10000] DN, then / 2000
    dn = np.array([[[0, 1000, 2000]], [[10000, 12000, 65535]]], dtype=np.uint16)
    out = normalize_s2(dn, DSEN2CR)
    assert out.dtype == np.float32 and out.shape == dn.shape
    np.testing.assert_array_equal(out, [[[0.0, 0.5, 1.0]], [[5.0, 5.0, 5.0]]])


def test_normalize_s2_reflectance_by_hand():
    dn = np.array([[[0, 1000, 2500, 10000, 12000]]], dtype=np.uint16)
    out = normalize_s2(dn, get_scaling("reflectance"))
    np.testing.assert_allclose(out, [[[0.0, 0.1, 0.25, 1.0, 1.0]]], rtol=0, atol=1e-7)


def test_normalize_s2_clips_negative_float_input():
    out = normalize_s2(np.array([-50.0, 3000.0]), DSEN2CR)
    np.testing.assert_array_equal(out, np.array([0.0, 1.5], dtype=np.float32))


def test_denormalize_s2_inverts_normalize_within_the_clip_range():
    dn = np.array([[[0, 1, 1234, 9999, 10000, 15000]]], dtype=np.uint16)
    for scaling in (DSEN2CR, REFLECTANCE):
        back = denormalize_s2(normalize_s2(dn, scaling), scaling)
        assert back.dtype == np.float32
        np.testing.assert_allclose(back, np.minimum(dn, 10000).astype(np.float32), atol=1e-3)
    # the network's 5.0 is 10000 DN, 0.5 is 1000 DN
    np.testing.assert_array_equal(denormalize_s2(np.array([5.0, 0.5]), DSEN2CR), [10000, 1000])


def test_normalize_s1_dsen2cr_by_hand():
    # VV clipped to [-25, 0], VH to [-32.5, 0]; both mapped to [0, 2] (max_val_sar = 2)
    db = np.array(
        [
            [[-30.0, -25.0, -12.5, 0.0, 3.0]],  # VV
            [[-40.0, -32.5, -16.25, 0.0, 3.0]],  # VH
        ],
        dtype=np.float32,
    )
    out = normalize_s1(db, DSEN2CR)
    assert out.dtype == np.float32 and out.shape == db.shape
    np.testing.assert_allclose(
        out, [[[0.0, 0.0, 1.0, 2.0, 2.0]], [[0.0, 0.0, 1.0, 2.0, 2.0]]], rtol=0, atol=1e-6
    )


def test_normalize_s1_reflectance_by_hand():
    # both bands clipped to [-25, 0] and mapped to [0, 1]
    db = np.array([[[-25.0, -12.5, -5.0]], [[-32.5, -25.0, -12.5]]], dtype=np.float32)
    out = normalize_s1(db, REFLECTANCE)
    np.testing.assert_allclose(out, [[[0.0, 0.5, 0.8]], [[0.0, 0.0, 0.5]]], rtol=0, atol=1e-6)


def test_normalize_s1_rejects_wrong_band_count():
    with pytest.raises(ValueError, match="2 bands"):
        normalize_s1(np.zeros((3, 4, 4), np.float32), DSEN2CR)


def test_fill_nan_uses_the_mean_over_all_bands():
    nan = np.nan
    x = np.array([[[1.0, nan], [3.0, nan]], [[5.0, 6.0], [nan, 9.0]]], dtype=np.float32)
    before = x.copy()
    out, n = fill_nan(x)
    # mean of the 5 non-NaN values (1 + 3 + 5 + 6 + 9) / 5 = 4.8, NOT the per-band means 2, 6.67
    assert n == 3
    assert out.dtype == np.float32
    np.testing.assert_allclose(
        out, [[[1.0, 4.8], [3.0, 4.8]], [[5.0, 6.0], [4.8, 9.0]]], rtol=0, atol=1e-6
    )
    np.testing.assert_array_equal(x, before)  # input untouched


def test_fill_nan_treats_infinities_as_missing() -> None:
    # NaN with -inf only: upstream's nanmean is -inf (every NaN became the darkest value); with
    # +inf too it is NaN. Both are missing here: the mean of the finite (-10 - 20 - 30) / 3.
    nan, inf = np.nan, np.inf
    x = np.array([[[-10.0, nan], [-inf, -20.0]], [[inf, -30.0], [nan, -inf]]], dtype=np.float32)
    out, n = fill_nan(x)
    assert n == 5
    np.testing.assert_array_equal(
        out, np.array([[[-10, -20], [-20, -20]], [[-20, -30], [-20, -20]]], np.float32)
    )
    out, n = fill_nan(np.full((2, 2, 2), -np.inf, np.float32))  # nothing finite: 0, all counted
    assert n == 8 and not out.any()


def test_fill_nan_all_nan_fills_zero_and_counts_everything():
    x = np.full((2, 3, 3), np.nan, dtype=np.float32)
    out, n = fill_nan(x)
    assert n == 18
    np.testing.assert_array_equal(out, np.zeros((2, 3, 3), np.float32))


def test_fill_nan_without_nans_and_integer_input():
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    out, n = fill_nan(x)
    assert n == 0
    np.testing.assert_array_equal(out, x)
    dn = np.arange(8, dtype=np.uint16).reshape(2, 2, 2)
    out_dn, n_dn = fill_nan(dn)
    assert n_dn == 0 and out_dn.dtype == np.uint16
    np.testing.assert_array_equal(out_dn, dn)


def test_denormalize_s1_inverts_normalize_s1_on_its_range() -> None:
    db = np.array([[-40.0, -25.0, -12.5, 0.0, 3.0], [-40.0, -32.5, -16.25, 0.0, 3.0]])
    back = denormalize_s1(normalize_s1(db, DSEN2CR), DSEN2CR)
    # VV clipped to [-25, 0], VH to [-32.5, 0] (spec section 2), exact inside the range
    np.testing.assert_allclose(back[0], [-25.0, -25.0, -12.5, 0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(back[1], [-32.5, -32.5, -16.25, 0.0, 0.0], atol=1e-5)
