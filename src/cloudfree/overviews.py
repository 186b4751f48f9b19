"""Overviews of a GeoTIFF made while it is written window by window, for its COG copy.

A COG holds reduced copies of the image (overviews: 1/2, 1/4, ... of its size) so that a
viewer or a GIS reading it from object storage draws a whole scene from a few blocks. GDAL
computes them by reading the finished file back, many times over for a compressed,
pixel-interleaved multi-band file: a 13-band 8192 x 8192 output took 273 s after a 59 s write
(a 10980 x 10980 tile: over 46 GB read and not done after 5 min; ``benchmarks/cog.py``).
:class:`OverviewLevels` averages each window into every level while the window is still in
memory and writes the levels into files of their own; :meth:`OverviewLevels.to_cog` then
makes the COG with GDAL's COG driver told to use them as they are
(``OVERVIEWS=FORCE_USE_EXISTING``, through a VRT that lists them as the file's overviews).

Levels are those GDAL's COG driver would make: halve until the image fits one 512-px block.
Each overview pixel is the mean of the pixels with data of its ``f x f`` footprint (per band;
the file's nodata, NaN included, left out; nodata where the footprint holds none; integers
rounded half up), exactly for every level whose factor divides the window side (every level
for the 512- and 1024-px windows cloudfree writes, up to scenes of 262 144 px). Deeper levels
(windows like 1008 px, whose power-of-two part is 16) are averaged from the deepest exact
level, 2 x 2 pixels with equal weight. GDAL's own ``average`` spreads the remainder of a side
not divisible by ``f`` over the whole level; the two differ only near the right and bottom
edges of such scenes, by less than one overview pixel of position.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.io import COG_OPTIONS, DEFLATE_LEVEL, _new_part, gdal_cache_env, to_cog
from cloudfree.windows import Window, windows

#: GDAL's COG driver stops halving once a level fits one block of this side (its default).
COG_BLOCK: Final[int] = 512


def cog_factors(height: int, width: int, block: int = COG_BLOCK) -> list[int]:
    """Overview factors (2, 4, ...) the COG driver would make for a ``height x width`` image:
    halve until the level fits one ``block x block`` block; none for an image that already
    does."""
    factors: list[int] = []
    f = 1
    while -(-height // f) > block or -(-width // f) > block:
        f *= 2
        factors.append(f)
    return factors


def _level_block(side: int) -> int:
    """Block side of a level file whose windows are ``side`` pixels: the largest of 512, 256,
    ... 16 dividing it (a window then writes whole blocks, each once), else 16."""
    return next((b for b in (512, 256, 128, 64, 32, 16) if side % b == 0), 16)


class OverviewLevels:
    """Average overviews of the raster ``final`` (``profile``), fed window by window.

    Use as a context manager around the write (the level files, hidden temporary files beside
    ``final``, are removed on exit, whatever happens), :meth:`add` every window written, and
    :meth:`to_cog` as the ``finish`` step of :func:`cloudfree.io.atomic_path`::

        with OverviewLevels(out, profile, window) as levels, \\
                atomic_path(out, finish=levels.to_cog) as tmp, \\
                rasterio.open(tmp, "w", **profile) as dst:
            for win in windows(h, w, window):
                dst.write(values, window=...)
                levels.add(values, win)

    Args:
        final: the output path (the level files are staged beside it, swept if killed).
        profile: the output's rasterio profile (size, count, dtype, nodata, transform, CRS).
        window: side of the windows :meth:`add` gets (row-major from ``(0, 0)``, each at a
            multiple of it, as :func:`cloudfree.windows.windows` makes them).
        factors: the levels to make (default: :func:`cog_factors`).
    """

    def __init__(
        self,
        final: str | os.PathLike[str],
        profile: dict[str, Any],
        window: int,
        factors: list[int] | None = None,
    ) -> None:
        self.final = Path(final)
        self.profile = profile
        self.height, self.width = int(profile["height"]), int(profile["width"])
        self.window = window
        self.factors = cog_factors(self.height, self.width) if factors is None else factors
        # Exact levels: their footprints never straddle two windows.
        self.exact = [f for f in self.factors if window % f == 0]
        self.dtype = np.dtype(profile["dtype"])
        self.nodata = profile.get("nodata")
        self._files: dict[int, Path] = {}
        self._open: dict[int, Any] = {}
        self._parts: list[Path] = []

    def __enter__(self) -> OverviewLevels:
        return self

    def _open_levels(self) -> None:
        """Create the level files (at the first window: inside the caller's
        :func:`~cloudfree.io.atomic_path`, whose errors name the output, a full disk
        included)."""
        import rasterio

        for f in self.exact:
            path = self._part()
            self._open[f] = rasterio.open(path, "w", **self._level_profile(f))
            self._files[f] = path

    def __exit__(self, *exc: Any) -> None:
        self._close()
        for path in self._parts:
            path.unlink(missing_ok=True)

    def _part(self) -> Path:
        path = _new_part(self.final)
        self._parts.append(path)
        return path

    def _close(self) -> None:
        for ds in self._open.values():
            ds.close()
        self._open.clear()

    def _level_profile(self, f: int) -> dict[str, Any]:
        """A level file: the output's profile at 1/f of its size (GDAL's overview size,
        ``ceil(side / f)``), blocks fitting the windows, fast deflate."""
        from rasterio.transform import Affine

        side = _level_block(max(self.window // f, 1))
        transform = self.profile.get("transform") or Affine.identity()
        return {
            "driver": "GTiff",
            "height": -(-self.height // f),
            "width": -(-self.width // f),
            "count": self.profile["count"],
            "dtype": self.dtype.name,
            "nodata": self.nodata,
            "crs": self.profile.get("crs"),
            "transform": transform * Affine.scale(f),
            "tiled": True,
            "blockxsize": side,
            "blockysize": side,
            "compress": "deflate",
            "zlevel": DEFLATE_LEVEL,
            "predictor": 2 if self.dtype.kind in "iu" else 3,
            "interleave": "pixel",
            "BIGTIFF": "IF_SAFER",
        }

    def add(self, values: np.ndarray, win: Window) -> None:
        """Average the window ``win = (row, col, height, width)`` of the output, ``values``
        (bands, height, width) as written, into every exact level."""
        from rasterio.windows import Window as RioWindow

        if not self.exact:
            return
        if not self._files:
            self._open_levels()
        r, c, h, w = win
        if r % self.window or c % self.window:
            raise ValueError(f"window {win} is not on the grid of {self.window}-px windows")
        sums, counts = _valid_sums(values, self.nodata)  # level 2
        done = 2
        for f in self.exact:
            while done < f:  # levels are powers of 2: each is the previous one halved
                sums, counts = _halve(sums), _halve(counts)
                done *= 2
            out = _means(sums, counts, self.dtype, self.nodata)
            self._open[f].write(out, window=RioWindow(c // f, r // f, out.shape[2], out.shape[1]))

    def _deeper(self, tmp: Path) -> None:
        """The levels whose factor does not divide the window: averaged from the deepest
        exact level (from the output ``tmp`` itself when there is none), read by windows."""
        import rasterio
        from rasterio.windows import Window as RioWindow

        deeper = [f for f in self.factors if f not in self.exact]
        if not deeper:
            return
        base = max(self.exact, default=1)
        source = self._files[base] if self.exact else tmp
        with rasterio.open(source) as src:
            prof = dict(src.profile, transform=src.transform)
            nested = OverviewLevels(self.final, prof, COG_BLOCK, [f // base for f in deeper])
            nested._parts = self._parts  # its files are removed with ours
            try:
                for r, c, h, w in windows(src.height, src.width, COG_BLOCK):
                    nested.add(src.read(window=RioWindow(c, r, w, h)), (r, c, h, w))
            finally:
                nested._close()
        for f in deeper:
            if f // base in nested._files:
                self._files[f] = nested._files[f // base]
        # (a factor over 512 x that of the deepest exact level is not made: no real scene.)
        self.factors = [f for f in self.factors if f in self._files]

    def to_cog(self, tmp: Path, final: Path) -> None:
        """Rewrite the complete output ``tmp`` as a COG with these levels as its overviews
        (the ``finish`` step of :func:`cloudfree.io.atomic_path`)."""
        import rasterio
        from rasterio.shutil import copy

        self._close()
        if self.exact and not self._files:  # no window was added: nothing to average
            self.factors = []
        self._deeper(tmp)
        if not self.factors:
            to_cog(tmp, final)
            return
        vrt = self._part()
        with rasterio.Env(**gdal_cache_env()):
            copy(tmp, vrt, driver="VRT")
            _list_overviews(vrt, [self._files[f] for f in self.factors])
            cog = self._part()
            copy(vrt, cog, driver="COG", OVERVIEWS="FORCE_USE_EXISTING", **COG_OPTIONS)
        os.replace(cog, tmp)


def _list_overviews(vrt: Path, levels: list[Path]) -> None:
    """Add the level files, in order, as the overviews of every band of the VRT ``vrt``."""
    tree = ET.parse(vrt)
    for band in tree.getroot().iter("VRTRasterBand"):
        for path in levels:
            ov = ET.SubElement(band, "Overview")
            name = ET.SubElement(ov, "SourceFilename", relativeToVRT="0")
            name.text = str(path.resolve())
            ET.SubElement(ov, "SourceBand").text = band.get("band")
    tree.write(vrt)


def _valid_sums(values: np.ndarray, nodata: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(sums, counts) of 2 x 2 blocks of ``values`` (bands, h, w), pixels at ``nodata`` left
    out: the first level, computed without a float copy of the whole window."""
    b, h, w = values.shape
    v = values
    if h % 2 or w % 2:  # an edge window: pad with nodata-like cells that count for nothing
        v = np.zeros((b, h + h % 2, w + w % 2), dtype=values.dtype)
        v[:, :h, :w] = values
    valid = _valid(v, nodata)
    if h % 2 or w % 2:
        valid[:, h:, :] = False
        valid[:, :, w:] = False
    sums = np.zeros((b, v.shape[1] // 2, v.shape[2] // 2), dtype=np.float64)
    counts = np.zeros(sums.shape, dtype=np.int32)
    for dy in (0, 1):
        for dx in (0, 1):
            q, ok = v[:, dy::2, dx::2], valid[:, dy::2, dx::2]
            sums += np.where(ok, q, 0)
            counts += ok
    return sums, counts


def _valid(v: np.ndarray, nodata: float | None) -> np.ndarray:
    if v.dtype.kind == "f":
        ok = np.isfinite(v)
        if nodata is not None and not np.isnan(nodata):
            ok &= v != nodata
        return ok
    if nodata is None:
        return np.ones(v.shape, dtype=bool)
    return v != nodata


def _halve(a: np.ndarray) -> np.ndarray:
    """Sums of 2 x 2 blocks over the last two axes (an odd side padded with 0)."""
    b, h, w = a.shape
    if h % 2 or w % 2:
        a = np.pad(a, ((0, 0), (0, h % 2), (0, w % 2)))
    return a[:, 0::2, 0::2] + a[:, 1::2, 0::2] + a[:, 0::2, 1::2] + a[:, 1::2, 1::2]


def _means(sums: np.ndarray, counts: np.ndarray, dtype: np.dtype, nodata: float | None) -> Any:
    """Block means in the output's dtype; nodata (0 when it has none) where no pixel counted."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    empty = counts == 0
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        mean = np.clip(np.floor(mean + 0.5), info.min, info.max)
    fill = 0 if nodata is None else nodata
    mean[empty] = fill
    return mean.astype(dtype)
