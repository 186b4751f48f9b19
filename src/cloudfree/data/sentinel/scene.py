"""Inputs of a scene prediction: the S2 scene (13-band L1C or 12-band L2A) and an S1 scene on
any grid, read window by window onto the S2 grid.

- S2: 13 bands in ``S2_BANDS`` order (L1C), or 12 bands in ``S2_L2A_BANDS`` order (L2A, no B10).
  For L2A a B10 band filled with :data:`L2A_B10_FILL_DN` (or the user's ``b10``) is inserted,
  with a warning; any other band count is a :class:`~cloudfree.errors.DataError`.
- S1: 2 bands (VV, VH) sigma0 in dB. On the S2 grid it is read as is; on another CRS,
  resolution or extent it is reprojected onto the S2 grid through a ``WarpedVRT`` (bilinear),
  window by window, and ``S1Source.reprojected`` says so. Pixels that S1 does not cover (outside
  its extent, its nodata or NaN) come back as NaN: the caller decides what to do there, nothing
  is filled with zeros here.

Windows may reach outside the scene: the outside is filled by reflection about the scene edge
(:func:`cloudfree.predict.tiling.pad_reflect`), for S2 and S1 alike.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.bands import (
    NUM_S1_BANDS,
    NUM_S2_BANDS,
    S2_BANDS,
    S2_L2A_BANDS,
    s2_index,
)
from cloudfree.errors import DataError
from cloudfree.io import RasterMeta, gdal_path, meta_of
from cloudfree.units import check_scene, nodata_pixels, zero_missing
from cloudfree.windows import Window, clip_window, pad_reflect

log = logging.getLogger(__name__)

#: What to do where S1 is missing: predict with a no-SAR model, or keep the input values.
OUTSIDE_SAR: Final[tuple[str, ...]] = ("nosar", "input")

#: B10 (cirrus, 1375 nm) DN inserted into 12-band L2A input. B10 sits in a water-vapour
#: absorption band: under a clear sky almost no light from the ground reaches the sensor, and
#: the value says how much high cirrus there is. L2A has had that cirrus signal corrected
#: away, so the value to give the network is that of a clear sky with no cirrus: the median
#: B10 of the clear L1C scenes of ``../shared/data`` is 10-11 DN (eo-learn Slovenia 10-11,
#: Sen1Floods11 Valencia 11, clear SEN12MS-CR patches 6-18; hazy "clear" targets reach 430).
#: 0 would be below any real L1C value (the network never saw it); ``b10=`` overrides.
L2A_B10_FILL_DN: Final[float] = 10.0

_S2_EXPECTED = (
    f"a Sentinel-2 GeoTIFF with the 13 L1C bands {', '.join(S2_BANDS)} (DN = reflectance x "
    f"10000), or the 12 L2A bands {', '.join(S2_L2A_BANDS)}; 'cloudfree stack SAFE_DIR' builds "
    "one from a .SAFE product"
)
_S1_EXPECTED = (
    "a Sentinel-1 GeoTIFF with 2 bands VV, VH, sigma0 in dB (float), georeferenced (any CRS, "
    "resolution or extent overlapping the S2 scene) or on the S2 grid"
)


def _open(path: str | os.PathLike[str], what: str, expected: str) -> Any:
    import rasterio

    p = gdal_path(path)
    if not os.path.exists(p) and not p.startswith("/vsi"):
        raise DataError(path, f"{what} file does not exist", expected)
    try:
        with warnings.catch_warnings():
            # A file without georeferencing is handled (and reported) by the caller.
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            return rasterio.open(p)
    except rasterio.errors.RasterioError as e:
        raise DataError(path, f"cannot open the {what} raster: {e}", expected) from e


def read_padded(
    ds: Any, region: Window, height: int, width: int, indexes: list[int] | None = None
) -> tuple[np.ndarray, Window]:
    """Read ``region`` of a dataset; parts outside the scene filled by reflection.

    Args:
        ds: an open rasterio dataset (or WarpedVRT) of ``height x width`` pixels.
        region: ``(row, col, h, w)``, may reach outside the scene.
        indexes: 1-based bands, or None for all.

    Returns:
        ``(array (bands, h, w) float32, inner)`` where ``inner = (top, left, h, w)`` locates the
        pixels actually read (inside the scene) within the array.
    """
    from rasterio.windows import Window as RioWindow

    r, c, h, w = region
    cr, cc, ch, cw = clip_window(region, height, width)
    if ch == 0 or cw == 0:
        raise ValueError(f"region {region} does not intersect the {height}x{width} scene")
    data = ds.read(indexes=indexes, window=RioWindow(cc, cr, cw, ch), out_dtype="float32")
    top, left = cr - r, cc - c
    out = pad_reflect(data, top, h - top - ch, left, w - left - cw)
    return out, (top, left, ch, cw)


def check_overlap(ds: Any, path: Path, grid: RasterMeta, what: str) -> None:
    """Raise a DataError unless the raster ``ds`` (file ``path``) overlaps ``grid``."""
    from rasterio.coords import disjoint_bounds
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_bounds

    b = array_bounds(grid.height, grid.width, grid.transform)
    grid_bounds = (b[0], b[1], b[2], b[3])
    try:
        bounds = transform_bounds(ds.crs, grid.crs, *ds.bounds, densify_pts=21)
    except Exception as e:  # PROJ errors have several types across rasterio versions
        raise DataError(path, f"cannot transform its extent into the CRS {grid.crs}: {e}") from e
    if disjoint_bounds(bounds, grid_bounds):
        raise DataError(
            path,
            f"does not overlap the scene it is read onto ({what} extent "
            f"{tuple(round(v, 6) for v in bounds)} vs {tuple(round(v, 6) for v in grid_bounds)} "
            f"in {grid.crs})",
            f"an {what} scene covering (part of) that scene",
        )


class S2Source:
    """An S2 scene opened for windowed reading as 13 bands.

    Args:
        path: 13-band L1C or 12-band L2A GeoTIFF (may point into a .tar.gz).
        b10: DN for the missing B10 of L2A input; None for :data:`L2A_B10_FILL_DN`.

    Attributes:
        meta: the file's grid (:class:`~cloudfree.io.RasterMeta`).
        l2a: True for 12-band input (B10 inserted on reading).
        b10_fill: the B10 DN used (None for L1C).
        bands: band names of the file, in file order.

    Raises:
        DataError: missing / unreadable file, a band count other than 12 or 13, or a dtype that
            is not integer or float.
    """

    def __init__(self, path: str | os.PathLike[str], b10: float | None = None) -> None:
        self.path = Path(path)
        self.ds = _open(path, "S2", _S2_EXPECTED)
        self._file: Any = None  # the file itself, once warp_to put a WarpedVRT over it
        try:
            self.meta: RasterMeta = meta_of(self.ds)
            count, dtype = self.meta.count, np.dtype(self.meta.dtype)
            if count not in (NUM_S2_BANDS, len(S2_L2A_BANDS)):
                raise DataError(path, f"has {count} bands", _S2_EXPECTED)
            if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
                raise DataError(path, f"has dtype {dtype}", "integer or float DN")
            check_scene(self.ds, "s2", path)  # DN, not reflectance; not an empty image
        except Exception:
            self.ds.close()
            raise
        self.l2a = count == len(S2_L2A_BANDS)
        # Whether a read can hold non-finite values or a nodata other than 0 to make 0
        # (zero_missing); read() gets float32 whatever the file's dtype, so this is decided
        # from the file, sparing the tile loop a pass over every window.
        self._cleans = np.issubdtype(dtype, np.floating) or self.meta.nodata not in (None, 0)
        self.bands = S2_L2A_BANDS if self.l2a else S2_BANDS
        self.b10_fill: float | None = None
        if self.l2a:
            self.b10_fill = float(L2A_B10_FILL_DN if b10 is None else b10)
            msg = (
                f"{path}: 12 bands, read as Sentinel-2 L2A ({', '.join(S2_L2A_BANDS)}); L2A has "
                f"no B10 (cirrus), which the model takes: B10 is filled with the constant "
                f"{self.b10_fill:g} DN (a clear sky without cirrus; set --b10 / b10= to change "
                "it). The model was trained on L1C top-of-atmosphere data: expect a bias on L2A."
            )
            warnings.warn(msg, UserWarning, stacklevel=2)
        elif b10 is not None:
            log.info("%s has 13 bands (L1C): its own B10 is used, b10=%g is ignored", path, b10)

    @property
    def height(self) -> int:
        """Rows of the scene."""
        return self.meta.height

    @property
    def width(self) -> int:
        """Columns of the scene."""
        return self.meta.width

    def read(self, region: Window) -> tuple[np.ndarray, Window]:
        """13-band DN of ``region`` (reflect-padded outside the scene), float32; pixels that
        hold no data (the file's nodata, NaN) are 0 in every band
        (:func:`cloudfree.units.zero_missing`), as in :meth:`read_bands`.

        Returns:
            ``((13, h, w) float32 DN in S2_BANDS order, inner)`` as :func:`read_padded`.
        """
        data, inner = read_padded(self.ds, region, self.height, self.width)
        if self._cleans:  # integer DN without a declared nodata (other than 0) are as read
            data = zero_missing(data, self.meta.nodata)
        if self.l2a:
            fill = np.full((1, *data.shape[1:]), self.b10_fill, dtype=np.float32)
            fill[0, nodata_pixels(data, None)] = 0  # a missing pixel stays 0 in every band
            i = s2_index("B10")
            data = np.concatenate([data[:i], fill, data[i:]])
        return data, inner

    def read_bands(self, bands: tuple[str, ...], win: Window) -> np.ndarray:
        """Raw values of some bands by name in a window inside the scene: the file's dtype,
        or float32 when B10 of an L2A scene is asked for (the fill value, as :meth:`read`)."""
        from rasterio.windows import Window as RioWindow

        r, c, h, w = win
        if not (self.l2a and "B10" in bands):
            idx = [self.bands.index(b) + 1 for b in bands]
            return zero_missing(self.ds.read(indexes=idx, window=RioWindow(c, r, w, h)),
                                self.meta.nodata)  # fmt: skip
        held = [b for b in bands if b != "B10"]  # only these are read; B10 is the fill
        data = self.ds.read(
            indexes=[self.bands.index(b) + 1 for b in held],
            window=RioWindow(c, r, w, h),
            out_dtype="float32",
        )
        data = zero_missing(data, self.meta.nodata)
        out = np.full((len(bands), h, w), self.b10_fill, dtype=np.float32)
        out[:, nodata_pixels(data, None)] = 0  # a missing pixel stays 0 in every band
        out[[i for i, b in enumerate(bands) if b != "B10"]] = data
        return out

    def warp_to(self, grid: RasterMeta) -> bool:
        """Read this scene on ``grid`` from now on: reprojected (bilinear) where its grid
        differs, no data (0) outside its extent. Returns whether it was needed."""
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        if self.meta.same_grid(grid):
            return False
        check_overlap(self.ds, self.path, grid, "S2")
        nodata = self.meta.nodata if self.meta.nodata is not None else 0
        self._file = self.ds
        self.ds = WarpedVRT(
            self.ds, crs=grid.crs, transform=grid.transform, width=grid.width,
            height=grid.height, resampling=Resampling.bilinear, src_nodata=nodata,
            nodata=nodata,
        )  # fmt: skip
        self.meta = replace(grid, count=self.meta.count, dtype=self.meta.dtype, nodata=nodata)
        self._cleans = True  # pixels outside the extent are the nodata value: made 0
        return True

    def close(self) -> None:
        """Close the file."""
        self.ds.close()
        if self._file is not None:
            self._file.close()


class S1Source:
    """An S1 scene read on the S2 grid, reprojected when its grid differs.

    Args:
        path: 2-band (VV, VH) dB GeoTIFF.
        s2: the grid to read onto.

    Attributes:
        reprojected: True if S1 is on another CRS, resolution or extent and is warped
            (``rasterio.vrt.WarpedVRT``, bilinear) onto the S2 grid.

    Raises:
        DataError: missing / unreadable file, not 2 bands, no georeferencing while the size
            differs from S2's, or no overlap with the S2 scene at all.
    """

    def __init__(
        self, path: str | os.PathLike[str], s2: RasterMeta, s2_path: str | os.PathLike[str] = "S2"
    ) -> None:
        self.path = Path(path)
        self.s2_path = s2_path  # named in the message when S2 is the one without georeferencing
        self.src = _open(path, "S1", _S1_EXPECTED)
        self.ds: Any = self.src
        try:
            self._setup(s2)
        except Exception:
            self.close()
            raise

    def _setup(self, s2: RasterMeta) -> None:
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        src, path = self.src, self.path
        meta = meta_of(src)
        if meta.count != NUM_S1_BANDS:
            raise DataError(path, f"has {meta.count} bands", _S1_EXPECTED)
        if not np.issubdtype(np.dtype(meta.dtype), np.number):
            raise DataError(path, f"has dtype {meta.dtype}", _S1_EXPECTED)
        self.nodata = meta.nodata
        check_scene(src, "s1", path)  # dB, not linear power
        georef = meta.crs is not None and not src.transform.is_identity
        s2_georef = s2.crs is not None and s2.transform is not None
        if not georef or not s2_georef:
            if (meta.height, meta.width) != (s2.height, s2.width) and georef:
                raise DataError(
                    self.s2_path,
                    f"has no georeferencing (no CRS or geotransform), so the S1 scene {path} "
                    f"({meta.height}x{meta.width}) cannot be placed on its {s2.height}x"
                    f"{s2.width} grid",
                    "an S2 GeoTIFF with its CRS and geotransform (as 'cloudfree stack' writes), "
                    "or S1 already on the S2 grid (same size)",
                )
            if (meta.height, meta.width) != (s2.height, s2.width):
                raise DataError(
                    path,
                    f"has no georeferencing (or S2 has none) and its size {meta.height}x"
                    f"{meta.width} differs from the S2 scene's {s2.height}x{s2.width}",
                    "S1 on the S2 grid, or both georeferenced so that S1 can be reprojected",
                )
            log.warning("%s: no georeferencing; assumed to be on the S2 grid (same size)", path)
            self.reprojected = False
            return
        if meta.same_grid(s2):
            self.reprojected = False
            return
        check_overlap(self.src, self.path, s2, "S1")
        # NaN marks "no S1 here" (outside its extent or its nodata) so that coverage is exact.
        self.ds = WarpedVRT(
            src,
            crs=s2.crs,
            transform=s2.transform,
            width=s2.width,
            height=s2.height,
            resampling=Resampling.bilinear,
            src_nodata=self.nodata,
            nodata=np.nan,
            dtype="float32",
        )
        self.reprojected = True
        log.info(
            "%s is on another grid (%s, %.6g x %.6g, %dx%d): reprojected onto the S2 grid "
            "(%s, %dx%d) with bilinear resampling",
            path,
            meta.crs,
            abs(src.transform.a),
            abs(src.transform.e),
            meta.height,
            meta.width,
            s2.crs,
            s2.height,
            s2.width,
        )

    def read(self, region: Window, height: int, width: int) -> np.ndarray:
        """(2, h, w) float32 dB of ``region`` on the S2 grid; NaN where S1 has no data."""
        data, _ = read_padded(self.ds, region, height, width)
        if self.nodata is not None and not np.isnan(self.nodata) and not self.reprojected:
            data[data == np.float32(self.nodata)] = np.nan
        return data

    def close(self) -> None:
        """Close the files."""
        if self.ds is not self.src:
            self.ds.close()
        self.src.close()


def s1_coverage(s1_db: np.ndarray) -> np.ndarray:
    """(H, W) bool: True where every S1 band holds a finite value."""
    return np.isfinite(s1_db).all(axis=0)


_MASK_EXPECTED = (
    "a 1-band cloud mask GeoTIFF on the S2 scene's grid (same size, CRS and transform): 0 "
    "clear, nonzero cloud or shadow (the 0/1/2 classes of 'cloudfree mask', or any other "
    "nonzero code); 'cloudfree mask S2.tif --out MASK.tif' writes one"
)


class MaskSource:
    """A cloud/shadow mask file read window by window on the S2 grid.

    Values: 0 clear, 1 cloud, 2 shadow are kept (the classes of :mod:`cloudfree.masks`); any
    other nonzero value (a 0/255 or 0/1 mask from another tool) is read as 1, cloud, and so is
    NaN (unknown: filled rather than trusted).

    Args:
        path: 1-band GeoTIFF.
        s2: the S2 scene's grid, which the mask must share exactly.

    A mask without georeferencing is taken to be on the S2 grid when its size is the scene's.

    Raises:
        DataError: missing or unreadable file, more than one band, another size, CRS or
            transform than the S2 scene (a mask of another grid is refused, not resampled:
            a resampled mask would blur the cloud edges it exists to mark).
    """

    def __init__(self, path: str | os.PathLike[str], s2: RasterMeta) -> None:
        self.path = Path(path)
        self.ds = _open(path, "mask", _MASK_EXPECTED)
        try:
            meta = meta_of(self.ds)
            if meta.count != 1:
                raise DataError(path, f"has {meta.count} bands", _MASK_EXPECTED)
            if (meta.height, meta.width) != (s2.height, s2.width):
                raise DataError(
                    path,
                    f"is {meta.height}x{meta.width} pixels but the S2 scene is "
                    f"{s2.height}x{s2.width}",
                    _MASK_EXPECTED,
                )
            georef = meta.crs is not None and not self.ds.transform.is_identity
            if georef and s2.crs is not None and not meta.same_grid(s2):
                raise DataError(
                    path,
                    f"is on another grid than the S2 scene (CRS {meta.crs} vs {s2.crs}, "
                    f"transform {tuple(meta.transform)[:6]} vs {tuple(s2.transform)[:6]})",
                    _MASK_EXPECTED,
                )
        except Exception:
            self.ds.close()
            raise
        self.height, self.width = meta.height, meta.width

    def read(self, region: Window) -> np.ndarray:
        """uint8 (h, w) mask of ``region`` (reflect-padded outside the scene)."""
        data, _ = read_padded(self.ds, region, self.height, self.width)
        m = data[0]
        out = np.where(np.isin(m, (0.0, 1.0, 2.0)), m, np.where(m != 0, 1.0, 0.0))
        return np.nan_to_num(out, nan=1.0).astype(np.uint8)

    def close(self) -> None:
        """Close the file."""
        self.ds.close()
