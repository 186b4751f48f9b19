"""``cloudfree s1``: a GRD product -> VV and VH sigma0 in dB on the grid of a Sentinel-2 image,
as Earth Engine's ``COPERNICUS/S1_GRD`` makes it (Mullissa et al. 2021): thermal noise removal
and calibration to sigma0 (:mod:`~cloudfree.data.s1grd.radiometry`), range-Doppler terrain
correction on a DEM (:mod:`~cloudfree.data.s1grd.geocode`, bilinear resampling), dB; the
refined Lee filter only when asked (:mod:`~cloudfree.data.s1grd.speckle`; Earth Engine's
product has none).

The output grid is processed in windows: for each, the DEM heights, the image coordinates of
its pixels, then only the rows and columns of the GRD that they fall in are read and
calibrated. A 10 km scene reads a few hundred of the product's ~17000 lines, never the whole
swath. Pixels outside the swath or on its zero-filled borders are no data (NaN).
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from cloudfree.data.s1grd.product import POLARISATIONS, GrdProduct
from cloudfree.errors import DataError

#: Side of the output windows processed at a time, px.
WINDOW: Final[int] = 512
#: What the output holds, for its tags.
QUANTITY: Final[str] = (
    "sigma0 (ellipsoid), dB: thermal noise removed (range and azimuth tables), calibrated with "
    "the sigmaNought table, range-Doppler terrain corrected (bilinear), as Earth Engine's "
    "COPERNICUS/S1_GRD"
)


@dataclass(frozen=True)
class Grid:
    """The output grid: what ``--like`` has."""

    crs: Any
    transform: Any
    width: int
    height: int

    @classmethod
    def like(cls, path: str | os.PathLike[str]) -> Grid:
        import rasterio

        with rasterio.open(path) as ds:
            if ds.crs is None:
                raise DataError(path, "has no CRS", "a georeferenced image (--like)")
            if ds.transform.b != 0 or ds.transform.d != 0:
                raise DataError(path, "has a rotated grid", "a north-up image (--like)")
            return cls(ds.crs, ds.transform, ds.width, ds.height)

    def centres(self, row: int, col: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """The x of the window's columns and the y of its rows (pixel centres)."""
        t = self.transform
        return (t.c + (np.arange(col, col + w) + 0.5) * t.a,
                t.f + (np.arange(row, row + h) + 0.5) * t.e)  # fmt: skip


def correct(
    product: GrdProduct,
    like: str | os.PathLike[str] | Grid,
    out: str | os.PathLike[str],
    dem: str | os.PathLike[str],
    dem_heights: str = "auto",
    speckle: bool = False,
    missing_pol: str = "error",
    window: int = WINDOW,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``out``: (2, H, W) float32 VV, VH sigma0 dB on ``like``'s grid; returns a summary
    (valid fraction, lines and columns read, the product's polarisations).

    Args:
        missing_pol: ``"error"``: a product without VH (or VV) is refused; ``"nan"``: that band
            is written as no data (SAR models need both: they would see it as missing S1).

    Raises:
        DataError: one polarisation missing (unless ``missing_pol="nan"``), the DEM not covering
            the grid, a grid the swath does not reach.
    """
    import rasterio
    from rasterio.windows import Window
    from scipy.ndimage import map_coordinates
    from tqdm.auto import tqdm

    from cloudfree.data.s1grd.dem import DemOnGrid
    from cloudfree.data.s1grd.geocode import Geometry
    from cloudfree.data.s1grd.radiometry import Radiometry
    from cloudfree.data.s1grd.speckle import HALO, refined_lee
    from cloudfree.io import atomic_path, gdal_cache_env
    from cloudfree.windows import windows

    missing = [p for p in POLARISATIONS if p not in product.pols]
    if missing and missing_pol != "nan":
        raise DataError(
            None, f"{product.name} has no {' or '.join(missing)} (it has "
            f"{', '.join(product.pols) or 'nothing'})",
            "a dual-polarisation product (1SDV: VV + VH), as SEN12MS-CR's; or --missing-pol nan "
            "to write the missing band as no data (SAR models then treat S1 as missing)",
        )  # fmt: skip
    # GDAL's block cache capped (its default grows to 5 % of the RAM with the area)
    with rasterio.Env(**gdal_cache_env()):
        grid = like if isinstance(like, Grid) else Grid.like(like)
        geometry = Geometry.of(product)
        heights = DemOnGrid(dem, grid.crs, grid.transform, grid.width, grid.height, dem_heights)
        try:
            _check_reach(product, geometry, grid, heights)
            radiometry = {p: Radiometry(f.calibration, f.noise) for p, f in product.pols.items()}
            halo = HALO if speckle else 0
            profile = {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": 2,
                       "dtype": "float32", "nodata": float("nan"), "crs": grid.crs,
                       "transform": grid.transform, "tiled": True, "blockxsize": 512,
                       "blockysize": 512, "compress": "deflate", "predictor": 3}  # fmt: skip
            valid = 0
            read_lines = read_cols = 0
            day = str(product.first_line_time.astype("datetime64[D]"))
            with warnings.catch_warnings():  # a GRD measurement is located by its annotation
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                sources = {p: rasterio.open(f.measurement) for p, f in product.pols.items()}
            wins = list(windows(grid.height, grid.width, window))
            try:
                with atomic_path(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
                    for r, c, h, w in tqdm(wins, desc="s1", unit="win", disable=not progress):
                        # the window grown by the filter's halo, cut at the grid's edges
                        r0, c0 = max(0, r - halo), max(0, c - halo)
                        r1, c1 = min(grid.height, r + h + halo), min(grid.width, c + w + halo)
                        xs, ys = grid.centres(r0, c0, r1 - r0, c1 - c0)
                        line, pixel = geometry.radar_coordinates(
                            heights.read(r0, c0, r1 - r0, c1 - c0), xs, ys, grid.crs)  # fmt: skip
                        inside = (np.isfinite(line) & (line >= 0) & (line <= product.lines - 1)
                                  & (pixel >= 0) & (pixel <= product.samples - 1))  # fmt: skip
                        block = np.full((2, r1 - r0, c1 - c0), np.nan, np.float32)
                        if inside.any():
                            l0 = int(max(0, np.floor(line[inside].min())))
                            l1 = int(min(product.lines, np.ceil(line[inside].max()) + 2))
                            p0 = int(max(0, np.floor(pixel[inside].min())))
                            p1 = int(min(product.samples, np.ceil(pixel[inside].max()) + 2))
                            read_lines, read_cols = read_lines + l1 - l0, max(read_cols, p1 - p0)
                            where = np.stack([np.where(inside, line - l0, -1.0),
                                              np.where(inside, pixel - p0, -1.0)])  # fmt: skip
                            for b, pol in enumerate(POLARISATIONS):
                                if pol not in sources:
                                    continue
                                dn = sources[pol].read(1, window=Window(p0, l0, p1 - p0, l1 - l0))
                                s0 = radiometry[pol].sigma0(dn, l0, p0)
                                block[b] = map_coordinates(s0, where, order=1, mode="constant",
                                                           cval=np.nan, prefilter=False)  # fmt: skip
                                if speckle:
                                    block[b] = refined_lee(block[b])
                        block = block[:, r - r0 : r - r0 + h, c - c0 : c - c0 + w]
                        with np.errstate(divide="ignore", invalid="ignore"):
                            db = (10 * np.log10(block)).astype(np.float32)
                        dst.write(db, window=Window(c, r, w, h))
                        valid += int(np.isfinite(db).any(axis=0).sum())
                    dst.set_band_description(1, "VV")
                    dst.set_band_description(2, "VH")
                    dst.update_tags(
                        ACQUISITION_DATE=day, software="cloudfree s1", product=product.name,
                        quantity=QUANTITY, dem=os.fspath(dem), dem_heights=heights.heights,
                        speckle_filter="refined Lee" if speckle else "none",
                        missing=",".join(missing) or "none",
                    )  # fmt: skip
            finally:
                for s in sources.values():
                    s.close()
        finally:
            heights.close()
        return {"valid_fraction": valid / max(1, grid.width * grid.height),
                "lines_read": read_lines, "widest_read": read_cols, "lines": product.lines,
                "samples": product.samples, "polarisations": list(product.pols),
                "dem_heights": heights.heights, "date": str(dt.date.fromisoformat(day))}  # fmt: skip


def _check_reach(product: GrdProduct, geometry: Any, grid: Grid, heights: Any) -> None:
    """Refuse a grid that the swath does not reach: the image coordinates of a 9 x 9 sample
    of the grid span a box that misses the image (a box, not the points: a swath that only
    clips a corner between the samples is still processed)."""
    rows = np.linspace(0, grid.height - 1, 9).round().astype(int)
    cols = np.linspace(0, grid.width - 1, 9).round().astype(int)
    z = np.array([[heights.read(int(r), int(c), 1, 1)[0, 0] for c in cols] for r in rows])
    xs, _ = grid.centres(0, 0, 1, grid.width)
    _, ys = grid.centres(0, 0, grid.height, 1)
    line, pixel = geometry.radar_coordinates(np.where(np.isfinite(z), z, 0.0), xs[cols],
                                             ys[rows], grid.crs)  # fmt: skip
    if (line.max() < 0 or line.min() > product.lines - 1 or pixel.max() < 0
            or pixel.min() > product.samples - 1):  # fmt: skip
        g = geometry.gcp
        box = [round(float(v), 3) for v in (g.longitude.min(), g.latitude.min(),
                                              g.longitude.max(), g.latitude.max())]  # fmt: skip
        raise DataError(None, f"the swath of {product.name} (lon/lat {box}) does not reach the "
                        "--like grid", "a product acquired over the Sentinel-2 image's area")  # fmt: skip
