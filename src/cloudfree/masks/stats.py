"""Shadow statistics of the DSen2-CR mask: the relative shadow thresholds T3 and T4, exactly.

The shadow test of spec section 3 (``[A] Code/tools/feature_detectors.py``) compares each pixel
with thresholds relative to the minimum and the mean of CSI = (B8 + B11) / 2 and of B2 over the
whole image. :class:`ShadowStats` accumulates those statistics window by window with exact sums
(:func:`exact_sum`, :func:`dn_sum`), so a scene processed in windows
(:mod:`cloudfree.masks.scene`) gets the thresholds of the whole image, bit for bit, whatever the
summation order; :func:`shadow_thresholds` turns them into (T3, T4).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from cloudfree.bands import S2_DN_PER_REFLECTANCE
from cloudfree.masks.params import DEFAULT_PARAMS, CSMParams, cloud_shadow_index, to_reflectance


def exact_sum(x: np.ndarray) -> Fraction:
    """The exact sum of a float32 array, as a Fraction; independent of summation order.

    Each float32 value is ``m * 2**e`` with an integer mantissa |m| < 2**24. Mantissas are
    summed per exponent with ``bincount`` (float64 accumulators, exact while a partial sum
    stays below 2**53, hence chunks of 2**28 values), then combined as Python integers.
    """
    flat = np.asarray(x).ravel()
    if flat.dtype != np.float32:
        raise TypeError(f"exact_sum takes float32 values, got {flat.dtype}")
    total = Fraction(0)
    chunk = 1 << 28
    for start in range(0, flat.size, chunk):
        m, e = np.frexp(flat[start : start + chunk])
        mant = m * np.float32(1 << 24)  # integers, exact in float32
        e = e.astype(np.int64) - 24
        emin = int(e.min())
        sums = np.bincount(e - emin, weights=mant)
        acc = sum(int(s) << i for i, s in enumerate(sums.tolist()) if s)
        total += Fraction(acc) * Fraction(2) ** emin
    return total


def dn_sum(dn: np.ndarray) -> int | Fraction:
    """Exact sum of DN values as the mask sees them (cast to float32, like upstream's loader).

    Integer DN below 2**24 (every real product) are exact in float32 and are summed as int64;
    anything else goes through :func:`exact_sum`.
    """
    a = np.asarray(dn)
    if a.dtype.kind in "ui" and (a.dtype.itemsize <= 2 or np.abs(a).max(initial=0) < 2**24):
        return int(a.sum(dtype=np.int64))
    return exact_sum(a.astype(np.float32))


class ShadowStats:
    """Statistics of the shadow thresholds over an image, accumulated window by window.

    The thresholds of spec section 3 are relative to the minimum and the mean of
    CSI = (B8 + B11) / 2 and of B2 over the whole image. Minima are taken over the float32
    reflectances (order-free); means are exact: ``fsum(DN) / (10000 n)`` (B2) and
    ``fsum(DN8, DN11) / (2 * 10000 n)`` (CSI), each a single rounding of the exact value, so a
    scene processed in windows gets the thresholds of the whole image, bit for bit.
    """

    def __init__(self) -> None:
        self.count = 0
        self.csi_min = math.inf
        self.blue_min = math.inf
        self._blue_dn_sum: int | Fraction = 0
        self._nir_swir_dn_sum: int | Fraction = 0

    def update(self, b2_dn: np.ndarray, b8_dn: np.ndarray, b11_dn: np.ndarray) -> None:
        """Add some pixels of the image: B2, B8 and B11 digital numbers of the same shape."""
        blue = to_reflectance(b2_dn)
        self._update(
            cloud_shadow_index(to_reflectance(b8_dn), to_reflectance(b11_dn)),
            blue,
            b2_dn,
            b8_dn,
            b11_dn,
        )

    def _update(
        self,
        csi: np.ndarray,
        blue: np.ndarray,
        b2_dn: np.ndarray,
        b8_dn: np.ndarray,
        b11_dn: np.ndarray,
    ) -> None:
        if csi.size == 0:
            return
        self.count += csi.size
        self.csi_min = min(self.csi_min, float(csi.min()))
        self.blue_min = min(self.blue_min, float(blue.min()))
        self._blue_dn_sum += dn_sum(b2_dn)
        self._nir_swir_dn_sum += dn_sum(b8_dn) + dn_sum(b11_dn)

    @property
    def csi_mean(self) -> float:
        """Mean CSI reflectance: the exact DN sum rounded once, divided by 2 * 10000 * n."""
        return float(self._nir_swir_dn_sum) / (2.0 * S2_DN_PER_REFLECTANCE * self.count)

    @property
    def blue_mean(self) -> float:
        """Mean B2 reflectance: the exact DN sum rounded once, divided by 10000 * n."""
        return float(self._blue_dn_sum) / (S2_DN_PER_REFLECTANCE * self.count)

    def thresholds(self, params: CSMParams = DEFAULT_PARAMS) -> tuple[float, float]:
        """(T3, T4) of spec section 3 from the pixels seen so far."""
        if self.count == 0:
            raise ValueError("no pixels seen: call update() first")
        return shadow_thresholds(self.csi_min, self.csi_mean, self.blue_min, self.blue_mean, params)


def shadow_thresholds(
    csi_min: float, csi_mean: float, blue_min: float, blue_mean: float, params: CSMParams
) -> tuple[float, float]:
    """T3 = min + t3 (mean - min) for CSI, T4 likewise for B2, in float64.

    DECISION (spec section 3 gives the formula; the arithmetic is ours): upstream (numpy 1.17)
    took a float32 pairwise ``np.mean`` of the float32 CSI, and compared in float32. We take
    the exact mean (so a scene processed in windows gets the thresholds of the whole image,
    and the result does not depend on summation order) and, like upstream's value-based
    casting, round T3 and T4 to float32 for the comparison. The two differ only for pixels
    within about one float32 ulp of a threshold.
    """
    t3 = csi_min + params.csi_fraction * (csi_mean - csi_min)
    t4 = blue_min + params.blue_fraction * (blue_mean - blue_min)
    return t3, t4
