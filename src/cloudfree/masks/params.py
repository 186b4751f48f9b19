"""Parameters, class codes and input checks of the DSen2-CR cloud/shadow mask.

The lowest module of :mod:`cloudfree.masks`: :mod:`~cloudfree.masks.csm` (the fast mask),
:mod:`~cloudfree.masks.stats` (the shadow thresholds) and :mod:`~cloudfree.masks.reference`
build on it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

import numpy as np

from cloudfree.bands import (
    NUM_S2_BANDS,
    S2_BANDS,
    S2_DN_PER_REFLECTANCE,
    S2_L2A_BANDS,
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


def cloud_shadow_index(b8: np.ndarray, b11: np.ndarray) -> np.ndarray:
    """Cloud shadow index (B8 + B11) / 2 of float32 reflectances, float32 as upstream."""
    csi = np.add(b8, b11)
    np.divide(csi, 2.0, out=csi)  # (B8 + B11) / 2. in float32, as upstream
    return csi
