"""Batched torch metrics agree with the per-patch float64 ones (and so with scikit-image)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.bands import REFLECTANCE, S2_DN_PER_REFLECTANCE
from cloudfree.metrics import (
    METRIC_KEYS,
    NanMean,
    batched_metrics,
    compute,
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


def test_batched_totals_merge_to_the_per_patch_nanmean() -> None:
    """Validation's path: per-batch sums/counts of defined values, merged, then divided."""
    arrays = _batch(6)
    tensors = [torch.tensor(a) for a in arrays]
    rows = [compute(*(a[j] for a in arrays)) for j in range(4)]
    acc = NanMean(METRIC_KEYS)
    for lo, hi in ((0, 2), (2, 4)):  # two batches of two, as two ranks would hold them
        got = batched_metrics(*(t[lo:hi] for t in tensors))
        vals = torch.stack([got[k] for k in METRIC_KEYS])  # (K, B)
        ok = ~torch.isnan(vals)
        acc.add_totals(torch.where(ok, vals, 0.0).sum(1).tolist(), ok.sum(1).tolist(), hi - lo)
    assert acc.count == 4
    means = acc.means()
    for key in METRIC_KEYS:
        # numpy's nanmean of the float64 per-patch values: the independent reference.
        expected = np.nanmean([r[key] for r in rows])
        assert means[key] == pytest.approx(expected, rel=1e-9), key


def test_all_nan_key_stays_nan() -> None:
    pred, target, cloudy, mask = (torch.tensor(a) for a in _batch(7))
    got = batched_metrics(pred, target, cloudy, torch.zeros_like(mask))
    assert torch.isnan(got["mae_recon"]).all()
    acc = NanMean(["mae_recon"])
    for v in got["mae_recon"].tolist():
        acc.add({"mae_recon": v})
    assert math.isnan(acc.means()["mae_recon"])


def test_real_pair_batched_equals_per_patch(sen12mscr_root: Path) -> None:
    from cloudfree.io import read_raster

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
