"""Optional cloud backend: Sentinel Hub's s2cloudless (a LightGBM pixel classifier).

Install with the ``masks`` extra (``pip install "cloudfree[masks]"`` or ``pip install
s2cloudless``): it ships its model in the wheel and runs offline, but pulls
opencv-python-headless and sentinelhub (~234 MB); licence CC-BY-SA-4.0 (stack.md). It finds
clouds only, no shadows. The defaults (threshold 0.4, averaging disk of radius 4, dilation disk
of radius 2) are those of the SEN12MS-CR loaders of UnCRtainTS, which uses s2cloudless for its
masks; Sentinel Hub suggests larger disks for full 10 m resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

import numpy as np

from cloudfree.bands import s2_index
from cloudfree.masks.params import check_l1c, to_reflectance

#: The 10 bands the s2cloudless model reads, in its order (``MODEL_BAND_IDS``).
S2CLOUDLESS_BANDS: Final[tuple[str, ...]] = (
    "B1", "B2", "B4", "B5", "B8", "B8A", "B9", "B10", "B11", "B12",
)  # fmt: skip

_INSTALL = 'pip install "cloudfree[masks]"  (or: pip install s2cloudless)'


@lru_cache(maxsize=8)
def _detector(threshold: float, average_over: int, dilation_size: int) -> Any:
    try:
        from s2cloudless import S2PixelCloudDetector
    except ImportError as e:
        raise ImportError(
            f"the s2cloudless backend needs the optional package s2cloudless: {_INSTALL}"
        ) from e
    return S2PixelCloudDetector(
        threshold=threshold,
        all_bands=False,
        average_over=average_over,
        dilation_size=dilation_size,
    )


def s2cloudless_halo(average_over: int = 4, dilation_size: int = 2) -> int:
    """Pixels of context a window needs on each side for the same result as the whole image:
    the radius of the averaging disk plus that of the dilation disk."""
    return int(average_over) + int(dilation_size)


def s2cloudless_mask(
    s2_dn: np.ndarray,
    threshold: float = 0.4,
    average_over: int = 4,
    dilation_size: int = 2,
) -> np.ndarray:
    """Cloud mask from s2cloudless.

    Args:
        s2_dn: ``(13, H, W)`` or ``(B, 13, H, W)`` L1C digital numbers (reflectance x 10000).
        threshold: cloud where the averaged probability > threshold.
        average_over: radius (pixels) of the disk the probability is averaged over; 0 for none.
        dilation_size: radius (pixels) of the disk the mask is dilated with; 0 for none.

    Returns:
        uint8 ``(H, W)`` or ``(B, H, W)``: 1 cloud, 0 clear (the class codes of
        :func:`cloudfree.masks.csm.cloud_shadow_mask`, without shadows).

    Raises:
        ImportError: s2cloudless is not installed (the message gives the install command).
        DataError: not 13 L1C bands.
    """
    a = check_l1c(s2_dn)
    detector = _detector(float(threshold), int(average_over), int(dilation_size))
    batch = a if a.ndim == 4 else a[None]
    # (B, H, W, 10) float32 reflectance, the layout the model takes.
    x = np.stack([to_reflectance(batch[:, s2_index(b)]) for b in S2CLOUDLESS_BANDS], axis=-1)
    masks = np.asarray(detector.get_cloud_masks(x), dtype=np.uint8)
    return masks if a.ndim == 4 else masks[0]


def s2cloudless_bands_mask(
    dn: Mapping[str, np.ndarray],
    threshold: float = 0.4,
    average_over: int = 4,
    dilation_size: int = 2,
) -> np.ndarray:
    """:func:`s2cloudless_mask` of an image given band by band (name -> (H, W) L1C DN), for
    files that hold its 10 bands in any layout.

    Raises:
        ImportError: s2cloudless is not installed.
        KeyError: a band of :data:`S2CLOUDLESS_BANDS` is missing.
    """
    detector = _detector(float(threshold), int(average_over), int(dilation_size))
    from cloudfree.masks.patch import finite_dn

    x = np.stack([to_reflectance(finite_dn(dn[b])) for b in S2CLOUDLESS_BANDS], axis=-1)
    return np.asarray(detector.get_cloud_masks(x[None]), dtype=np.uint8)[0]
