"""Batched torch metrics agree with the per-patch float64 ones (and so with scikit-image)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.data.bands import REFLECTANCE, S2_DN_PER_REFLECTANCE
from cloudfree.metrics import (
    METRIC_KEYS,
    MetricMeter,
    aggregate,
    batched_metrics,
    compute,
    nanmean_metrics,
    spectral_angle,
    spectral_angle_torch,
)


def _batch(seed: int, h: int = 24, w: int = 20, b: int = 4) -> tuple[np.ndarray, ...]:
    """Random batch; patch 1 has no cloud (empty recon), patch 2 is all cloud (empty reprod)."""
    rng = np.random.default_rng(seed)
    target = rng.random((b, 13, h, w))
    pred = np.clip(target + 0.1 * rng.standard_normal(target.shape), 0, 1)
    cloudy = rng.random((b, 13, h, w))
    mask = rng.integers(0, 3, size=(b, h, w)).astype(np.uint8)
    mask[1] = 0
    mask[2] = 2
    pred[3, :, :2] = 0.0  # zero spectra
    target[3, :, 1:3] = 0.0
    return pred, target, cloudy, mask


def _assert_matches_per_patch(
    got: dict[str, torch.Tensor], arrays: tuple[np.ndarray, ...], tol: float
) -> None:
    pred, target, cloudy, mask = arrays
    assert tuple(got) == METRIC_KEYS
    for j in range(pred.shape[0]):
        ref = compute(pred[j], target[j], cloudy[j], mask[j])
        for key in METRIC_KEYS:
            value = got[key][j].item()
            if math.isnan(ref[key]):
                assert math.isnan(value), (j, key)
            else:
                assert value == pytest.approx(ref[key], rel=tol, abs=tol), (j, key)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_batched_equals_per_patch(dtype: torch.dtype, tol: float) -> None:
    arrays = _batch(0)
    tensors = [torch.tensor(a, dtype=dtype) for a in arrays[:3]]
    got = batched_metrics(*tensors, torch.tensor(arrays[3]))
    for key, v in got.items():
        assert v.shape == (4,) and v.dtype == dtype, key
    _assert_matches_per_patch(got, arrays, tol)
    # The empty areas of patches 1 and 2 are NaN, the rest finite.
    assert math.isnan(got["mae_recon"][1]) and math.isnan(got["sam_recon"][1])
    assert math.isnan(got["mae_reprod"][2]) and math.isnan(got["sam_reprod"][2])
    assert torch.isfinite(got["sam"]).all() and torch.isfinite(got["ssim"]).all()


def test_mask_layouts_and_dtypes_agree() -> None:
    pred, target, cloudy, mask = (torch.tensor(a) for a in _batch(1))
    ref = batched_metrics(pred, target, cloudy, mask)
    for other in (mask[:, None], mask != 0, -(mask != 0).double()):
        got = batched_metrics(pred, target, cloudy, other)
        for key in METRIC_KEYS:
            torch.testing.assert_close(got[key], ref[key], equal_nan=True, rtol=0, atol=0)


def test_spectral_angle_torch_matches_numpy_and_conventions() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random((13, 50)) - 0.2, rng.random((13, 50))
    a[:, 0] = 0.0  # zero vs nonzero: 90
    a[:, 1] = b[:, 1] = 0.0  # zero vs zero: 0
    b[:, 2] = -a[:, 2]  # opposite: 180
    got = spectral_angle_torch(torch.tensor(a), torch.tensor(b), dim=0).numpy()
    np.testing.assert_allclose(got, spectral_angle(a, b), rtol=0, atol=1e-9)
    np.testing.assert_allclose(got[:3], [90.0, 0.0, 180.0], atol=1e-9)


def test_small_patches_give_nan_ssim_only() -> None:
    pred, target, cloudy, mask = (torch.tensor(a) for a in _batch(3, h=8, w=30))
    got = batched_metrics(pred, target, cloudy, mask)
    assert torch.isnan(got["ssim"]).all()
    assert torch.isfinite(got["mae"]).all()


def test_no_gradient_and_no_side_effects() -> None:
    pred, target, cloudy, mask = (torch.tensor(a) for a in _batch(4))
    p = pred.clone().requires_grad_(True)
    got = batched_metrics(p, target, cloudy, mask)
    assert not any(v.requires_grad for v in got.values())
    torch.testing.assert_close(p.detach(), pred)


def test_shape_errors() -> None:
    pred, target, cloudy, mask = (torch.tensor(a) for a in _batch(5))
    with pytest.raises(ValueError, match="cloudy has shape"):
        batched_metrics(pred, target, cloudy[:, :12], mask)
    with pytest.raises(ValueError, match="target has shape"):
        batched_metrics(pred, target[:1], cloudy, mask)
    with pytest.raises(ValueError, match="mask has shape"):
        batched_metrics(pred, target, cloudy, mask[:1])
    with pytest.raises(ValueError, match=r"\(B, 13, H, W\)"):
        batched_metrics(pred[0], target[0], cloudy[0], mask[0])
    with pytest.raises(ValueError, match="dtype"):
        batched_metrics(pred, (target * 10000).long(), cloudy, mask)


def test_aggregation_skips_nan() -> None:
    arrays = _batch(6)
    tensors = [torch.tensor(a) for a in arrays]
    got = batched_metrics(*tensors)
    means = nanmean_metrics(got)
    rows = [compute(*(a[j] for a in arrays)) for j in range(4)]
    expected = aggregate(rows)
    for key in METRIC_KEYS:
        assert means[key].ndim == 0
        assert means[key].item() == pytest.approx(expected[key], rel=1e-9)

    meter = MetricMeter()
    meter.update(batched_metrics(*(t[:2] for t in tensors)))  # two batches of two
    meter.update(batched_metrics(*(t[2:] for t in tensors)))
    assert meter.patches == 4
    summary = meter.compute()
    for key in METRIC_KEYS:
        assert summary[key] == pytest.approx(expected[key], rel=1e-9)
    meter.reset()
    assert meter.patches == 0 and meter.compute() == {}


def test_all_nan_key_stays_nan() -> None:
    pred, target, cloudy, mask = (torch.tensor(a) for a in _batch(7))
    got = batched_metrics(pred, target, cloudy, torch.zeros_like(mask))
    assert math.isnan(nanmean_metrics(got)["mae_recon"].item())
    meter = MetricMeter()
    meter.update(got)
    assert math.isnan(meter.compute()["mae_recon"])


def test_real_pair_batched_equals_per_patch(sen12mscr_root: Path) -> None:
    from cloudfree.data.io import read_raster

    lo, hi = REFLECTANCE.s2_clip
    cloudy, _ = read_raster(
        sen12mscr_root
        / "ROIs1970_fall_s2_cloudy/s2_cloudy_136/ROIs1970_fall_s2_cloudy_136_p100.tif"
    )
    target, _ = read_raster(
        sen12mscr_root / "ROIs1970_fall_s2/s2_136/ROIs1970_fall_s2_136_p100.tif"
    )
    cloudy = np.clip(cloudy, lo, hi)[None] / S2_DN_PER_REFLECTANCE
    target = np.clip(target, lo, hi)[None] / S2_DN_PER_REFLECTANCE
    mask = (cloudy[:, 1:4].mean(axis=1) > 0.2).astype(np.uint8)
    arrays = (cloudy, target, cloudy, mask)
    got = batched_metrics(*(torch.tensor(a, dtype=torch.float32) for a in arrays))
    assert got["mae_reprod"].item() == 0.0 and got["sam_reprod"].item() == 0.0
    _assert_matches_per_patch(got, arrays, 1e-4)
