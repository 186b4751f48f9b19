"""The grid a fetch writes on: the UTM zone of the area, 10 m, on Sentinel-2's own lattice.

Sentinel-2 tiles (MGRS, 109.8 km) sit on their UTM zone with corners on a 60 m lattice
(multiples of 60 m in easting and northing), so a 10 m grid whose corners are multiples of
60 m holds every 10 m pixel of every tile of that zone whole: the 10 m bands are copied,
never resampled; the 20 m and 60 m pixels fall on whole multiples too.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Final

#: The lattice of Sentinel-2 tile corners in their UTM zone, metres.
S2_LATTICE_M: Final[float] = 60.0


@dataclass(frozen=True)
class Grid:
    """A north-up grid: ``crs`` (``EPSG:...``), pixel size ``resolution`` (m), and bounds
    ``(left, bottom, right, top)`` in that CRS, multiples of the lattice."""

    crs: str
    resolution: float
    bounds: tuple[float, float, float, float]

    @property
    def width(self) -> int:
        return round((self.bounds[2] - self.bounds[0]) / self.resolution)

    @property
    def height(self) -> int:
        return round((self.bounds[3] - self.bounds[1]) / self.resolution)

    def transform(self) -> Any:
        """The affine transform of the grid (``affine.Affine``)."""
        from rasterio.transform import from_origin

        return from_origin(self.bounds[0], self.bounds[3], self.resolution, self.resolution)


def utm_epsg(lon: float, lat: float) -> int:
    """The EPSG code of the UTM zone of a point (WGS84): 326zz north, 327zz south (Norway's and
    Svalbard's exceptions are not applied: Sentinel-2 tiles follow the regular zones there)."""
    zone = min(60, max(1, int(math.floor((lon + 180.0) / 6.0)) + 1))
    return (32600 if lat >= 0 else 32700) + zone


def area_grid(
    bbox: tuple[float, float, float, float], crs: str | None = None, resolution: float = 10.0
) -> Grid:
    """The grid covering ``bbox`` (WGS84 ``west, south, east, north``): in ``crs`` (default: the
    UTM zone of the area's centre; an area across zones is warned about, naming the zone
    chosen), corners snapped outwards to the 60 m lattice (to ``resolution`` when it does not
    divide 60 m)."""
    from rasterio.warp import transform_bounds

    w, s, e, n = bbox
    if crs is None:
        lon, lat = (w + e) / 2, (s + n) / 2
        epsg = utm_epsg(lon, lat)
        zones = {utm_epsg(w, lat), utm_epsg(e, lat)}
        if len(zones) > 1:
            warnings.warn(
                f"the area spans UTM zones {sorted(z % 100 for z in zones)}: it is written in "
                f"zone {epsg % 100} (EPSG:{epsg}, its centre's); pass --crs to choose",
                stacklevel=2,
            )
        crs = f"EPSG:{epsg}"
    left, bottom, right, top = transform_bounds("EPSG:4326", crs, w, s, e, n, densify_pts=21)
    step = S2_LATTICE_M if S2_LATTICE_M % resolution == 0 else resolution
    snap = (
        math.floor(left / step) * step, math.floor(bottom / step) * step,
        math.ceil(right / step) * step, math.ceil(top / step) * step,
    )  # fmt: skip
    return Grid(crs=crs, resolution=float(resolution), bounds=snap)
