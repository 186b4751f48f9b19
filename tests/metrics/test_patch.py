"""Per-patch metrics against scikit-image and hand-worked cases (spec section 6)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cloudfree.bands import REFLECTANCE, S2_DN_PER_REFLECTANCE
from cloudfree.metrics import METRIC_KEYS, aggregate, compute, spectral_angle
from cloudfree.metrics.ssim import ssim_numpy

REQUIRED_KEYS = {
    "mae",
    "rmse",
    "psnr",
    "sam",
    "ssim",
    "mae_reprod",
    "mae_recon",
    "sam_reprod",
    "sam_recon",
}


def _skimage_ssim(x: np.ndarray, y: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    # The settings that reproduce tf.image.ssim (stack.md): 11x11 Gaussian (truncate 3.5 *
    # sigma 1.5 -> radius 5), population covariance, mean over the pixels 5 px from the border.
    return float(
        structural_similarity(
            x, y, channel_axis=0, data_range=1.0, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False,
        )
    )  # fmt: skip


def _random_patch(seed: int, h: int = 48, w: int = 40) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    target = rng.random((13, h, w))
    pred = np.clip(target + 0.1 * rng.standard_normal(target.shape), 0, 1)
    cloudy = rng.random((13, h, w))
    mask = rng.integers(0, 3, size=(h, w)).astype(np.uint8)  # 0 clear, 1 cloud, 2 shadow
    return pred, target, cloudy, mask


def test_keys() -> None:
    out = compute(*_random_patch(0))
    assert set(out) >= REQUIRED_KEYS
    assert tuple(out) == METRIC_KEYS
    assert all(isinstance(v, float) for v in out.values())


# --- spectral angle ---------------------------------------------------------------------------


def _spectra(*vectors: list[float]) -> np.ndarray:
    """(13, k) array: each vector padded with zeros to 13 bands, one pixel per column."""
    out = np.zeros((13, len(vectors)))
    for j, v in enumerate(vectors):
        out[: len(v), j] = v
    return out


def test_sam_hand_worked() -> None:
    t = _spectra([1, 0], [0.3, 0.3], [1, 0], [0.2, 0.4, 0.1], [0, 0], [0, 0], [1, 2])
    p = _spectra([0, 1], [0.6, 0.6], [1, 1], [0.2, 0.4, 0.1], [0.5, 0.1], [0, 0], [-1, -2])
    # orthogonal 90, parallel (scaled) 0, a 45-degree pair, identical 0,
    # zero vs nonzero 90 (convention), zero vs zero 0 (convention), opposite 180.
    expected = [90.0, 0.0, 45.0, 0.0, 90.0, 0.0, 180.0]
    np.testing.assert_allclose(spectral_angle(t, p), expected, rtol=0, atol=1e-12)
    assert spectral_angle(t, p)[3] == 0.0  # identical spectra: exactly 0, not arccos noise


def test_sam_equals_arccos_formula_on_random_spectra() -> None:
    rng = np.random.default_rng(1)
    t, p = rng.random((13, 500)), rng.random((13, 500)) - 0.3
    cos = (t * p).sum(0) / (np.linalg.norm(t, axis=0) * np.linalg.norm(p, axis=0))
    np.testing.assert_allclose(
        spectral_angle(t, p), np.degrees(np.arccos(np.clip(cos, -1, 1))), atol=1e-9
    )


# --- the area split, worked by hand ---------------------------------------------------------


def test_area_split_hand_worked() -> None:
    """13 x 2 x 2 patch, pixel (0, 0) masked (shadow, 2); e0, e1, e2 = bands B1, B2, B3.

    T = 0.2 e0 everywhere. I = 0.6 in all bands at the masked pixel, 0.2 e0 + 0.2 e1 elsewhere.
    P = 0.2 e1 at the masked pixel, = I at (0, 1) and (1, 0), = I + 0.1 e2 at (1, 1).
    """
    e = np.eye(13)
    t = np.zeros((13, 2, 2)) + (0.2 * e[0])[:, None, None]
    i = np.zeros((13, 2, 2)) + (0.2 * e[0] + 0.2 * e[1])[:, None, None]
    i[:, 0, 0] = 0.6
    p = i.copy()
    p[:, 0, 0] = 0.2 * e[1]
    p[:, 1, 1] += 0.1 * e[2]
    mask = np.array([[2, 0], [0, 0]], dtype=np.uint8)
    out = compute(p, t, i, mask)

    # recon: masked pixel vs T: |P - T| = 0.2 in B1 and in B2 -> 0.4 / 13; P is orthogonal to T.
    assert out["mae_recon"] == pytest.approx(0.4 / 13, abs=1e-15)
    assert out["rmse_recon"] == pytest.approx(math.sqrt(0.08 / 13), abs=1e-15)
    assert out["sam_recon"] == pytest.approx(90.0, abs=1e-12)
    # reprod: the 3 clear pixels vs I (NOT vs T): only (1, 1) differs, by 0.1 in B3.
    assert out["mae_reprod"] == pytest.approx(0.1 / (13 * 3), abs=1e-15)
    assert out["rmse_reprod"] == pytest.approx(math.sqrt(0.01 / (13 * 3)), abs=1e-15)
    angle_11 = math.degrees(math.acos(0.08 / (math.sqrt(0.08) * math.sqrt(0.09))))  # 19.47
    assert out["sam_reprod"] == pytest.approx(angle_11 / 3, abs=1e-9)
    # target: all 4 pixels vs T. Per-pixel sum |P - T|: 0.4, 0.2, 0.2, 0.2 + 0.1.
    assert out["mae"] == pytest.approx(1.1 / 52, abs=1e-15)
    rmse = math.sqrt((0.08 + 0.04 + 0.04 + 0.05) / 52)
    assert out["rmse"] == pytest.approx(rmse, abs=1e-15)
    assert out["psnr"] == pytest.approx(20 * math.log10(1 / rmse), abs=1e-12)
    # SAM vs T: 90 (masked), 45, 45, and arccos(0.04 / (0.2 * 0.3)) at (1, 1).
    angle_t11 = math.degrees(math.acos(0.04 / (0.2 * 0.3)))
    assert out["sam"] == pytest.approx((90 + 45 + 45 + angle_t11) / 4, abs=1e-9)
    assert out["cloud_fraction"] == 0.25
    assert math.isnan(out["ssim"])  # 2 x 2 is smaller than the 11 x 11 window
    # The mask is binarised: cloud (1), shadow (2), the upstream -1 and bool agree.
    for other in (mask.astype(bool), np.where(mask > 0, -1.0, 0.0), np.minimum(mask, 1)[None]):
        again = compute(p, t, i, other)
        assert all(again[k] == out[k] or math.isnan(out[k]) for k in out)


def test_empty_areas_give_nan_and_the_rest_stays_finite() -> None:
    pred, target, cloudy, mask = _random_patch(2, 16, 16)
    recon = {k for k in METRIC_KEYS if k.endswith("_recon")}
    reprod = {k for k in METRIC_KEYS if k.endswith("_reprod")}

    clear = compute(pred, target, cloudy, np.zeros_like(mask))
    assert all(math.isnan(clear[k]) for k in recon)
    assert all(math.isfinite(v) for k, v in clear.items() if k not in recon)
    assert clear["cloud_fraction"] == 0.0

    covered = compute(pred, target, cloudy, np.ones_like(mask))
    assert all(math.isnan(covered[k]) for k in reprod)
    assert all(math.isfinite(v) for k, v in covered.items() if k not in reprod)
    assert covered["cloud_fraction"] == 1.0


def test_zero_spectra_give_finite_sam() -> None:
    pred, target, cloudy, mask = _random_patch(3, 16, 16)
    pred[:, :4] = 0.0  # a black prediction stripe
    target[:, 2:6] = 0.0  # overlapping zero target (zero vs zero) and zero vs nonzero
    cloudy[:, 10:] = 0.0
    out = compute(pred, target, cloudy, mask)
    assert all(math.isfinite(out[k]) for k in ("sam", "sam_reprod", "sam_recon"))
    sam = spectral_angle(target, pred)
    assert (sam[2:4] == 0).all() and np.allclose(sam[:2], 90) and np.allclose(sam[4:6], 90)


# --- SSIM and PSNR against scikit-image ------------------------------------------------------


@pytest.mark.parametrize(("seed", "h", "w"), [(4, 11, 11), (5, 48, 40), (6, 64, 64)])
def test_ssim_matches_skimage(seed: int, h: int, w: int) -> None:
    pred, target, cloudy, mask = _random_patch(seed, h, w)
    assert compute(pred, target, cloudy, mask)["ssim"] == pytest.approx(
        _skimage_ssim(pred, target), abs=1e-9
    )
    smooth = target.cumsum(axis=2) / w  # a smooth image, where SSIM is near 1
    assert ssim_numpy(smooth, smooth + 0.01) == pytest.approx(
        _skimage_ssim(smooth, smooth + 0.01), abs=1e-9
    )
    assert ssim_numpy(target, target) == pytest.approx(1.0, abs=1e-12)


def test_ssim_border_rows_enter_the_valid_windows() -> None:
    """TF filters 'VALID' (no padding): row 0 is not a window centre but lies in the window of
    the first valid centre (row 5), so changing it lowers SSIM, exactly as in scikit-image."""
    _, target, _, _ = _random_patch(7, 32, 32)
    other = target.copy()
    other[:, 0, :] = 0.0  # row 0 is inside the window of valid centre row 5
    assert ssim_numpy(target, other) < 1.0
    assert ssim_numpy(target, other) == pytest.approx(_skimage_ssim(target, other), abs=1e-9)


def test_psnr_matches_skimage() -> None:
    from skimage.metrics import peak_signal_noise_ratio

    pred, target, cloudy, mask = _random_patch(8)
    out = compute(pred, target, cloudy, mask)
    assert out["psnr"] == pytest.approx(
        peak_signal_noise_ratio(target, pred, data_range=1.0), abs=1e-9
    )
    assert compute(target, target, cloudy, mask)["psnr"] == math.inf


# --- real SEN12MS-CR data -------------------------------------------------------------------


def _real_pair(root: Path) -> tuple[np.ndarray, np.ndarray]:
    from cloudfree.io import read_raster

    lo, hi = REFLECTANCE.s2_clip
    cloudy, _ = read_raster(
        root / "ROIs1970_fall_s2_cloudy/s2_cloudy_136/ROIs1970_fall_s2_cloudy_136_p100.tif"
    )
    target, _ = read_raster(root / "ROIs1970_fall_s2/s2_136/ROIs1970_fall_s2_136_p100.tif")
    return (
        np.clip(cloudy, lo, hi) / S2_DN_PER_REFLECTANCE,
        np.clip(target, lo, hi) / S2_DN_PER_REFLECTANCE,
    )


def test_real_pair_cloudy_input_as_prediction(sen12mscr_root: Path) -> None:
    from skimage.metrics import peak_signal_noise_ratio

    cloudy, target = _real_pair(sen12mscr_root)
    # Any mask serves for the region split; a brightness threshold on B2-B4 flags the cumulus.
    mask = cloudy[1:4].mean(axis=0) > 0.2
    assert 0.01 < mask.mean() < 0.9
    out = compute(cloudy, target, cloudy, mask)
    assert out["mae_reprod"] == 0.0 and out["rmse_reprod"] == 0.0 and out["sam_reprod"] == 0.0
    assert out["psnr"] == pytest.approx(
        peak_signal_noise_ratio(target, cloudy, data_range=1.0), abs=1e-9
    )
    assert out["ssim"] == pytest.approx(_skimage_ssim(cloudy, target), abs=1e-9)
    assert out["mae"] == pytest.approx(np.abs(cloudy - target).mean(), rel=1e-12)
    # The clouds are bright: inside them the input is far from the target, outside much closer.
    assert out["mae_recon"] > 2 * out["mae"]
    assert 0.0 < out["ssim"] < 1.0 and 0.0 < out["sam"] < 90.0


def test_network_scale_gives_five_times_the_error(sen12mscr_root: Path) -> None:
    """Spec 6, last bullet: the paper reports reflectance (DN / 10000); the code's DN / 2000
    scale inflates MAE and RMSE by 5 (ameraner/dsen2-cr issue #13) and PSNR by 20 log10(5)."""
    cloudy, target = _real_pair(sen12mscr_root)
    pred = 0.5 * (cloudy + target)
    mask = cloudy[1:4].mean(axis=0) > 0.2
    refl = compute(pred, target, cloudy, mask)
    net = compute(*(x * S2_DN_PER_REFLECTANCE / 2000.0 for x in (pred, target, cloudy)), mask)
    for key in ("mae", "rmse", "mae_reprod", "mae_recon", "rmse_recon"):
        assert refl[key] == pytest.approx(0.2 * net[key], rel=1e-12)
    for key in ("sam", "sam_reprod", "sam_recon", "cloud_fraction"):
        assert refl[key] == pytest.approx(net[key], rel=1e-9)
    assert refl["psnr"] - net["psnr"] == pytest.approx(20 * math.log10(5), abs=1e-9)


# --- inputs ----------------------------------------------------------------------------------


def test_accepts_torch_tensors() -> None:
    import torch

    pred, target, cloudy, mask = _random_patch(9, 16, 16)
    ref = compute(pred, target, cloudy, mask)
    p = torch.tensor(pred, requires_grad=True)
    got = compute(p, torch.tensor(target), torch.tensor(cloudy), torch.tensor(mask)[None])
    assert got == pytest.approx(ref, rel=1e-12)


def test_bad_inputs_raise() -> None:
    pred, target, cloudy, mask = _random_patch(10, 16, 16)
    with pytest.raises(ValueError, match=r"pred has shape \(12, 16, 16\)"):
        compute(pred[:12], target, cloudy, mask)
    with pytest.raises(ValueError, match="target has shape"):
        compute(pred, target[:, :8], cloudy, mask)
    with pytest.raises(ValueError, match="mask has shape"):
        compute(pred, target, cloudy, mask[:8])
    with pytest.raises(ValueError, match=r"\(13, H, W\)"):
        compute(pred[None], target[None], cloudy[None], mask[None])
    bad = pred.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="pred contains NaN"):
        compute(bad, target, cloudy, mask)
    with pytest.raises(ValueError, match="looks like DN"):
        compute(pred, target * 10000, cloudy, mask)


def test_aggregate_skips_undefined_values() -> None:
    rows = [
        {"mae": 0.1, "mae_recon": math.nan, "psnr": 20.0},
        {"mae": 0.3, "mae_recon": 0.5, "psnr": 30.0},
        {"mae": 0.2, "mae_recon": math.nan, "psnr": 40.0},
    ]
    out = aggregate(rows)
    assert out == pytest.approx({"mae": 0.2, "mae_recon": 0.5, "psnr": 30.0, "count": 3.0})
    assert math.isnan(aggregate(rows[:1])["mae_recon"])
    with pytest.raises(ValueError):
        aggregate([])


def test_import_is_cheap() -> None:
    """Importing cloudfree.metrics pulls neither scikit-image (a test-only dependency) nor torch."""
    code = "import sys, cloudfree.metrics; print('skimage' in sys.modules, 'torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["False", "False"]
