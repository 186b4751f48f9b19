"""The DEM under an output grid, as heights above the WGS84 ellipsoid (what range-Doppler
geocoding needs: the orbit is in ECEF).

Any GDAL-readable DEM is warped (bilinear) onto the output grid window by window. Its heights
are taken as:

- ``ellipsoid``: already ellipsoidal;
- ``egm96`` / ``egm2008``: over that geoid (SRTM: EGM96; Copernicus DEM GLO-30: EGM2008), turned
  into ellipsoidal heights with PROJ's geoid grid (``us_nga_egm96_15.tif`` /
  ``us_nga_egm08_25.tif``). PROJ silently returns the heights unchanged when the grid is not
  installed: that is checked, and refused with how to get the grid, since the geoid is
  -107 to +85 m from the ellipsoid and a height error of dh moves the image by about
  dh / tan(incidence) in ground range (50-150 m at 30-46 degrees);
- ``auto`` (default): from the DEM's vertical CRS (a compound CRS such as EPSG:9707, WGS 84 +
  EGM96 height); a DEM that declares none is taken as ellipsoidal, with a warning.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Final

import numpy as np

from cloudfree.errors import CloudfreeError, DataError

#: Geoid -> EPSG code of its height CRS, and PROJ's grid for it.
GEOIDS: Final[dict[str, tuple[int, str]]] = {
    "egm96": (5773, "us_nga_egm96_15.tif"),
    "egm2008": (3855, "us_nga_egm08_25.tif"),
}
HEIGHTS: Final[tuple[str, ...]] = ("auto", "ellipsoid", "egm96", "egm2008")


def vertical_datum(crs_wkt: str) -> str | None:
    """``"egm96"``, ``"egm2008"``, ``"ellipsoid"`` (a 3-D geographic CRS) or None (no vertical
    information) from a CRS's WKT.

    Raises:
        CloudfreeError: a vertical datum cloudfree cannot convert.
    """
    from pyproj import CRS

    crs = CRS.from_wkt(crs_wkt)
    subs = crs.sub_crs_list or [crs]
    for sub in subs:
        if sub.is_vertical:
            name = sub.name.lower().replace(" ", "")
            if "egm96" in name:
                return "egm96"
            if "egm2008" in name or "egm08" in name:
                return "egm2008"
            raise CloudfreeError(f"the DEM's heights are over {sub.name}, which cloudfree does "
                                 "not convert: give --dem-heights ellipsoid, egm96 or egm2008")  # fmt: skip
    if len(crs.axis_info) == 3 and crs.is_geographic:
        return "ellipsoid"
    return None


class GeoidToEllipsoid:
    """``h_ellipsoid = h_geoid + N(lon, lat)`` with PROJ's grid (:data:`GEOIDS`)."""

    def __init__(self, geoid: str) -> None:
        import pyproj
        from pyproj.transformer import TransformerGroup

        code, grid = GEOIDS[geoid]
        with warnings.catch_warnings():  # pyproj warns of the missing grid: said below
            warnings.simplefilter("ignore", UserWarning)
            group = TransformerGroup(f"EPSG:4326+{code}", "EPSG:4979", always_xy=True)
        network = pyproj.network.is_network_enabled()
        if not group.best_available and not network:
            raise CloudfreeError(
                f"the DEM's heights are over {geoid.upper()} and PROJ lacks its grid {grid}: "
                f"install it (`projsync --file {grid}`, into {pyproj.datadir.get_user_data_dir()}), "
                "or set PROJ_NETWORK=ON to let PROJ download it, or, knowingly, give "
                "--dem-heights ellipsoid (the geoid is -107 to +85 m from the ellipsoid; the "
                "output then shifts by about that / tan(incidence) across range)"
            )
        self.geoid = geoid
        self.transformer = group.transformers[0]

    def __call__(self, lon: np.ndarray, lat: np.ndarray, h: np.ndarray) -> np.ndarray:
        _, _, z = self.transformer.transform(lon, lat, h)
        z = np.asarray(z, np.float64)
        if not np.isfinite(z[np.isfinite(h)]).all():
            raise CloudfreeError(f"PROJ could not convert {self.geoid.upper()} heights here "
                                 "(its grid could not be read or downloaded)")  # fmt: skip
        return z


class DemOnGrid:
    """Ellipsoidal heights of a DEM on an output grid, read window by window
    (:meth:`read`)."""

    def __init__(self, path: str | os.PathLike[str], crs: Any, transform: Any, width: int,
                 height: int, heights: str = "auto") -> None:  # fmt: skip
        import rasterio
        from rasterio.vrt import WarpedVRT
        from rasterio.warp import transform_bounds

        if heights not in HEIGHTS:
            raise CloudfreeError(f"--dem-heights {heights!r}: give one of {', '.join(HEIGHTS)}")
        try:
            self._src = rasterio.open(path)
        except rasterio.errors.RasterioError as e:
            raise DataError(path, f"cannot be read: {e}", "a GDAL-readable DEM") from e
        if self._src.crs is None:
            raise DataError(path, "has no CRS", "a georeferenced DEM")
        declared = vertical_datum(self._src.crs.to_wkt())
        if heights == "auto":
            if declared is None:
                warnings.warn(
                    f"{path} declares no vertical datum: its heights are taken as ellipsoidal. "
                    "SRTM and Copernicus DEM heights are over a geoid (EGM96, EGM2008): give "
                    "--dem-heights egm96 or egm2008 for them, else the output shifts by about "
                    "the geoid height / tan(incidence)", stacklevel=2,
                )  # fmt: skip
            heights = declared or "ellipsoid"
        self.heights = heights
        self._geoid = GeoidToEllipsoid(heights) if heights in GEOIDS else None
        # the DEM must cover the grid (checked on its bounds, densified)
        left, bottom = transform * (0, height)
        right, top = transform * (width, 0)
        have = transform_bounds(self._src.crs, crs, *self._src.bounds, densify_pts=21)
        if have[0] > left or have[1] > bottom or have[2] < right or have[3] < top:
            self.close()
            raise DataError(
                path, f"covers {[round(v) for v in have]} in {crs}, not the whole output grid "
                f"{[round(v) for v in (left, bottom, right, top)]}",
                "a DEM covering the --like grid (with a margin)",
            )  # fmt: skip
        self._vrt = WarpedVRT(self._src, crs=crs, transform=transform, width=width,
                              height=height, resampling=rasterio.enums.Resampling.bilinear,
                              nodata=np.nan, dtype="float32")  # fmt: skip
        self._transform = transform
        if self._geoid is not None:  # output grid -> lon/lat, for the geoid's undulation
            from pyproj import Transformer

            self._to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        """(h, w) ellipsoidal heights, m (float64; NaN where the DEM has none)."""
        from rasterio.windows import Window

        z = self._vrt.read(1, window=Window(col, row, w, h)).astype(np.float64)
        if self._geoid is not None:
            cols, rows = np.meshgrid(np.arange(col, col + w) + 0.5, np.arange(row, row + h) + 0.5)
            lon, lat = self._to_lonlat.transform(*(self._transform * (cols, rows)))
            z = np.where(np.isfinite(z), self._geoid(lon, lat, z), np.nan)
        return z

    def close(self) -> None:
        if getattr(self, "_vrt", None) is not None:
            self._vrt.close()
        self._src.close()
