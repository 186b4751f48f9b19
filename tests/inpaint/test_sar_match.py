"""sar-match: the fill follows what S1 sees under the cloud."""

from __future__ import annotations

import numpy as np

from cloudfree.inpaint import inpaint
from cloudfree.inpaint.sar_match import sar_features


def _two_covers(size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Water (dark in S1, spectrum A) left of a winding shore, field (bright, spectrum B)
    right of it, a cloud over the shore. Returns (clear, cloudy, s1 dB, mask)."""
    yy, xx = np.mgrid[0:size, 0:size]
    shore = 28 + (6 * np.sin(yy / 6.0)).astype(int)
    water = xx < shore
    spec_a = np.linspace(900, 300, 13)  # water: dark, falling into the NIR
    spec_b = np.linspace(700, 3200, 13)  # vegetation: bright NIR
    clear = np.where(water[None], spec_a[:, None, None], spec_b[:, None, None])
    s1 = np.stack([np.where(water, -22.0, -9.0), np.where(water, -29.0, -16.0)])
    mask = np.zeros((size, size), np.uint8)
    mask[12:52, 16:44] = 1  # the cloud hides the shore
    cloudy = np.where(mask[None] > 0, 6000.0, clear)
    return clear.astype(np.uint16), cloudy.astype(np.uint16), s1.astype(np.float32), mask


def test_the_fill_takes_the_spectrum_s1_points_to() -> None:
    clear, cloudy, s1, mask = _two_covers()
    out = inpaint(cloudy, mask, "sar-match", s1=s1)
    m = mask > 0
    # Away from the shore (where the 27-px SAR box straddles both covers) every masked pixel
    # gets exactly its own cover's spectrum; Telea, blind to S1, blurs across the shore.
    from scipy import ndimage

    water = s1[0] < -15
    far = ndimage.distance_transform_edt(water) + ndimage.distance_transform_edt(~water) > 6
    sel = m & far
    assert sel.sum() > 300
    np.testing.assert_array_equal(out[:, sel], clear[:, sel])
    err_sar = np.abs(out[:, m].astype(float) - clear[:, m]).mean()
    telea = inpaint(cloudy, mask, "mask-fill")
    err_telea = np.abs(telea[:, m].astype(float) - clear[:, m]).mean()
    assert err_sar < 0.5 * err_telea


def test_features_are_box_means_of_clipped_backscatter() -> None:
    s1 = np.full((2, 30, 30), -40.0, np.float32)  # below both clip ranges
    f = sar_features(s1)
    assert f.shape == (4, 30, 30)
    np.testing.assert_allclose(f[0], -25.0)  # VV clipped to [-25, 0] (DSen2-CR, spec section 2)
    np.testing.assert_allclose(f[1], -32.5)  # VH clipped to [-32.5, 0]


def test_s1_gaps_are_filled_not_propagated() -> None:
    clear, cloudy, s1, mask = _two_covers()
    s1[:, :5, :5] = np.nan
    out = inpaint(cloudy, mask, "sar-match", s1=s1)
    assert np.isfinite(out.astype(float)).all()
    np.testing.assert_array_equal(out[:, mask == 0], cloudy[:, mask == 0])
