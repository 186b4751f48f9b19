"""Range-Doppler terrain correction: where in the GRD image each pixel of an output grid was
seen, given its height (ESA's "Guide to Sentinel-1 Geocoding", UZH-S1-GC-AD; Small and
Schubert 2008).

For every output pixel (x, y, ellipsoidal height) sarsen finds the zero-Doppler time at which
the satellite (orbit state vectors of the annotation, a degree-5 polynomial fit) saw it and its
slant range; the annotation's slant-to-ground-range polynomials (xarray-sentinel) turn the
slant range into ground range. Then ``line = (t - t_first_line) / azimuth_time_interval`` and
``pixel = ground_range / range_pixel_spacing``: fractional image coordinates that
:mod:`cloudfree.data.s1grd.terrain` samples bilinearly (as SNAP's Terrain-Correction does by
default, and so Earth Engine's S1_GRD).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cloudfree.data.s1grd.product import GrdProduct


@dataclass
class Geometry:
    """A product's orbit, range conversion and geolocation grid (:meth:`of`)."""

    product: GrdProduct
    orbit: Any  # sarsen.orbit.OrbitPolyfitInterpolator
    conversion: Any  # xarray.Dataset of the slant-to-ground-range polynomials
    gcp: Any  # xarray.Dataset of the geolocation grid (line, pixel, lat, lon, height, incidence)

    @classmethod
    def of(cls, product: GrdProduct) -> Geometry:
        from sarsen.orbit import OrbitPolyfitInterpolator
        from xarray_sentinel import sentinel1 as xs

        ann = product.annotation
        orbit = xs.open_orbit_dataset(ann)
        return cls(product, OrbitPolyfitInterpolator.from_position(orbit.position),
                   xs.open_coordinate_conversion_dataset(ann), xs.open_gcp_dataset(ann))  # fmt: skip

    def radar_coordinates(
        self, heights: np.ndarray, xs: np.ndarray, ys: np.ndarray, crs: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (line, pixel) of each output pixel, each (len(ys), len(xs)).

        Args:
            heights: (H, W) heights above the WGS84 ellipsoid, m; NaN: unknown (NaN out).
            xs, ys: the pixel centres' coordinates in ``crs``.
            crs: the output grid's CRS (anything rasterio takes).
        """
        import xarray as xr
        from sarsen.apps import simulate_acquisition
        from sarsen.scene import convert_to_dem_ecef
        from xarray_sentinel.sentinel1 import slant_range_time_to_ground_range

        known = np.isfinite(heights)
        dem = xr.DataArray(np.where(known, heights, 0.0), dims=("y", "x"),
                           coords={"x": np.asarray(xs, np.float64),
                                   "y": np.asarray(ys, np.float64)})  # fmt: skip
        ecef = convert_to_dem_ecef(dem, source_crs=str(crs))
        acq = simulate_acquisition(ecef, self.orbit,
                                   include_variables={"azimuth_time", "slant_range_time"})  # fmt: skip
        ground = slant_range_time_to_ground_range(acq.azimuth_time, acq.slant_range_time,
                                                  self.conversion)  # fmt: skip
        p = self.product
        dt = (acq.azimuth_time.values - p.first_line_time) / np.timedelta64(1, "ns") * 1e-9
        line = dt / p.azimuth_time_interval
        pixel = ground.transpose("y", "x").values / p.range_pixel_spacing
        return np.where(known, line, np.nan), np.where(known, pixel, np.nan)

    def incidence(self, line: np.ndarray, pixel: np.ndarray) -> np.ndarray:
        """The ellipsoid incidence angle, degrees, at image coordinates (from the geolocation
        grid, bilinear)."""
        from scipy.interpolate import RegularGridInterpolator

        g = self.gcp
        f = RegularGridInterpolator((g.line.values.astype(float), g.pixel.values.astype(float)),
                                    g.incidenceAngle.values, bounds_error=False,
                                    fill_value=None)  # fmt: skip
        return f(np.stack([line, pixel], axis=-1))
