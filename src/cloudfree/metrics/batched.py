"""Batched metrics in torch, for validation during training: any device, no host sync.

:func:`batched_metrics` returns, for each key of :data:`cloudfree.metrics.patch.METRIC_KEYS`,
a (B,) tensor with the value of every patch, using the definitions of
:func:`cloudfree.metrics.compute` (same region split, same NaN for empty areas, same spectral
angle convention). Inputs are reflectance (DN / 10000). Nothing here calls ``.item()`` or
checks values (which would force a device sync): NaN inputs simply give NaN metrics.

Aggregation is separate: ``cloudfree.train.validate`` sums the defined values and their
counts on the device, and :class:`cloudfree.metrics.mean.NanMean` divides them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cloudfree.bands import NUM_S2_BANDS
from cloudfree.metrics.patch import METRIC_KEYS
from cloudfree.metrics.ssim import ssim_torch


def spectral_angle_torch(a: Tensor, b: Tensor, dim: int = 1) -> Tensor:
    """Spectral angle in degrees between spectra along ``dim`` (convention of ``patch``).

    ``2 atan2(|u - v|, |u + v|)`` of the unit spectra u, v; a zero spectrum stays the zero
    vector, so zero vs nonzero gives 90 degrees and zero vs zero gives 0.

    Returns:
        The angles, with ``dim`` removed, in [0, 180].
    """
    na = torch.linalg.vector_norm(a, dim=dim, keepdim=True)
    nb = torch.linalg.vector_norm(b, dim=dim, keepdim=True)
    u = a / torch.where(na > 0, na, torch.ones_like(na))
    v = b / torch.where(nb > 0, nb, torch.ones_like(nb))
    diff = torch.linalg.vector_norm(u - v, dim=dim)
    summ = torch.linalg.vector_norm(u + v, dim=dim)
    return torch.rad2deg(2.0 * torch.atan2(diff, summ))


def _check_batch(pred: Tensor, target: Tensor, cloudy: Tensor, mask: Tensor) -> Tensor:
    """Shape checks only (no value checks: they would sync); returns the (B, 1, H, W) mask."""
    for name, x in (("pred", pred), ("target", target), ("cloudy", cloudy)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != NUM_S2_BANDS:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)}, expected (B, {NUM_S2_BANDS}, H, W) "
                "reflectance (DN / 10000)"
            )
        if x.shape != pred.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but pred has {tuple(pred.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name} has dtype {x.dtype}, expected a floating-point tensor")
    b, _, h, w = pred.shape
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape == (b, h, w):
        mask = mask.unsqueeze(1)
    elif not (mask.ndim == 4 and mask.shape == (b, 1, h, w)):
        raise ValueError(
            f"mask has shape {tuple(mask.shape)}, expected ({b}, {h}, {w}) or ({b}, 1, {h}, {w}) "
            "(nonzero = cloud or shadow)"
        )
    return mask.to(device=pred.device) != 0


def _masked_mean(num: Tensor, count: Tensor) -> Tensor:
    """num / count, NaN where count == 0 (an empty area has no mean)."""
    nan = torch.full_like(num, float("nan"))
    return torch.where(count > 0, num / count.clamp_min(1), nan)


@torch.no_grad()
def batched_metrics(
    pred: Tensor, target: Tensor, cloudy: Tensor, mask: Tensor
) -> dict[str, Tensor]:
    """Per-patch metrics of a batch, same keys and definitions as ``cloudfree.metrics.compute``.

    Args:
        pred: (B, 13, H, W) prediction, reflectance (DN / 10000), float32 or float64, any device.
        target: (B, 13, H, W) cloud-free target, reflectance.
        cloudy: (B, 13, H, W) cloudy input, reflectance.
        mask: (B, H, W) or (B, 1, H, W), any dtype; nonzero = cloud or shadow.

    Returns:
        ``{key: (B,) tensor}`` for every key of ``METRIC_KEYS``, in ``pred``'s dtype and device.

    Raises:
        ValueError: wrong shapes or non-floating images.
    """
    masked = _check_batch(pred, target, cloudy, mask)
    b, c, h, w = pred.shape
    m = masked.to(pred.dtype)  # (B, 1, H, W)
    clear = 1.0 - m
    dims = (1, 2, 3)
    n_mask = m.sum(dims)  # (B,)
    n_clear = clear.sum(dims)

    err_t = pred - target
    err_i = pred - cloudy
    sam_t = spectral_angle_torch(target, pred)  # (B, H, W)
    sam_i = spectral_angle_torch(cloudy, pred)
    rmse = err_t.square().mean(dims).sqrt()
    out = {
        "mae": err_t.abs().mean(dims),
        "rmse": rmse,
        # 20 log10(1 / rmse) with peak 1; rmse == 0 gives +inf like the per-patch version.
        "psnr": -20.0 * torch.log10(rmse),
        "sam": sam_t.mean((1, 2)),
        "ssim": ssim_torch(pred, target),
        "mae_reprod": _masked_mean((clear * err_i.abs()).sum(dims), c * n_clear),
        "mae_recon": _masked_mean((m * err_t.abs()).sum(dims), c * n_mask),
        "sam_reprod": _masked_mean((clear[:, 0] * sam_i).sum((1, 2)), n_clear),
        "sam_recon": _masked_mean((m[:, 0] * sam_t).sum((1, 2)), n_mask),
        "rmse_reprod": _masked_mean((clear * err_i.square()).sum(dims), c * n_clear).sqrt(),
        "rmse_recon": _masked_mean((m * err_t.square()).sum(dims), c * n_mask).sqrt(),
        "cloud_fraction": n_mask / (h * w),
    }
    return {k: out[k] for k in METRIC_KEYS}
