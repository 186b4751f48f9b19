"""The classical fills against values worked by hand: ramps, constants, pull-push averages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloudfree.inpaint import inpaint
from cloudfree.inpaint.classical import push_pull


def _ramp(size: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 13-band linear ramp in DN, a 7000 DN 'cloud' square over it, its mask."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    clear = np.stack([600 + 20 * (k + 1) * (xx + 0.5 * yy) / size for k in range(13)])
    mask = np.zeros((size, size), np.uint8)
    mask[16:30, 18:32] = 1
    cloudy = np.where(mask > 0, 7000.0, clear).astype(np.float32)
    return clear, cloudy, mask


def test_biharmonic_reproduces_a_linear_ramp() -> None:
    # A linear function is biharmonic (its Laplacian is 0): the fill must be the ramp itself.
    clear, cloudy, mask = _ramp()
    out = inpaint(cloudy, mask, "biharmonic")
    m = mask > 0
    np.testing.assert_allclose(out[:, m], clear[:, m], atol=0.05)


@pytest.mark.parametrize(("method", "tol"), [("mask-fill", 8.0), ("push-pull", 25.0)])
def test_fills_follow_a_ramp_far_closer_than_the_cloud(method: str, tol: float) -> None:
    clear, cloudy, mask = _ramp()
    out = inpaint(cloudy, mask, method)
    m = mask > 0
    err = np.abs(out[:, m] - clear[:, m])
    assert err.mean() < tol  # DN; the cloud was ~6000 DN off
    assert err.max() < 0.02 * np.abs(7000 - clear[:, m]).min()


def test_push_pull_fills_with_the_mean_of_the_known_pixels_of_its_cell() -> None:
    # 2 x 2, one unknown: pull gives the 1 x 1 mean of the 3 known values; push puts it back.
    x = np.array([[[10.0, 20.0], [30.0, 999.0]]], dtype=np.float32)[None]  # (1, 1, 2, 2)
    known = np.array([[[True, True], [True, False]]])
    out = push_pull(x, known)
    np.testing.assert_allclose(out[0, 0], [[10, 20], [30, 20]])  # (10 + 20 + 30) / 3


def test_push_pull_of_a_constant_is_the_constant_everywhere() -> None:
    x = np.full((2, 3, 37, 23), 512.0, dtype=np.float32)  # odd sizes: edge cells
    known = np.zeros((2, 37, 23), bool)
    known[0, 5, 7] = True  # a single known pixel
    known[1, ::9, ::4] = True
    out = push_pull(x, known)
    np.testing.assert_allclose(out, 512.0, rtol=1e-6)


def test_push_pull_is_local_where_context_is_dense() -> None:
    # Two flat halves; a small hole on the left is filled from the left, not the global mean.
    x = np.zeros((1, 1, 64, 64), np.float32)
    x[..., 32:] = 1000.0
    known = np.ones((1, 64, 64), bool)
    known[0, 30:34, 8:12] = False
    out = push_pull(x, known)
    assert np.abs(out[0, 0, 30:34, 8:12]).max() < 1.0


@pytest.mark.parametrize("method", ["mask-fill", "biharmonic", "push-pull"])
def test_real_heavy_clouds_recon_beats_the_cloudy_input(method: str, sen12mscr_root: Path) -> None:
    """On the real cumulus of ROIs1970_fall 136, every patch with clear pixels left improves."""
    from cloudfree.io import read_raster
    from cloudfree.masks import cloud_shadow_mask
    from cloudfree.metrics import compute

    files = sorted((sen12mscr_root / "ROIs1970_fall_s2_cloudy" / "s2_cloudy_136").glob("*.tif"))
    better = 0
    window = (64, 64, 128, 128)  # centre crops: the same clouds, a quarter of the work
    for f in files[:6]:
        cloudy = read_raster(f, window=window)[0]
        target = read_raster(str(f).replace("s2_cloudy", "s2"), window=window)[0]
        mask = cloud_shadow_mask(cloudy)
        if mask.all():
            continue
        out = inpaint(cloudy, mask, method)
        r_in = compute(cloudy / 1e4, target / 1e4, cloudy / 1e4, mask)
        r_out = compute(out / 1e4, target / 1e4, cloudy / 1e4, mask)
        assert r_out["mae_reprod"] == 0.0  # clear pixels untouched
        better += r_out["mae_recon"] < r_in["mae_recon"]
    assert better >= 3
