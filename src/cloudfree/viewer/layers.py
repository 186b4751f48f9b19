"""Reading rasters for display, and turning them into RGB layers.

Shared by ``cloudfree render`` and the web viewer. Large rasters are never read whole: an
overview is read with rasterio's ``out_shape`` (GDAL decimates while reading, using the file's
internal overviews where there are any), and scene tiles are windowed reads with ``out_shape``.

Which composite a file gets is decided by its band count: 13 (L1C) or 12 (L2A) bands are
Sentinel-2 digital numbers (true or false colour), 2 bands are Sentinel-1 VV, VH in dB.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from cloudfree import render
from cloudfree.bands import NUM_S2_BANDS, S2_BANDS, S2_L2A_BANDS
from cloudfree.errors import DataError
from cloudfree.io import gdal_path, split_archive_path

COMPOSITES: tuple[str, ...] = ("true", "false")
#: Side of a scene tile in pixels (the zoomable viewer's tile size).
TILE: int = 256


@dataclass(frozen=True)
class Style:
    """How to draw a Sentinel-2 image: composite, stretch and its parameters."""

    composite: str = "true"
    stretch: str = "gain"
    gain: float = render.DEFAULT_GAIN
    p: tuple[float, float] = render.DEFAULT_PERCENTILES

    def __post_init__(self) -> None:
        if self.composite not in COMPOSITES:
            raise ValueError(f"unknown composite {self.composite!r}; expected one of {COMPOSITES}")
        if self.stretch not in render.STRETCHES:
            raise ValueError(f"unknown stretch {self.stretch!r}; expected {render.STRETCHES}")
        if not (math.isfinite(self.gain) and self.gain > 0):
            raise ValueError(f"gain must be a positive number, got {self.gain}")
        lo, hi = self.p
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.p}")

    @property
    def bands(self) -> tuple[str, str, str]:
        return render.TRUE_COLOUR if self.composite == "true" else render.FALSE_COLOUR


def _open(path: str | os.PathLike[str]):  # noqa: ANN202 - a rasterio dataset
    import rasterio

    gp = gdal_path(path)
    if split_archive_path(path) is None and not os.path.exists(gp):
        raise DataError(path, "file does not exist", "an existing GeoTIFF")
    try:
        return rasterio.open(gp)
    except rasterio.errors.RasterioError as e:
        raise DataError(path, f"cannot open raster: {e}", "a readable GeoTIFF") from e


def overview_shape(height: int, width: int, max_size: int | None) -> tuple[int, int]:
    """Output size of an overview: the raster's size, shrunk so its longer side <= max_size."""
    if max_size is None or max(height, width) <= max_size:
        return height, width
    f = max_size / max(height, width)
    return max(1, round(height * f)), max(1, round(width * f))


def read_display(
    path: str | os.PathLike[str],
    max_size: int | None = None,
    window: tuple[int, int, int, int] | None = None,
    out_size: tuple[int, int] | None = None,
    categorical: bool = False,
) -> tuple[np.ndarray, float | None]:
    """Read a raster (or a window of it) for display, decimated while reading.

    Args:
        path: GeoTIFF (or a path into a release archive).
        max_size: longest side of the result; None keeps full resolution.
        window: ``(row_off, col_off, height, width)`` in pixels; None for the whole raster.
        out_size: explicit ``(height, width)`` of the result (overrides ``max_size``).
        categorical: nearest-neighbour decimation (masks) instead of averaging.

    Returns:
        ``(array (bands, h, w) float64 with nodata as NaN, nodata value)``.

    Raises:
        DataError: missing, unreadable or truncated file.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    with _open(path) as ds:
        r, c, h, w = window if window is not None else (0, 0, ds.height, ds.width)
        if out_size is None:
            out_size = overview_shape(h, w, max_size)
        resampling = Resampling.nearest if categorical else Resampling.average
        try:
            arr = ds.read(
                window=Window(c, r, w, h),
                out_shape=(ds.count, *out_size),
                resampling=resampling,
                masked=ds.nodata is not None,
            )
        except rasterio.errors.RasterioError as e:
            raise DataError(
                path, f"cannot read raster (corrupt or truncated?): {e}", "a readable GeoTIFF"
            ) from e
        nodata = ds.nodata
    if np.ma.isMaskedArray(arr):
        arr = np.ma.asarray(arr, dtype=np.float64).filled(np.nan)
    return np.asarray(arr, dtype=np.float64), nodata


def raster_size(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """``(height, width, count)`` of a raster, from its header only."""
    with _open(path) as ds:
        return ds.height, ds.width, ds.count


def s2_rgb(arr: np.ndarray, style: Style = Style()) -> np.ndarray:
    """A (13 | 12, H, W) DN array (NaN = nodata) -> (H, W, 3) uint8 in the chosen style."""
    f = render.true_colour if style.composite == "true" else render.false_colour
    return f(arr, mode=style.stretch, gain=style.gain, p=style.p)


def any_rgb(arr: np.ndarray, style: Style = Style()) -> np.ndarray:
    """Pick the composite by band count: S2 (13 | 12 bands) or S1 (2 bands, dB)."""
    if arr.shape[0] in (NUM_S2_BANDS, len(S2_L2A_BANDS)):
        return s2_rgb(arr, style)
    if arr.shape[0] == 2:
        return render.sar_composite(arr)
    if arr.shape[0] == 1:  # a cloud/shadow mask (--mask-out), or any single quantity
        return one_band_rgb(arr[0])
    raise ValueError(
        f"cannot display a {arr.shape[0]}-band raster: expected Sentinel-2 (13 or 12 bands), "
        "Sentinel-1 (2 bands, VV and VH in dB) or one band (a mask, a quantity)"
    )


def is_mask(band: np.ndarray) -> bool:
    """Whether one band holds mask classes only (0 clear, 1 cloud, 2 shadow)."""
    v = np.asarray(band)
    finite = v[np.isfinite(v)] if np.issubdtype(v.dtype, np.floating) else v
    return bool(finite.size) and bool(np.isin(finite, (0, 1, 2)).all())


def one_band_rgb(band: np.ndarray) -> np.ndarray:
    """A mask in its classes' colours (:func:`cloudfree.render.mask_rgb`), any other band in
    grey between its 2nd and 98th percentiles."""
    if is_mask(band):
        return render.mask_rgb(np.asarray(band).astype(np.uint8))
    return render.grey_rgb(band)


def _limits(x: np.ndarray, p: tuple[float, float]) -> tuple[float, float]:
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, p)
    return float(lo), float(hi)


@dataclass(frozen=True)
class SceneStretch:
    """Fixed per-band limits for drawing every tile of a scene alike.

    With a ``"percentile"`` stretch each tile would otherwise get its own limits and the mosaic
    would show seams; the limits are taken once from the scene's overview instead.
    """

    limits: tuple[tuple[float, float], ...]  # DN (lo, hi) of the three displayed bands

    @classmethod
    def from_overview(cls, arr: np.ndarray, style: Style) -> SceneStretch:
        idx = _band_idx(arr.shape[0], style.bands)
        return cls(tuple(_limits(arr[i], style.p) for i in idx))


def _band_idx(count: int, bands: tuple[str, ...]) -> list[int]:
    order = S2_BANDS if count == NUM_S2_BANDS else S2_L2A_BANDS
    if count not in (NUM_S2_BANDS, len(S2_L2A_BANDS)):
        raise ValueError(f"expected a Sentinel-2 raster of 13 or 12 bands, got {count}")
    return [order.index(b) for b in bands]


def tile_rgb(arr: np.ndarray, style: Style, fixed: SceneStretch | None = None) -> np.ndarray:
    """Draw one scene tile; with ``fixed`` the percentile limits are the scene's, not the tile's.

    The fixed limits are applied by rescaling the three displayed bands so that ``lo`` -> 0 and
    ``hi`` -> 1 reflectance and drawing them with gain 1, so the colours are those of
    :func:`cloudfree.render.stretch` over the whole scene.
    """
    if arr.shape[0] in (1, 2):
        return any_rgb(arr, style)
    if style.stretch != "percentile" or fixed is None:
        return any_rgb(arr, style)
    scaled = np.zeros_like(arr)
    for i, (lo, hi) in zip(_band_idx(arr.shape[0], style.bands), fixed.limits, strict=True):
        span = hi - lo if hi > lo else 1.0
        scaled[i] = (arr[i] - lo) / span * 10000.0  # DN of reflectance (x - lo) / span
    return s2_rgb(scaled, Style(style.composite, "gain", 1.0, style.p))


@dataclass(frozen=True)
class TileGrid:
    """An XYZ-like pyramid over one raster: zoom ``max_zoom`` is full resolution.

    At zoom ``z`` a tile covers ``TILE * 2**(max_zoom - z)`` source pixels; zoom 0 is one tile
    holding the whole raster.
    """

    height: int
    width: int

    @property
    def max_zoom(self) -> int:
        return max(0, math.ceil(math.log2(max(self.height, self.width) / TILE)))

    def span(self, z: int) -> int:
        return TILE * 2 ** (self.max_zoom - z)

    def tiles(self, z: int) -> tuple[int, int]:
        """Number of tile (columns, rows) at zoom z."""
        s = self.span(z)
        return math.ceil(self.width / s), math.ceil(self.height / s)

    def window(self, z: int, x: int, y: int) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
        """Source window ``(row, col, h, w)`` and output size ``(h, w)`` of tile (z, x, y).

        Raises:
            ValueError: the tile is outside the pyramid.
        """
        nx, ny = self.tiles(z) if 0 <= z <= self.max_zoom else (0, 0)
        if not (0 <= x < nx and 0 <= y < ny):
            raise ValueError(f"tile {z}/{x}/{y} is outside the pyramid (max zoom {self.max_zoom})")
        s = self.span(z)
        r, c = y * s, x * s
        h, w = min(s, self.height - r), min(s, self.width - c)
        f = TILE / s
        return (r, c, h, w), (max(1, round(h * f)), max(1, round(w * f)))


def output_tags(path: str | os.PathLike[str]) -> dict[str, str]:
    """The tags of a GeoTIFF (empty when it cannot be read)."""
    import rasterio

    try:
        with rasterio.open(path) as ds:
            return dict(ds.tags())
    except rasterio.errors.RasterioError:
        return {}


def output_kind(tags: dict[str, str]) -> str:
    """What a GeoTIFF is, from the tags cloudfree writes into its outputs: ``"mask"`` (``mask``,
    ``--mask-out``), ``"prediction"`` (``predict``, ``inpaint``), ``"std"`` (a predicted
    standard deviation, ``--uncertainty-out``), else ``"image"`` (an input, any other file)."""
    if "classes" in tags:
        return "mask"
    if tags.get("software") == "cloudfree predict":
        return "std" if "quantity" in tags else "prediction"
    return "image"
