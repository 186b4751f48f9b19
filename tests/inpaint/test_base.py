"""The contract every inpainting method keeps (cloudfree.inpaint.base), checked on each."""

from __future__ import annotations

import numpy as np
import pytest

from cloudfree.inpaint import INPAINT_METHODS, dilate_mask, get_inpainter, inpaint

#: The methods that need no weights (Stable Diffusion has its own tests, test_sd.py).
METHODS = [m for m in INPAINT_METHODS if m != "stable-diffusion"]


def _scene(b: int = 2, size: int = 40, seed: int = 0):  # noqa: ANN202
    """Smooth 13-band uint16 DN images with a bright 'cloud' block, its mask, and an S1."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    base = np.stack([800 + 40 * k + 20 * xx + 10 * yy for k in range(13)])
    x = np.stack([base + rng.normal(0, 5, base.shape) for _ in range(b)])
    mask = np.zeros((b, size, size), np.uint8)
    mask[:, 10:22, 12:26] = 1
    mask[-1, 30:34, 2:6] = 2  # a shadow too
    cloudy = np.where(mask[:, None] > 0, 7000.0, x).astype(np.uint16)
    s1 = np.stack([np.stack([-12 + 0.05 * xx, -19 + 0.05 * yy]) for _ in range(b)])
    return cloudy, mask, s1.astype(np.float32)


def _kwargs(method: str, s1: np.ndarray) -> dict:
    return {"s1": s1} if get_inpainter(method).needs_sar else {}


@pytest.mark.parametrize("method", METHODS)
def test_outside_the_mask_is_the_input_bit_for_bit(method: str) -> None:
    cloudy, mask, s1 = _scene()
    out = inpaint(cloudy, mask, method, **_kwargs(method, s1))
    assert out.shape == cloudy.shape and out.dtype == cloudy.dtype
    m = mask > 0
    for i in range(len(out)):
        np.testing.assert_array_equal(out[i][:, ~m[i]], cloudy[i][:, ~m[i]])
    # The cloud (7000 DN) is gone: filled values lie in the range of the clear surroundings.
    clear = cloudy[:, :, ~m[0]]
    assert out[0][:, m[0]].max() <= clear.max() + 50
    assert out[0][:, m[0]].min() >= clear.min() - 50


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float32])
def test_dtype_kept_and_batch_equals_single_images(method: str, dtype: type) -> None:
    cloudy, mask, s1 = _scene()
    x = cloudy.astype(dtype)
    batch = inpaint(x, mask, method, **_kwargs(method, s1))
    assert batch.dtype == x.dtype
    for i in range(len(x)):
        kw = {"s1": s1[i]} if get_inpainter(method).needs_sar else {}
        single = inpaint(x[i], mask[i], method, **kw)
        assert single.shape == x[i].shape
        np.testing.assert_array_equal(single, batch[i])


@pytest.mark.parametrize("method", METHODS)
def test_empty_mask_and_full_mask_return_the_input(method: str) -> None:
    cloudy, _, s1 = _scene()
    kw = _kwargs(method, s1)
    empty = np.zeros(cloudy.shape[:1] + cloudy.shape[2:], np.uint8)
    out = inpaint(cloudy, empty, method, **kw)
    np.testing.assert_array_equal(out, cloudy)
    assert out is not cloudy  # a copy: the caller's array is never modified
    full = np.ones_like(empty)
    out = inpaint(cloudy.astype(np.float32), full, method, **kw)  # nothing to fill from
    np.testing.assert_array_equal(out, cloudy.astype(np.float32))
    assert np.isfinite(out).all()


@pytest.mark.parametrize("method", METHODS)
def test_nan_pixels_are_filled_never_returned(method: str) -> None:
    cloudy, mask, s1 = _scene()
    x = cloudy.astype(np.float32)
    x[0, :, 3, 3] = np.nan  # a nodata pixel outside the mask
    x[1, 4, 35, 35] = np.inf
    out = inpaint(x, mask, method, **_kwargs(method, s1))
    assert np.isfinite(out).all()
    assert abs(out[0, 0, 3, 3] - np.nanmedian(x[0, 0, :8, :8])) < 200


def test_mask_of_another_shape_is_refused() -> None:
    cloudy, mask, _ = _scene()
    with pytest.raises(ValueError, match=r"mask must be \(40, 40\)"):
        inpaint(cloudy, mask[:, :20], "mask-fill")
    with pytest.raises(ValueError, match=r"13, H, W"):
        inpaint(cloudy[:, :12], mask, "mask-fill")
    with pytest.raises(ValueError, match="unknown inpainting method 'telea'"):
        inpaint(cloudy, mask, "telea")
    with pytest.raises(ValueError, match="takes no option"):
        inpaint(cloudy, mask, "push-pull", radius=3)


def test_sar_match_needs_s1() -> None:
    cloudy, mask, s1 = _scene()
    with pytest.raises(ValueError, match="needs s1"):
        inpaint(cloudy, mask, "sar-match")
    with pytest.raises(ValueError, match=r"s1 must be \(2, 40, 40\)"):
        inpaint(cloudy, mask, "sar-match", s1=s1[:, :1])


def test_mask_computed_when_absent_is_the_dsen2cr_mask(sen12mscr_root) -> None:  # noqa: ANN001
    from cloudfree.io import read_raster
    from cloudfree.masks import cloud_shadow_mask

    path = (
        sen12mscr_root
        / "ROIs1970_fall_s2_cloudy/s2_cloudy_136/ROIs1970_fall_s2_cloudy_136_p100.tif"
    )
    dn = read_raster(path)[0]
    np.testing.assert_array_equal(inpaint(dn), inpaint(dn, cloud_shadow_mask(dn)))


def test_dilate_mask_is_a_disc() -> None:
    m = np.zeros((11, 11), bool)
    m[5, 5] = True
    d = dilate_mask(m, 2)
    yy, xx = np.mgrid[0:11, 0:11]
    np.testing.assert_array_equal(d, (yy - 5) ** 2 + (xx - 5) ** 2 <= 4)
    np.testing.assert_array_equal(dilate_mask(m, 0), m)


def test_dilation_grows_the_fill_but_never_eats_the_last_clear_pixels() -> None:
    cloudy, mask, _ = _scene(b=1)
    fill = get_inpainter("mask-fill", dilate=3)
    region = fill.fill_region(mask[0])
    np.testing.assert_array_equal(region, dilate_mask(mask[0] > 0, 3))
    out = fill(cloudy, mask)
    np.testing.assert_array_equal(out[0][:, ~region], cloudy[0][:, ~region])
    assert (out[0][:, region & (mask[0] == 0)] != cloudy[0][:, region & (mask[0] == 0)]).any()
    # A mask that the dilation would grow over the whole image: the undilated one is used.
    almost = np.ones_like(mask[0])
    almost[0, 0] = 0
    np.testing.assert_array_equal(fill.fill_region(almost), almost > 0)
    with pytest.raises(ValueError, match="dilate must be >= 0"):
        get_inpainter("mask-fill", dilate=-1)
