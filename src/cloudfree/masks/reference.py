"""Plain scipy transcription of the DSen2-CR cloud/shadow mask, one image at a time.

This is ``[A] Code/tools/feature_detectors.py`` (Meraner et al. 2020; spec section 3) written
out step by step with the same numpy/scipy calls, kept as the ground truth that the fast
:mod:`cloudfree.masks.csm` is tested and benchmarked against. It is slow on purpose: do not
optimise it. Constants come from :class:`cloudfree.masks.csm.CSMParams`.

Dtypes follow upstream's training pipeline: its data loader hands the mask float32 DN
(``get_raw_data`` / ``get_opt_image``: ``astype('float32')``), so every element-wise step runs
in float32, and ``convolve2d`` with the float64 box returns float64. One decision differs from
upstream (see :func:`cloudfree.masks.stats.shadow_thresholds`): the means in the shadow
thresholds are exact, computed from the DN with ``math.fsum``, not a float32 pairwise
``np.mean`` of the reflectances.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from cloudfree.bands import S2_DN_PER_REFLECTANCE, s2_index
from cloudfree.masks.params import CLOUD, DEFAULT_PARAMS, SHADOW, CSMParams, check_l1c
from cloudfree.masks.stats import shadow_thresholds

B1, B2, B3, B4 = s2_index("B1"), s2_index("B2"), s2_index("B3"), s2_index("B4")
B8, B10, B11 = s2_index("B8"), s2_index("B10"), s2_index("B11")


def get_rescaled_data(data: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """``(data - a) / (b - a)``, no clipping."""
    return (data - limits[0]) / (limits[1] - limits[0])


def get_normalized_difference(
    channel1: np.ndarray, channel2: np.ndarray, zero_denominator: float
) -> np.ndarray:
    """``(c1 - c2) / (c1 + c2)`` with a zero denominator replaced (upstream: 0.001)."""
    subchan = channel1 - channel2
    sumchan = channel1 + channel2
    sumchan[sumchan == 0] = zero_denominator
    return subchan / sumchan


def _fsum(*arrays: np.ndarray) -> float:
    """Correctly rounded sum of all values (row by row, to keep memory small)."""
    return math.fsum(itertools.chain.from_iterable(row.tolist() for a in arrays for row in a))


def _reflectance(s2_dn: np.ndarray) -> np.ndarray:
    data = check_l1c(s2_dn)
    if data.ndim != 3:
        raise ValueError(f"the reference takes one image (13, H, W), got shape {data.shape}")
    data = data.astype("float32")
    if not np.isfinite(data).all():
        raise ValueError("the S2 image contains NaN or infinite values; fill them first")
    return data / S2_DN_PER_REFLECTANCE


def reference_cloud_score(s2_dn: np.ndarray, params: CSMParams = DEFAULT_PARAMS) -> np.ndarray:
    """Upstream ``get_cloud_mask(binarize=False)``: the clipped score, float64 (H, W)."""
    import scipy.ndimage
    import scipy.signal

    data_image = _reflectance(s2_dn)
    (ch, r, c) = data_image.shape
    score = np.ones((r, c)).astype("float32")
    score = np.minimum(score, get_rescaled_data(data_image[B2], params.blue_range))
    score = np.minimum(score, get_rescaled_data(data_image[B1], params.aerosol_range))
    score = np.minimum(
        score, get_rescaled_data(data_image[B1] + data_image[B10], params.aerosol_cirrus_range)
    )
    score = np.minimum(
        score,
        get_rescaled_data(data_image[B4] + data_image[B3] + data_image[B2], params.visible_range),
    )
    ndsi = get_normalized_difference(data_image[B3], data_image[B11], params.ndsi_zero_denominator)
    score = np.minimum(score, get_rescaled_data(ndsi, params.ndsi_range))

    box_size = params.mean_size
    box = np.ones((box_size, box_size)) / (box_size**2)
    size = params.closing_size
    score = scipy.ndimage.grey_closing(score, size=(size, size))  # mode "reflect" (default)
    score = scipy.signal.convolve2d(score, box, mode="same")  # zero fill
    return np.clip(score, *params.score_clip)


def reference_cloud_mask(s2_dn: np.ndarray, params: CSMParams = DEFAULT_PARAMS) -> np.ndarray:
    """Upstream ``get_cloud_mask(binarize=True)``: float64 (H, W) of 0 and 1."""
    score = reference_cloud_score(s2_dn, params)
    score[score >= params.cloud_threshold] = 1
    score[score < params.cloud_threshold] = 0
    return score


def reference_shadow_mask(s2_dn: np.ndarray, params: CSMParams = DEFAULT_PARAMS) -> np.ndarray:
    """Upstream ``get_shadow_mask``: float32 (H, W) of -1 (shadow) and 0."""
    import scipy.signal

    data_image = _reflectance(s2_dn)
    (ch, r, c) = data_image.shape
    shadow_mask = np.zeros((r, c)).astype("float32")
    BB = data_image[B2]
    CSI = (data_image[B8] + data_image[B11]) / 2.0

    # Exact means from the float32 DN (decision in stats.shadow_thresholds): one rounding of the
    # exact sum (math.fsum), divided by 10000 n, resp. 2 * 10000 n.
    dn = np.asarray(s2_dn).astype("float32")
    bb_mean = _fsum(dn[B2]) / (S2_DN_PER_REFLECTANCE * BB.size)
    csi_mean = _fsum(dn[B8], dn[B11]) / (2.0 * S2_DN_PER_REFLECTANCE * CSI.size)
    T3, T4 = shadow_thresholds(float(np.min(CSI)), csi_mean, float(np.min(BB)), bb_mean, params)

    # Compared in float32, as upstream's numpy 1.x value-based casting did.
    T3_32, T4_32 = np.float32(T3), np.float32(T4)
    shadow_tf = np.logical_and(CSI < T3_32, BB < T4_32)
    shadow_mask[shadow_tf] = -1
    return scipy.signal.medfilt2d(shadow_mask, params.median_size)  # zero padding


def reference_csm(
    s2_dn: np.ndarray, params: CSMParams = DEFAULT_PARAMS
) -> tuple[np.ndarray, np.ndarray]:
    """Upstream ``get_cloud_cloudshadow_mask`` of one image.

    Args:
        s2_dn: ``(13, H, W)`` L1C digital numbers (reflectance x 10000).
        params: the constants (defaults: the paper's).

    Returns:
        ``(csm, classes)``: upstream's float64 map (-1 shadow, 0 clear, 1 cloud) and the same
        as this project's uint8 classes (0 clear, 1 cloud, 2 shadow).
    """
    cloud_mask = reference_cloud_mask(s2_dn, params)
    shadow_mask = reference_shadow_mask(s2_dn, params)
    csm = np.zeros_like(cloud_mask)
    csm[shadow_mask < 0] = -1
    csm[cloud_mask > 0] = 1
    classes = np.zeros(csm.shape, dtype=np.uint8)
    classes[csm == -1] = SHADOW
    classes[csm == 1] = CLOUD
    return csm, classes
