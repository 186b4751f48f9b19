"""Growing a cloud/shadow mask by a distance on the ground, so cloud edges and haze rims are
masked too.

Cloud edges are soft: a thin, bright rim of haze around a cloud, and the penumbra of its
shadow, are darker or brighter than the ground but below what a mask calls cloud. Left in,
they stay in the result (``predict --keep-clear``) or feed the inpainting as if clear. Masks
are therefore grown by a distance (``--dilate METRES``) before use: a clear pixel within that
distance of a cloud becomes cloud, else within it of a shadow, shadow; cloud and shadow pixels
keep their class. Distances are on the ground, converted with the scene's pixel size
(:func:`pixel_size_m`), so one value serves 10 m and 20 m files alike; ``"6px"`` gives
pixels directly.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from cloudfree.bands import GSD_M
from cloudfree.masks.params import CLEAR, CLOUD, SHADOW

log = logging.getLogger(__name__)

#: Growth is not applied to a block of the mask (:mod:`cloudfree.masks.computed`) where it would
#: leave less than this fraction of the block clear: on a nearly covered area the last clear
#: pixels are worth more to a fill than a margin around the clouds. Measured on the held-out
#: real pairs (``benchmarks/mask.py``, part 6): growing by 20-60 m swallowed the 26 clear pixels
#: (0.04 %) of one patch and raised push-pull's error there from 0.030 to 0.070; the inpainters
#: keep the same rule for their own dilation (:meth:`cloudfree.inpaint.base.Inpainter.fill_region`).
MIN_CLEAR_TO_GROW: Final[float] = 0.01

#: Metres per degree of latitude (WGS84 mean) and of longitude at the equator.
_M_PER_DEG_LAT: Final[float] = 110_574.0
_M_PER_DEG_LON: Final[float] = 111_320.0


@dataclass(frozen=True)
class Distance:
    """A dilation distance as given: ``value`` in ``unit`` (``"m"`` or ``"px"``)."""

    value: float
    unit: str = "m"

    def pixels(self, gsd_m: float) -> float:
        """The distance in pixels of ``gsd_m`` metres."""
        return self.value if self.unit == "px" else self.value / gsd_m

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit}"


def parse_distance(text: str | float | Distance) -> Distance:
    """``"60"``, ``"60m"``, ``"60 m"`` -> 60 metres; ``"6px"`` -> 6 pixels (``--dilate``).

    Raises:
        ValueError: not a non-negative number with an optional ``m`` or ``px``.
    """
    if isinstance(text, Distance):
        return text
    if isinstance(text, int | float):
        value, unit = float(text), "m"
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(m|px)?\s*", str(text))
        if m is None:
            raise ValueError(
                f"--dilate takes a distance in metres (e.g. 60) or pixels (e.g. 6px), got {text!r}"
            )
        value, unit = float(m.group(1)), m.group(2) or "m"
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"--dilate must be a distance >= 0, got {text!r}")
    return Distance(value, unit)


def pixel_size_m(meta: Any) -> float:
    """Ground size of a pixel, metres (the mean of its two sides) of a grid
    (:class:`~cloudfree.io.RasterMeta` or an open dataset).

    Projected CRS: the transform's pixel size in the CRS's linear unit, in metres. Geographic
    CRS (degrees, e.g. EPSG:4326): converted at the latitude of the grid's centre. No CRS or
    transform: Sentinel-2's 10 m, with a note in the log.
    """
    crs, transform = getattr(meta, "crs", None), getattr(meta, "transform", None)
    if crs is None or transform is None or transform.is_identity:
        log.info("no georeferencing: pixels are taken to be %g m (Sentinel-2)", GSD_M)
        return GSD_M
    dx, dy = math.hypot(transform.a, transform.d), math.hypot(transform.b, transform.e)
    if crs.is_geographic:
        lat = transform.f + transform.e * meta.height / 2.0
        dx *= _M_PER_DEG_LON * math.cos(math.radians(lat))
        dy *= _M_PER_DEG_LAT
        return (dx + dy) / 2.0
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return (dx + dy) / 2.0 * float(factor)


def dilate_classes(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Grow the cloud and shadow classes of a mask by ``radius_px`` pixels (a disc).

    A clear pixel within ``radius_px`` of a cloud pixel becomes cloud, else within it of a
    shadow pixel, shadow; cloud and shadow pixels keep their class.

    Args:
        mask: uint8 (H, W), 0 clear, 1 cloud, 2 shadow.
        radius_px: pixels (Euclidean distance, centre to centre); below 1 changes nothing.

    Returns:
        A new uint8 (H, W) mask.
    """
    out = np.array(mask, dtype=np.uint8, copy=True)
    if radius_px < 1:
        return out
    from scipy.ndimage import distance_transform_edt

    clear = out == CLEAR
    for cls in (CLOUD, SHADOW):  # cloud first: where both reach, it is cloud
        inside = mask == cls
        if not inside.any() or not clear.any():
            continue
        # Distance to the nearest pixel of the class: linear time, whatever the radius.
        grown = (distance_transform_edt(~inside) <= radius_px) & clear
        out[grown] = cls
        clear &= ~grown
    return out


def dilation_pixels(distance: Distance | None, gsd_m: float, what: str = "--dilate") -> float:
    """Pixels of ``distance`` on a grid of ``gsd_m`` metres (0 for None); logs a note when
    a distance given in metres is under one pixel (it then changes nothing)."""
    if distance is None:
        return 0.0
    px = distance.pixels(gsd_m)
    if 0 < px < 1 and distance.unit == "m":
        log.warning(
            "%s %s is less than one pixel (%.3g m): the mask is not grown; %s is in metres "
            "(e.g. %.0f for %g pixels) or in pixels with 'px'",
            what, distance, gsd_m, what, distance.value * gsd_m, distance.value,
        )  # fmt: skip
    return px


def grows(mask: np.ndarray, radius_px: float) -> bool:
    """Whether a block's mask is grown: growth leaves at least :data:`MIN_CLEAR_TO_GROW` of
    its pixels clear (judged on the block alone, so it does not depend on the windows)."""
    if radius_px < 1:
        return False
    return bool((dilate_classes(mask, radius_px) == CLEAR).mean() >= MIN_CLEAR_TO_GROW)
