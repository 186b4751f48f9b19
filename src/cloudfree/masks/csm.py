"""The cloud / cloud-shadow mask (CSM) of DSen2-CR: fast, vectorised, exact.

The algorithm is the one of ``[A] Code/tools/feature_detectors.py`` (Meraner et al. 2020),
transcribed in ``docs/dsen2cr_spec.md`` section 3; :mod:`cloudfree.masks.reference` is
the plain scipy transcription this module must (and is tested to) agree with pixel for pixel.
The image statistics behind the relative shadow thresholds are in :mod:`cloudfree.masks.stats`.

What makes it fast, and why each shortcut gives the reference's result bit for bit:

- Only the 7 bands used are converted, and every element-wise float32 operation is the
  reference's own, in the same order (float32 IEEE arithmetic is deterministic).
- The 5x5 grey closing (scipy ``mode="reflect"``, i.e. ``d c b a | a b c d``) is done as
  separable sliding max then min over ``np.pad(mode="symmetric")`` copies, which is the same
  extension: min and max are exact, so the result is identical.
- The 7x7 zero-filled box mean (``convolve2d(mode="same")``) is a separable sliding sum in
  float32 with a proven error bound; the few pixels whose mean lies within that bound of the
  threshold are recomputed with ``convolve2d`` itself, so no decision can differ.
- The 5x5 median of the {-1, 0} shadow map is a 5x5 box count (see ``_shadow_flags``).
"""

from __future__ import annotations

import numpy as np

from cloudfree.bands import s2_index
from cloudfree.masks.params import (
    CLOUD,
    CSM_BANDS,
    DEFAULT_PARAMS,
    SHADOW,
    CSMParams,
    check_l1c,
    cloud_shadow_index,
    to_reflectance,
)
from cloudfree.masks.stats import ShadowStats

# --------------------------------------------------------------------------- sliding windows


def _slice(a: np.ndarray, start: int, stop: int, axis: int) -> np.ndarray:
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, stop)
    return a[tuple(index)]


def _sliding_extreme(p: np.ndarray, k: int, axis: int, op: np.ufunc) -> np.ndarray:
    """'valid' sliding max/min of width k along axis (output length n - k + 1).

    Sparse table: windows of 1, 2, 4, ... by doubling, then two overlapping power-of-two windows
    cover k (max/min are idempotent). k = 5 costs 3 element-wise operations.
    """
    n_out = p.shape[axis] - k + 1
    w, acc = 1, p
    while 2 * w <= k:
        acc = op(_slice(acc, 0, acc.shape[axis] - w, axis), _slice(acc, w, acc.shape[axis], axis))
        w *= 2
    return op(_slice(acc, 0, n_out, axis), _slice(acc, k - w, k - w + n_out, axis))


def _sliding_sum(p: np.ndarray, k: int, axis: int) -> np.ndarray:
    """'valid' sliding sum of width k along axis: k split into powers of two (7 = 4 + 2 + 1).

    Every output is a sum tree of depth <= ``_sum_depth(k)`` over the k inputs.
    """
    n_out = p.shape[axis] - k + 1
    tables = {1: p}
    w = 1
    while 2 * w <= k:
        prev = tables[w]
        tables[2 * w] = _slice(prev, 0, prev.shape[axis] - w, axis) + _slice(
            prev, w, prev.shape[axis], axis
        )
        w *= 2
    out: np.ndarray | None = None
    offset = 0
    for w in sorted(tables, reverse=True):
        if k - offset >= w:
            part = _slice(tables[w], offset, offset + n_out, axis)
            out = part.copy() if out is None else np.add(out, part, out=out)
            offset += w
    assert out is not None and offset == k
    return out


def _sum_depth(k: int) -> int:
    """Additions on the longest path of ``_sliding_sum``'s tree for width k."""
    return (k.bit_length() - 1) + (bin(k).count("1") - 1)


def _pad_last2(a: np.ndarray, r: int, mode: str) -> np.ndarray:
    width = [(0, 0)] * (a.ndim - 2) + [(r, r), (r, r)]
    return np.pad(a, width, mode=mode)  # type: ignore[call-overload]


# --------------------------------------------------------------------------------- cloud


def _rescale_into(x: np.ndarray, limits: tuple[float, float], out: np.ndarray) -> np.ndarray:
    # (x - a) / (b - a) with Python floats: float32 throughout, as upstream's get_rescaled_data.
    np.subtract(x, limits[0], out=out)
    np.divide(out, limits[1] - limits[0], out=out)
    return out


def _raw_score(b: dict[str, np.ndarray], p: CSMParams) -> np.ndarray:
    """Running minimum of 1 and the five rescaled terms, float32, upstream's operation order."""
    score = np.ones(b["B2"].shape, dtype=np.float32)
    tmp = np.empty_like(score)
    np.minimum(score, _rescale_into(b["B2"], p.blue_range, tmp), out=score)
    np.minimum(score, _rescale_into(b["B1"], p.aerosol_range, tmp), out=score)
    np.add(b["B1"], b["B10"], out=tmp)
    np.minimum(score, _rescale_into(tmp, p.aerosol_cirrus_range, tmp), out=score)
    np.add(b["B4"], b["B3"], out=tmp)  # (B4 + B3) + B2: the order of upstream's sum
    np.add(tmp, b["B2"], out=tmp)
    np.minimum(score, _rescale_into(tmp, p.visible_range, tmp), out=score)
    denom = b["B3"] + b["B11"]
    denom[denom == 0] = p.ndsi_zero_denominator  # rounded to float32, as upstream
    np.subtract(b["B3"], b["B11"], out=tmp)
    np.divide(tmp, denom, out=tmp)
    np.minimum(score, _rescale_into(tmp, p.ndsi_range, tmp), out=score)
    return score


def _closing(score: np.ndarray, k: int) -> np.ndarray:
    """scipy ``grey_closing(size=(k, k), mode="reflect")`` on the last two axes, exactly.

    Each of the four separable passes pads its own input by reflection, as scipy does for the
    dilation and then again for the erosion.
    """
    if k == 1:
        return score.copy()
    r = k // 2
    out = score
    for op in (np.maximum, np.minimum):
        for axis in (-1, -2):
            width = [(0, 0)] * out.ndim
            width[axis] = (r, r)
            out = _sliding_extreme(np.pad(out, width, mode="symmetric"), k, axis, op)
    return out


def _box_mean_exact(closed: np.ndarray, k: int) -> np.ndarray:
    """The reference's box mean: ``convolve2d(s, ones((k, k)) / k**2, mode="same")`` per image."""
    import scipy.signal

    box = np.ones((k, k)) / (k**2)
    flat = closed.reshape(-1, *closed.shape[-2:])
    out = np.stack([scipy.signal.convolve2d(s, box, mode="same") for s in flat])
    return out.reshape(closed.shape)


def _box_mean_fast(closed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-filled k x k box mean in float32 as two separable sliding sums; also returns the
    zero-padded input (for exact recomputation of single pixels)."""
    padded = _pad_last2(closed, k // 2, "constant")  # zero fill, like convolve2d's default
    mean = _sliding_sum(_sliding_sum(padded, k, -1), k, -2)
    mean /= np.float32(k * k)
    return mean, padded


def _cloud_flags(b: dict[str, np.ndarray], p: CSMParams) -> np.ndarray:
    """Boolean cloud map (..., H, W), equal to the reference's ``clip(mean) >= threshold``."""
    import scipy.signal

    closed = _closing(_raw_score(b, p), p.closing_size)
    k, thr = p.mean_size, p.cloud_threshold
    mean, padded = _box_mean_fast(closed, k)

    # Error bound of the float32 mean against the exact mean: each sum of the two passes is a
    # tree of depth d, so |error| <= (2 d + 1) u max|s| to first order (u = 2^-24), the +1 for
    # the division. The reference's float64 convolution is within ~k^2 2^-53 max|s| of exact.
    # The factor 4 covers second-order terms and the float32 rounding of the threshold in the
    # comparisons below. Outside this band the two cannot disagree, and since
    # clip(m, lo, hi) >= thr is monotone in m, neither can the clipped decisions.
    amax = float(max(np.abs(closed.max()), np.abs(closed.min()), 1.0))
    tol = 4.0 * (2 * _sum_depth(k) + 1) * 2.0**-24 * amax + 2.0 * k * k * 2.0**-53 * amax
    lo, hi = p.score_clip
    flags = np.clip(mean, lo, hi) >= thr
    doubt = np.abs(mean - thr) <= tol
    n_doubt = int(np.count_nonzero(doubt))
    if n_doubt == 0:
        return flags
    if n_doubt > max(64, closed.size // 1000):  # many (e.g. a flat image): redo it all
        return np.clip(_box_mean_exact(closed, k), lo, hi) >= thr
    box = np.ones((k, k)) / (k**2)
    lead = closed.shape[:-2]
    images = padded.reshape(-1, *padded.shape[-2:])
    for idx in zip(*np.nonzero(doubt), strict=True):
        img = int(np.ravel_multi_index(idx[:-2], lead)) if lead else 0
        i, j = idx[-2], idx[-1]
        # Same products and summation order as the full convolve2d (the zeros add exactly).
        v = scipy.signal.convolve2d(images[img, i : i + k, j : j + k], box, mode="valid")
        flags[idx] = min(max(float(v[0, 0]), lo), hi) >= thr
    return flags


# -------------------------------------------------------------------------------- shadow


def _shadow_flags(
    csi: np.ndarray, blue: np.ndarray, t3: np.ndarray, t4: np.ndarray, p: CSMParams
) -> np.ndarray:
    """Boolean shadow map after the median filter; t3, t4 broadcast against (..., H, W).

    Median = box count: ``medfilt2d`` zero-pads and returns, for each pixel, the middle value
    (index (k^2 - 1) / 2 of k^2 in sorted order) of its k x k window. The map holds only -1
    (shadow) and 0 (clear or padding), so the sorted window is c times -1 followed by zeros,
    where c counts the shadow pixels in the window; its middle value is -1 exactly when
    c >= (k^2 + 1) / 2, i.e. 13 of 25 for k = 5.
    """
    raw = (csi < t3.astype(np.float32)) & (blue < t4.astype(np.float32))
    k = p.median_size
    if k == 1:
        return raw
    count_dtype = np.uint8 if k * k < 256 else np.uint32
    padded = _pad_last2(raw.astype(count_dtype), k // 2, "constant")
    counts = _sliding_sum(_sliding_sum(padded, k, -1), k, -2)
    return counts >= (k * k + 1) // 2


# ------------------------------------------------------------------------------ public API


def csm_bands(s2_dn: np.ndarray) -> dict[str, np.ndarray]:
    """Float32 reflectances of ``CSM_BANDS`` from a checked L1C stack, each (..., H, W)."""
    a = check_l1c(s2_dn)
    return {name: to_reflectance(a[..., s2_index(name), :, :]) for name in CSM_BANDS}


def csm_from_bands(
    b: dict[str, np.ndarray], t3: np.ndarray | float, t4: np.ndarray | float, params: CSMParams
) -> np.ndarray:
    """Class mask from float32 reflectances of ``CSM_BANDS`` and shadow thresholds.

    Args:
        b: band name -> float32 reflectance (..., H, W), as :func:`csm_bands` returns.
        t3, t4: thresholds, shape ``(...)`` (one per image), float64.
        params: the constants.

    Returns:
        uint8 (..., H, W): 0 clear, 1 cloud, 2 shadow.
    """
    csi = cloud_shadow_index(b["B8"], b["B11"])
    t3 = np.asarray(t3, dtype=np.float64)[..., None, None]
    t4 = np.asarray(t4, dtype=np.float64)[..., None, None]
    out = _shadow_flags(csi, b["B2"], t3, t4, params).astype(np.uint8)
    del csi
    out *= SHADOW
    out[_cloud_flags(b, params)] = CLOUD  # cloud wins over shadow, as upstream
    return out


def cloud_shadow_mask(
    s2_dn: np.ndarray,
    params: CSMParams = DEFAULT_PARAMS,
    thresholds: tuple[float, float] | None = None,
) -> np.ndarray:
    """The DSen2-CR cloud/shadow mask of one image or a batch.

    Args:
        s2_dn: ``(13, H, W)`` or ``(B, 13, H, W)`` L1C digital numbers (reflectance x 10000),
            bands in ``S2_BANDS`` order, any integer or float dtype.
        params: the constants (defaults: the paper's).
        thresholds: shadow thresholds (T3, T4) to use for every image instead of each image's
            own (e.g. from ``ShadowStats`` over a whole scene); None for the published
            per-image ones.

    Returns:
        uint8 ``(H, W)`` or ``(B, H, W)``: 0 clear, 1 cloud, 2 shadow (cloud wins). Equal pixel
        for pixel to :func:`cloudfree.masks.reference.reference_csm`.

    Raises:
        DataError: not 13 L1C bands (12-band L2A input gets an explanation), or non-finite.
    """
    a = check_l1c(s2_dn)
    b = csm_bands(a)
    lead = a.shape[:-3]
    if thresholds is not None:
        t3, t4 = np.full(lead, thresholds[0]), np.full(lead, thresholds[1])
    else:
        t3, t4 = np.empty(lead), np.empty(lead)
        csi = cloud_shadow_index(b["B8"], b["B11"])
        i2, i8, i11 = s2_index("B2"), s2_index("B8"), s2_index("B11")
        for idx in np.ndindex(*lead):
            stats = ShadowStats()
            img = a[idx]
            stats._update(csi[idx], b["B2"][idx], img[i2], img[i8], img[i11])
            t3[idx], t4[idx] = stats.thresholds(params)
        del csi
    return csm_from_bands(b, t3, t4, params)


def cloud_score(s2_dn: np.ndarray, params: CSMParams = DEFAULT_PARAMS) -> np.ndarray:
    """The soft cloud score before thresholding, float32 ``(..., H, W)`` in ``score_clip``.

    Computed with the fast float32 box mean: within about 1e-6 of the reference's float64
    value. Use :func:`cloud_shadow_mask` for the exact decisions.
    """
    closed = _closing(_raw_score(csm_bands(s2_dn), params), params.closing_size)
    mean, _ = _box_mean_fast(closed, params.mean_size)
    return np.clip(mean, *params.score_clip, out=mean)


def binary_mask(mask: np.ndarray) -> np.ndarray:
    """Cloud or shadow -> 1, clear -> 0 (uint8), as the CARL loss and the metrics use it.

    Accepts the class mask (0/1/2) or upstream's float map (-1/0/1): any nonzero value is 1.
    """
    return (np.asarray(mask) != 0).astype(np.uint8)
