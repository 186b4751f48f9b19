"""The cloud / cloud-shadow mask (CSM) of DSen2-CR: fast, vectorised, exact.

The algorithm is the one of ``[A] Code/tools/feature_detectors.py`` (Meraner et al. 2020),
transcribed in ``shared/docs/dsen2cr_spec.md`` section 3; :mod:`cloudfree.masks.reference` is
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

from dataclasses import dataclass, fields
from typing import Final

import numpy as np

from cloudfree.data.bands import (
    NUM_S2_BANDS,
    S2_BANDS,
    S2_DN_PER_REFLECTANCE,
    S2_L2A_BANDS,
    s2_index,
)
from cloudfree.errors import DataError

#: Classes of the uint8 mask written by this project.
CLEAR: Final[int] = 0
CLOUD: Final[int] = 1
SHADOW: Final[int] = 2

#: The bands the CSM reads (see ``csm_bands``).
CSM_BANDS: Final[tuple[str, ...]] = ("B1", "B2", "B3", "B4", "B8", "B10", "B11")


@dataclass(frozen=True)
class CSMParams:
    """Every constant of the DSen2-CR cloud/shadow mask; defaults are the published values.

    Source: spec section 3 (``[A] feature_detectors.py``). Reflectance = DN / 10000.
    ``rescale(x, (a, b)) = (x - a) / (b - a)``, not clipped per term; the cloud score is the
    running minimum of 1 and the five rescaled terms. The moisture term NDMI(B8, B11) of the
    original notebook is off upstream and is not offered.

    Attributes:
        blue_range: rescale range of B2 ("clouds are bright in blue").
        aerosol_range: rescale range of B1.
        aerosol_cirrus_range: rescale range of B1 + B10 (UnCRtainTS uses (0.4, 0.9); DSen2-CR
            uses (0.15, 0.2)).
        visible_range: rescale range of B4 + B3 + B2 ("bright in all visible bands").
        ndsi_range: rescale range of NDSI = (B3 - B11) / (B3 + B11); decreasing, because
            snow (high NDSI) is not cloud.
        ndsi_zero_denominator: replaces a zero B3 + B11 before the division, as upstream.
        closing_size: side of the grey closing (scipy ``mode="reflect"``), pixels, odd.
        mean_size: side of the box mean (zero fill, ``convolve2d(mode="same")``), odd.
        score_clip: the score is clipped to this range after the mean.
        cloud_threshold: cloud where the clipped score >= this.
        csi_fraction: t3 in T3 = min(CSI) + t3 (mean(CSI) - min(CSI)), CSI = (B8 + B11) / 2.
        blue_fraction: t4 in T4 = min(B2) + t4 (mean(B2) - min(B2)).
        median_size: side of the median filter (zero padding) of the shadow map, odd.
    """

    blue_range: tuple[float, float] = (0.1, 0.5)
    aerosol_range: tuple[float, float] = (0.1, 0.3)
    aerosol_cirrus_range: tuple[float, float] = (0.15, 0.2)
    visible_range: tuple[float, float] = (0.2, 0.8)
    ndsi_range: tuple[float, float] = (0.8, 0.6)
    ndsi_zero_denominator: float = 0.001
    closing_size: int = 5
    mean_size: int = 7
    score_clip: tuple[float, float] = (1e-5, 1.0)
    cloud_threshold: float = 0.2
    csi_fraction: float = 3 / 4
    blue_fraction: float = 5 / 6
    median_size: int = 5

    def __post_init__(self) -> None:
        # Plain Python floats, so that float32 arrays stay float32 in every operation (NumPy
        # promotes a float32 array with an np.float64 scalar to float64; a Python float is
        # "weak" and is rounded to float32 instead, as the upstream code did).
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_size"):
                if int(value) != value or value < 1 or value % 2 == 0:
                    raise ValueError(f"CSMParams.{f.name} must be an odd integer >= 1, got {value}")
                object.__setattr__(self, f.name, int(value))
            elif isinstance(value, tuple):
                lo, hi = (float(v) for v in value)
                if lo == hi and f.name != "score_clip":
                    raise ValueError(f"CSMParams.{f.name} needs two different ends, got {value}")
                object.__setattr__(self, f.name, (lo, hi))
            else:
                object.__setattr__(self, f.name, float(value))

    @property
    def halo(self) -> int:
        """Pixels of context a window needs on each side for an exact result.

        Closing: dilation then erosion, closing_size // 2 each; then the box mean; the shadow
        median needs median_size // 2.
        """
        cloud = 2 * (self.closing_size // 2) + self.mean_size // 2
        return max(cloud, self.median_size // 2)


#: The published constants; the default of every function taking ``params``.
DEFAULT_PARAMS: Final[CSMParams] = CSMParams()


def band_count_problem(count: int) -> tuple[str, str] | None:
    """None if ``count`` is the 13 L1C bands; else (problem, expected) for a DataError."""
    if count == NUM_S2_BANDS:
        return None
    if count == len(S2_L2A_BANDS):
        return (
            f"has 12 bands: this looks like an L2A product ({', '.join(S2_L2A_BANDS)}), which "
            "has no B10 (cirrus)",
            "the 13 L1C bands: the DSen2-CR cloud score uses B1 + B10. Use L1C data, or insert "
            "a B10 band at index 10 yourself (e.g. zeros: the B1 + B10 term then rests on B1 "
            "alone and the mask is no longer the published one)",
        )
    return f"has {count} bands", f"the 13 Sentinel-2 L1C bands in this order: {S2_BANDS}"


def check_l1c(s2_dn: np.ndarray, what: str = "s2_dn") -> np.ndarray:
    """Check that an array holds 13-band L1C digital numbers, ``(13, H, W)`` or ``(B, 13, H, W)``.

    Raises:
        DataError: wrong rank, band count (a 12-band L2A stack gets an explanation), size or
            dtype.
    """
    a = np.asarray(s2_dn)
    expected = "(13, H, W) or (B, 13, H, W) Sentinel-2 L1C digital numbers (reflectance x 10000)"
    if a.ndim not in (3, 4):
        raise DataError(None, f"{what} has shape {a.shape}", expected)
    problem = band_count_problem(a.shape[-3])
    if problem is not None:
        raise DataError(
            None, f"{what} (shape {a.shape}, bands on axis -3) {problem[0]}", problem[1]
        )
    if a.shape[-1] == 0 or a.shape[-2] == 0:
        raise DataError(None, f"{what} is empty (shape {a.shape})", "at least 1 x 1 pixels")
    if a.dtype.kind not in "uif":
        raise DataError(None, f"{what} has dtype {a.dtype}", "integer or float digital numbers")
    return a


def to_reflectance(dn: np.ndarray) -> np.ndarray:
    """DN -> float32 reflectance, exactly as upstream: ``astype(float32)`` (its data loader),
    then ``/ 10000.`` in float32. Non-finite values raise (fill nodata first, as upstream's
    loader does with the nanmean)."""
    dn = np.asarray(dn)
    refl = dn.astype(np.float32, copy=True)
    if dn.dtype.kind == "f" and not np.isfinite(refl).all():
        raise DataError(
            None,
            "the S2 bands contain NaN or infinite values",
            "finite digital numbers; fill nodata first (upstream fills NaN with the nanmean)",
        )
    np.divide(refl, S2_DN_PER_REFLECTANCE, out=refl)
    return refl


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


def cloud_shadow_index(b8: np.ndarray, b11: np.ndarray) -> np.ndarray:
    """Cloud shadow index (B8 + B11) / 2 of float32 reflectances, float32 as upstream."""
    csi = np.add(b8, b11)
    np.divide(csi, 2.0, out=csi)  # (B8 + B11) / 2. in float32, as upstream
    return csi


# ------------------------------------------------------------------------------ public API


def csm_bands(s2_dn: np.ndarray) -> dict[str, np.ndarray]:
    """Float32 reflectances of ``CSM_BANDS`` from a checked L1C stack, each (..., H, W)."""
    a = check_l1c(s2_dn)
    return {name: to_reflectance(a[..., s2_index(name), :, :]) for name in CSM_BANDS}


def csm_from_bands(
    b: dict[str, np.ndarray], t3: np.ndarray, t4: np.ndarray, params: CSMParams
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
        # Imported here: stats builds on this module's CSMParams and to_reflectance.
        from cloudfree.masks.stats import ShadowStats

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
