"""DSen2-CR value preprocessing: NaN filling and S1/S2 normalisation (spec section 2).

Pure numpy on ``(C, H, W)`` arrays. The constants (clip ranges, the /2000 scale, ``max_val_sar``)
come from :mod:`cloudfree.bands` through a :class:`~cloudfree.bands.Scaling`.
"""

from __future__ import annotations

import numpy as np

from cloudfree.bands import Scaling


def fill_nan(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Replace missing values (NaN, and +/-inf) by the mean of the finite values of the whole
    array (all bands).

    The DSen2-CR code fills NaN on every (cropped) read
    (``image[np.isnan(image)] = np.nanmean(image)`` in ``dataIO.py``, spec section 2). There,
    one -inf in the patch (10 log10 of a zero backscatter) makes that mean -inf, so every NaN
    became the darkest value; -inf and +inf together make it NaN, and the loss NaN. Here an
    infinite value is missing like a NaN, as :func:`cloudfree.data.sentinel.scene.s1_coverage`
    treats it in whole-scene prediction, and the mean is taken over the finite values only:
    the same as the original whenever the patch is finite apart from NaN.
    Integer arrays cannot hold either and are returned unchanged (not copied).

    An array without any finite value has no mean; it is filled with 0 instead, and every value
    still counts as filled, so callers can see the patch was empty.

    Args:
        x: any shape, typically ``(C, H, W)``; float or integer.

    Returns:
        ``(filled, n_filled)``: a float copy of ``x`` with only finite values (same dtype) for
        float input, and how many values were replaced.
    """
    if not np.issubdtype(x.dtype, np.floating):
        return x, 0
    missing = ~np.isfinite(x)
    n = int(missing.sum())
    out = x.copy()
    if n == 0:
        return out, 0
    # Accumulate in float64: a float32 running sum over 13x256x256 values loses digits.
    fill = 0.0 if n == x.size else float(x[~missing].mean(dtype=np.float64))
    out[missing] = fill
    return out, n


def normalize_s2(dn: np.ndarray, scaling: Scaling) -> np.ndarray:
    """Sentinel-2 digital numbers -> network values.

    ``clip(dn, *scaling.s2_clip) / scaling.s2_scale``. DSEN2CR: [0, 10000] DN / 2000 -> [0, 5];
    REFLECTANCE: / 10000 -> [0, 1].

    Args:
        dn: L1C DN (TOA reflectance x 10000), any shape, any real dtype.
        scaling: the protocol (``bands.DSEN2CR``, ``bands.REFLECTANCE`` or ``get_scaling(name)``).

    Returns:
        float32 array of the same shape.
    """
    lo, hi = scaling.s2_clip
    out = np.clip(dn.astype(np.float32), lo, hi)
    out /= np.float32(scaling.s2_scale)
    return out


def denormalize_s2(x: np.ndarray, scaling: Scaling) -> np.ndarray:
    """Network values -> Sentinel-2 DN (``x * scaling.s2_scale``), float32, not clipped or rounded."""
    return (np.asarray(x, dtype=np.float32) * np.float32(scaling.s2_scale)).astype(np.float32)


def _check_s1_bands(x: np.ndarray, scaling: Scaling) -> None:
    if x.ndim < 1 or x.shape[0] != len(scaling.s1_clip):
        raise ValueError(
            f"S1 array must have {len(scaling.s1_clip)} bands (VV, VH) on its first axis, "
            f"got shape {x.shape}"
        )


def normalize_s1(db: np.ndarray, scaling: Scaling) -> np.ndarray:
    """Sentinel-1 backscatter (dB) -> network values, band by band.

    For band ``i`` with ``(lo, hi) = scaling.s1_clip[i]``:
    ``(clip(db, lo, hi) - lo) / (hi - lo) * scaling.s1_max``. DSEN2CR: VV [-25, 0] and
    VH [-32.5, 0] dB both -> [0, 2]; REFLECTANCE: both [-25, 0] -> [0, 1].

    Args:
        db: ``(2, ...)`` sigma0 in dB, bands in ``S1_BANDS`` order (VV, VH).
        scaling: the protocol.

    Returns:
        float32 array of the same shape.

    Raises:
        ValueError: the first axis does not have one entry per S1 band of the protocol.
    """
    _check_s1_bands(db, scaling)
    out = np.empty(db.shape, dtype=np.float32)
    for i, (lo, hi) in enumerate(scaling.s1_clip):
        band = np.clip(db[i].astype(np.float32), lo, hi)
        out[i] = (band - np.float32(lo)) / np.float32(hi - lo) * np.float32(scaling.s1_max)
    return out


def denormalize_s1(x: np.ndarray, scaling: Scaling) -> np.ndarray:
    """Network S1 values -> dB, band by band: the inverse of :func:`normalize_s1` on its range.

    ``x / s1_max * (hi - lo) + lo``; values clipped by ``normalize_s1`` stay at the clip limits.

    Args:
        x: ``(2, ...)`` network values, VV then VH.
        scaling: the protocol.

    Returns:
        float32 array of the same shape, dB.

    Raises:
        ValueError: the first axis does not have one entry per S1 band of the protocol.
    """
    _check_s1_bands(x, scaling)
    out = np.empty(x.shape, dtype=np.float32)
    for i, (lo, hi) in enumerate(scaling.s1_clip):
        out[i] = x[i].astype(np.float32) / np.float32(scaling.s1_max) * np.float32(hi - lo) + lo
    return out
