"""Image-quality metrics of one patch, as in Table 1 of DSen2-CR (spec section 6).

Everything here works on **reflectance**, i.e. S2 DN / 10000 (``S2_DN_PER_REFLECTANCE``), the
scale in which the paper reports MAE and RMSE and in which PSNR has peak 1. The network scale
of the paper's code (DN / 2000) gives MAE and RMSE 5x larger (the "metrics 5x off the paper" of
ameraner/dsen2-cr issue #13): convert predictions with ``value * 2000 / 10000`` first.

Keys of :func:`compute` (P prediction, T target, I cloudy input, m = mask != 0):

- ``mae``: mean |P - T| over bands and pixels (the "target" column)
- ``rmse``: sqrt(mean (P - T)^2) (not the sqrt(norm / N) of the upstream torch port)
- ``psnr``: 20 log10(1 / rmse), dB, peak 1; +inf when P == T
- ``sam``: spectral angle between T and P per pixel, degrees, averaged over pixels
- ``ssim``: ``tf.image.ssim`` over the whole patch (:mod:`cloudfree.metrics.ssim`); NaN if
  H or W < 11; ``compute(..., ssim_padding="zero")``: the leaderboard's zero-padded variant
- ``mae_reprod``: sum (1-m)|P - I| / (13 sum (1-m)): clear area against the cloudy INPUT
- ``mae_recon``: sum m|P - T| / (13 sum m): cloud/shadow area against the target
- ``sam_reprod``: SAM(I, P) averaged over clear pixels
- ``sam_recon``: SAM(T, P) averaged over cloud/shadow pixels
- ``rmse_reprod``: sqrt(sum (1-m)(P - I)^2 / (13 sum (1-m))) (extra)
- ``rmse_recon``: sqrt(sum m(P - T)^2 / (13 sum m)) (extra)
- ``cloud_fraction``: sum m / (H W), in [0, 1] (extra)

The ``*_reprod`` keys are NaN when the patch has no clear pixel (mask all nonzero) and the
``*_recon`` keys are NaN when it has no cloud/shadow pixel: an undefined mean, never a silent 0.
Aggregate patches with :func:`aggregate` (NaN-skipping mean), as the paper's per-image rows.

Spectral angle convention (the paper's arccos formula gives NaN for a zero spectrum): the
angle is computed as ``2 atan2(|u - v|, |u + v|)`` with u = t/|t| and v = p/|p|, which equals
``arccos(clip(<t,p> / (|t||p|), -1, 1))`` for nonzero spectra but is exact near 0 and 180
degrees (identical spectra give exactly 0). A zero spectrum is normalised to the zero vector,
so a zero spectrum against a nonzero one gives 90 degrees and two zero spectra give 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import numpy as np

from cloudfree.bands import NUM_S2_BANDS
from cloudfree.metrics.mean import NanMean
from cloudfree.metrics.ssim import ssim_numpy

#: The keys every metrics dict has, in report order.
METRIC_KEYS: Final[tuple[str, ...]] = (
    "mae",
    "rmse",
    "psnr",
    "sam",
    "ssim",
    "mae_reprod",
    "mae_recon",
    "sam_reprod",
    "sam_recon",
    "rmse_reprod",
    "rmse_recon",
    "cloud_fraction",
)

#: Largest plausible reflectance of a data array: uint16 DN / 10000 <= 6.55. A larger value
#: means DN were passed (divide by 10000 first).
_MAX_REFLECTANCE: Final[float] = 10.0


def _to_numpy(name: str, x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}"
        ) from e


def _check_patch(
    pred: Any, target: Any, cloudy: Any, mask: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate and convert to float64 images and a boolean (H, W) mask."""
    images: list[np.ndarray] = []
    for name, x in (("pred", pred), ("target", target), ("cloudy", cloudy)):
        a = _to_numpy(name, x)
        if a.ndim != 3 or a.shape[0] != NUM_S2_BANDS:
            raise ValueError(
                f"{name} has shape {a.shape}, expected ({NUM_S2_BANDS}, H, W) reflectance "
                "(one patch, bands first)"
            )
        if images and a.shape != images[0].shape:
            raise ValueError(f"{name} has shape {a.shape} but pred has {images[0].shape}")
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise ValueError(f"{name} has dtype {a.dtype}, expected real numbers")
        a = a.astype(np.float64, copy=False)
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values; metrics need finite inputs")
        if name != "pred" and np.abs(a).max(initial=0.0) > _MAX_REFLECTANCE:
            raise ValueError(
                f"{name} has values up to {np.abs(a).max():.4g}: it looks like DN, but metrics "
                "take reflectance; divide by 10000 (cloudfree.bands.S2_DN_PER_REFLECTANCE)"
            )
        images.append(a)
    _, h, w = images[0].shape
    m = _to_numpy("mask", mask)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.shape != (h, w):
        raise ValueError(
            f"mask has shape {m.shape}, expected ({h}, {w}) or (1, {h}, {w}) "
            "(nonzero = cloud or shadow)"
        )
    if np.issubdtype(m.dtype, np.floating) and not np.isfinite(m).all():
        raise ValueError("mask contains NaN or infinite values")
    return images[0], images[1], images[2], m != 0


def spectral_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spectral angle in degrees between the spectra of two (C, ...) arrays, per pixel.

    See the module docstring for the zero-spectrum convention (0 vs nonzero: 90, 0 vs 0: 0).

    Returns:
        float64 array of shape ``a.shape[1:]``, values in [0, 180].
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.sqrt((a * a).sum(axis=0))
    nb = np.sqrt((b * b).sum(axis=0))
    u = a / np.where(na > 0, na, 1.0)
    v = b / np.where(nb > 0, nb, 1.0)
    diff = np.sqrt(((u - v) ** 2).sum(axis=0))
    summ = np.sqrt(((u + v) ** 2).sum(axis=0))
    return np.degrees(2.0 * np.arctan2(diff, summ))


def psnr_of_rmse(rmse: float) -> float:
    """20 log10(1 / rmse), dB (peak 1: reflectance); +inf for 0, NaN for NaN."""
    if np.isnan(rmse):
        return float("nan")
    with np.errstate(divide="ignore"):
        return float(20.0 * np.log10(1.0 / rmse)) if rmse > 0 else float("inf")


def compute(
    pred: Any, target: Any, cloudy: Any, mask: Any, ssim_padding: str = "valid"
) -> dict[str, float]:
    """All metrics of one patch (keys and definitions in the module docstring).

    Args:
        pred: (13, H, W) prediction, reflectance (DN / 10000); numpy array or CPU/GPU tensor.
        target: (13, H, W) cloud-free target, reflectance.
        cloudy: (13, H, W) cloudy input the prediction was made from, reflectance.
        mask: (H, W) or (1, H, W) cloud/shadow mask, any dtype; nonzero (cloud 1, shadow 2, or
            the upstream -1) = masked.
        ssim_padding: the SSIM's border handling, "valid" (the paper's ``tf.image.ssim``) or
            "zero" (the leaderboard's), :func:`cloudfree.metrics.ssim.ssim_numpy`.

    Returns:
        Dict of Python floats with the keys ``METRIC_KEYS``, computed in float64.

    Raises:
        ValueError: wrong shapes, non-finite values, or a target/cloudy array in DN.
    """
    p, t, i, m = _check_patch(pred, target, cloudy, mask)
    c = p.shape[0]
    n_mask = int(m.sum())
    n_clear = m.size - n_mask
    nan = float("nan")

    err_t = p - t
    rmse = float(np.sqrt(np.mean(err_t**2)))
    sam_t = spectral_angle(t, p)  # (H, W)
    out = {
        "mae": float(np.mean(np.abs(err_t))),
        "rmse": rmse,
        "psnr": psnr_of_rmse(rmse),
        "sam": float(sam_t.mean()),
        "ssim": ssim_numpy(p, t, padding=ssim_padding),
    }
    if n_clear > 0:
        err_i = (p - i)[:, ~m]  # (13, n_clear)
        out["mae_reprod"] = float(np.abs(err_i).sum() / (c * n_clear))
        out["rmse_reprod"] = float(np.sqrt((err_i**2).sum() / (c * n_clear)))
        out["sam_reprod"] = float(spectral_angle(i[:, ~m], p[:, ~m]).mean())
    else:
        out["mae_reprod"] = out["rmse_reprod"] = out["sam_reprod"] = nan
    if n_mask > 0:
        err_m = err_t[:, m]  # (13, n_mask)
        out["mae_recon"] = float(np.abs(err_m).sum() / (c * n_mask))
        out["rmse_recon"] = float(np.sqrt((err_m**2).sum() / (c * n_mask)))
        out["sam_recon"] = float(sam_t[m].mean())
    else:
        out["mae_recon"] = out["rmse_recon"] = out["sam_recon"] = nan
    out["cloud_fraction"] = n_mask / m.size
    return {k: out[k] for k in METRIC_KEYS}


def aggregate(rows: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of per-patch metrics over patches, skipping NaN (undefined areas) per key.

    A key that is NaN in every row (e.g. ``mae_recon`` over cloud-free patches only) stays NaN.
    ``psnr`` of +inf (a perfect patch) makes the mean +inf, as it would in the paper's code.

    Args:
        rows: dicts as returned by :func:`compute`.

    Returns:
        ``{key: mean}`` for every key of the first row, plus ``"count"`` (number of rows).
    """
    rows = list(rows)
    if not rows:
        raise ValueError("aggregate needs at least one row of metrics")
    acc = NanMean(rows[0])
    for row in rows:
        acc.add(row)
    return {**acc.means(), "count": float(acc.count)}
