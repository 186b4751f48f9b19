"""GeoTIFF I/O with rasterio: georeferencing kept, windowed reads, atomic writes.

Paths may point *into* a ``.tar.gz`` / ``.tgz`` / ``.tar`` archive, written as if the archive
were a folder (``ROIs1970_fall_s1.tar.gz/ROIs1970_fall_s1/s1_136/x.tif``): they are read through
GDAL's ``/vsitar/`` without unpacking anything to disk.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.errors import CloudfreeError, DataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
#: GDAL block cache while stacking a product or predicting a scene, MiB (unless the user set
#: GDAL_CACHEMAX): GDAL's default, 5 % of the RAM, lets the cache of read and written blocks
#: grow with the scene up to that size; a fixed cap keeps the peak memory flat.
GDAL_CACHE_MB = 128
_ARCHIVE_RE = re.compile(r"^(?P<archive>.*?\.(?:tar\.gz|tgz|tar))(?:/(?P<member>.*))?$")


def split_archive_path(path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """Split ``a/b.tar.gz/c/d.tif`` into ``("a/b.tar.gz", "c/d.tif")``; None if no archive."""
    m = _ARCHIVE_RE.match(os.fspath(path))
    if m is None or not m.group("member"):
        return None
    return m.group("archive"), m.group("member")


def gdal_cache_env() -> dict[str, int]:
    """``rasterio.Env`` options that cap GDAL's block cache at :data:`GDAL_CACHE_MB`.

    In bytes: rasterio passes an integer ``GDAL_CACHEMAX`` to ``GDALSetCacheMax64``, so 128
    would mean 128 bytes (a cache that holds no block). Empty when the environment variable
    ``GDAL_CACHEMAX`` is set: the user's value wins.
    """
    if "GDAL_CACHEMAX" in os.environ:
        return {}
    return {"GDAL_CACHEMAX": GDAL_CACHE_MB << 20}


def gdal_path(path: str | os.PathLike[str]) -> str:
    """The path GDAL/rasterio should open: ``/vsitar/`` for members of archives."""
    parts = split_archive_path(path)
    if parts is None:
        return os.fspath(path)
    archive, member = parts
    return f"/vsitar/{os.path.abspath(archive)}/{member}"


@dataclass(frozen=True)
class RasterMeta:
    """Georeferencing and layout of a raster (or of a window of it).

    ``transform`` is a rasterio ``Affine`` (pixel -> CRS coordinates) and ``crs`` a rasterio
    ``CRS`` or None for non-georeferenced files.
    """

    width: int
    height: int
    count: int
    dtype: str
    crs: Any = None
    transform: Any = None
    nodata: float | None = None
    descriptions: tuple[str | None, ...] = field(default_factory=tuple)

    def same_grid(self, other: RasterMeta, tol: float = 1e-6) -> bool:
        """True if both rasters cover the same pixels: size, CRS and transform agree."""
        if (self.width, self.height) != (other.width, other.height):
            return False
        if (self.crs is None) != (other.crs is None):
            return False
        if self.crs is not None and self.crs != other.crs:
            return False
        if self.transform is None or other.transform is None:
            return self.transform is other.transform
        return self.transform.almost_equals(other.transform, precision=tol)

    def profile(self, **overrides: Any) -> dict[str, Any]:
        """A rasterio creation profile (GeoTIFF) for a file with this grid."""
        prof: dict[str, Any] = {
            "driver": "GTiff",
            "width": self.width,
            "height": self.height,
            "count": self.count,
            "dtype": self.dtype,
            "crs": self.crs,
            "transform": self.transform,
            "nodata": self.nodata,
        }
        prof.update(overrides)
        return prof


def meta_of(ds: Any, window: Any = None, count: int | None = None) -> RasterMeta:
    """The RasterMeta of an open rasterio dataset (or of a window of it)."""
    transform = ds.transform if window is None else ds.window_transform(window)
    width = ds.width if window is None else int(window.width)
    height = ds.height if window is None else int(window.height)
    crs = ds.crs if ds.crs else None
    return RasterMeta(
        width=width,
        height=height,
        count=ds.count if count is None else count,
        dtype=ds.dtypes[0],
        crs=crs,
        transform=transform,
        nodata=ds.nodata,
        descriptions=tuple(ds.descriptions),
    )


def read_meta(path: str | os.PathLike[str]) -> RasterMeta:
    """Read only the header of a raster. Raises DataError if it cannot be opened."""
    import rasterio

    try:
        with rasterio.open(gdal_path(path)) as ds:
            return meta_of(ds)
    except rasterio.errors.RasterioError as e:
        raise DataError(path, f"cannot open raster: {e}", "a readable GeoTIFF") from e


def read_raster(
    path: str | os.PathLike[str],
    window: tuple[int, int, int, int] | None = None,
    bands: Sequence[int] | None = None,
    expect_count: int | None = None,
    expect_dtypes: Sequence[str] | None = None,
    out_dtype: str | None = None,
) -> tuple[np.ndarray, RasterMeta]:
    """Read a raster, or a window of it, as a (bands, rows, cols) array.

    Args:
        path: file path (or a path into an archive, see the module docstring).
        window: ``(row_off, col_off, height, width)`` in pixels, or None for the whole raster.
        bands: 1-based band indices to read, or None for all.
        expect_count: required number of bands in the file; DataError otherwise.
        expect_dtypes: accepted data types (e.g. ``("uint16",)``); DataError otherwise.
        out_dtype: cast the result to this dtype.

    Returns:
        ``(array, meta)`` where ``meta`` describes the window actually read.

    Raises:
        DataError: the file is missing, corrupt or truncated, or not of the expected layout.
    """
    import rasterio
    from rasterio.windows import Window

    gp = gdal_path(path)
    if split_archive_path(path) is None and not os.path.exists(gp):
        raise DataError(path, "file does not exist", "an existing GeoTIFF; check the index's root")
    try:
        with rasterio.open(gp) as ds:
            if expect_count is not None and ds.count != expect_count:
                raise DataError(path, f"has {ds.count} bands", f"{expect_count} bands")
            if expect_dtypes is not None and ds.dtypes[0] not in expect_dtypes:
                raise DataError(path, f"has dtype {ds.dtypes[0]}", f"one of {tuple(expect_dtypes)}")
            win = None
            if window is not None:
                r, c, h, w = window
                if r < 0 or c < 0 or r + h > ds.height or c + w > ds.width:
                    raise DataError(
                        path,
                        f"window (row {r}, col {c}, {h}x{w}) outside the {ds.height}x{ds.width} raster",
                        "a window inside the raster",
                    )
                win = Window(c, r, w, h)
            idx = list(bands) if bands is not None else None
            arr = ds.read(indexes=idx, window=win, out_dtype=out_dtype)
            meta = meta_of(ds, win, count=arr.shape[0])
    except rasterio.errors.RasterioError as e:
        raise DataError(
            path, f"cannot read raster (corrupt or truncated?): {e}", "a readable GeoTIFF"
        ) from e
    return arr, meta


@functools.cache
def _umask() -> int:
    """The process umask (read once: ``os.umask`` can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's data, or a folder's entries (its renames), to the disk: ``os.fsync`` on a
    read-only descriptor, which folders need."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: ``.NAME.HOST.PID.XXXXXXXX.part``: a temporary file of :func:`atomic_path`, named after the
#: output, the host and the process that writes it.
_PART_RE = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.\w+\.part$")


@functools.cache
def _host() -> str:
    """This machine's name as one token (no dots), for temporary file names."""
    import socket

    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"


def _alive(pid: int) -> bool:
    """Whether a process of this machine with that pid runs (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_parts(folder: str | os.PathLike[str], name: str) -> list[Path]:
    """Delete what :func:`atomic_path` left of output ``name`` in ``folder`` when its process
    was killed (``kill -9``, out of memory, power cut): the ``.part`` files (and staging
    folders, :func:`new_part_dir`) of processes of this host that no longer run. Those of running processes (another ``predict`` writing the
    same output now) and of other hosts (a shared disk) are kept.

    Returns:
        The files deleted.
    """
    gone = []
    for p in Path(folder).glob(f".{glob_escape(name)}.*.part"):
        m = _PART_RE.match(p.name)
        if m is None or m["name"] != name or m["host"] != _host() or _alive(int(m["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):  # a concurrent sweep took it
            if p.is_dir():
                import shutil

                shutil.rmtree(p)
            else:
                p.unlink()
            gone.append(p)
    return gone


def glob_escape(text: str) -> str:
    """``text`` with the glob metacharacters ``*?[`` made literal."""
    return re.sub(r"([*?\[])", r"[\1]", text)


#: Free bytes under which a failed write is put down to a full disk (GDAL reports a short
#: write as "Write error at scanline 0", without the errno).
_FULL_BYTES = 1 << 20
#: errno values of a disk (or quota, or file size limit) that takes no more bytes.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: Outputs checked for completeness before they are renamed into place.
RASTER_SUFFIXES = (".tif", ".tiff")


class WriteError(CloudfreeError, OSError):
    """An output could not be written completely (a full disk, a quota, a size limit): nothing
    was written under its name."""


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return None
    return st.f_bavail * st.f_frsize


def no_space(e: BaseException, folder: Path) -> bool:
    """Whether ``e`` (or an exception it was raised from) comes from a disk that is full."""
    seen: BaseException | None = e
    from_io = False  # an error of a library or the OS (a write), not one of our checks
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _NO_SPACE:
            return True
        if "No space left" in str(seen):
            return True
        from_io = from_io or not isinstance(seen, CloudfreeError) or isinstance(seen, WriteError)
        seen = seen.__cause__ or seen.__context__
    free = _free_bytes(folder)
    return from_io and free is not None and free < _FULL_BYTES


def check_complete_raster(path: str | os.PathLike[str]) -> None:
    """Raise :class:`WriteError` unless the GeoTIFF ``path`` is complete: it opens and every
    block of every band has its bytes inside the file. GDAL reports a write that fails when
    it flushes its cache (at close) only in its log, so a full disk could otherwise leave a
    truncated file that looks written."""
    import rasterio

    size = os.path.getsize(path)
    try:
        with rasterio.Env(CPL_DEBUG=False), rasterio.open(path) as ds:
            for b in range(1, ds.count + 1):
                for (row, col), _ in ds.block_windows(b):
                    off = ds.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=b)
                    n = ds.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=b)
                    if off is None or n is None:
                        return  # not a format with blocks GDAL can list: nothing to check
                    if int(off) == 0 or int(off) + int(n) > size:
                        raise WriteError(
                            f"band {b}, block ({row}, {col}) is missing from the file written"
                        )
    except rasterio.errors.RasterioError as e:
        raise WriteError(f"the file written cannot be read back ({e})") from e


def new_part_dir(final: str | os.PathLike[str]) -> Path:
    """A new staging folder beside output ``final``, named like its ``.part`` files, so that
    :func:`sweep_parts` removes it if the process is killed; the caller removes it when done."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.{_host()}.{os.getpid()}."
    return Path(tempfile.mkdtemp(prefix=prefix, suffix=".part", dir=final.parent))


def _new_part(final: Path) -> Path:
    """A new temporary file beside ``final``, named as :data:`_PART_RE` says (swept when its
    process was killed)."""
    prefix = f".{final.name}.{_host()}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=final.parent)
    os.close(fd)
    return Path(tmp)


#: Deflate level of the output: level 1 writes 2.5x faster than the default 6 for a file
#: ~1 % larger on noisy 13-band DN (deflate rather than zstd: every GIS reads it).
DEFLATE_LEVEL = 1
#: Creation options of the cloud-optimised GeoTIFFs cloudfree writes (GDAL's COG driver):
#: 512-px blocks, deflate at the level of the windowed writes, a predictor for its type.
COG_OPTIONS: dict[str, Any] = {
    "BLOCKSIZE": 512, "COMPRESS": "DEFLATE", "LEVEL": DEFLATE_LEVEL, "PREDICTOR": "YES",
    "BIGTIFF": "IF_SAFER", "NUM_THREADS": "ALL_CPUS",
}  # fmt: skip


def to_cog(tmp: Path, final: Path, resampling: str | None = None) -> None:
    """Rewrite the GeoTIFF ``tmp`` (the staged file of output ``final``) in GDAL's COG layout,
    in place: the same values, tags, band names and nodata. Overviews it has are copied, never
    recomputed (computing them is what is slow on large multi-band scenes:
    :mod:`cloudfree.overviews` makes them while writing); with ``resampling`` (a GDAL name:
    ``"MODE"`` for class masks) a file without any gets them from the COG driver (fast for a
    1-band uint8 mask: 1.7 s for 10980 x 10980 px). A ``finish`` step of
    :func:`atomic_path`."""
    import rasterio
    from rasterio.shutil import copy

    with rasterio.open(tmp) as ds:
        has_overviews = bool(ds.overviews(1))
    if has_overviews:
        overviews = {"OVERVIEWS": "FORCE_USE_EXISTING"}
    elif resampling is not None:
        overviews = {"OVERVIEWS": "AUTO", "OVERVIEW_RESAMPLING": resampling}
    else:
        overviews = {"OVERVIEWS": "NONE"}
    cog = _new_part(final)
    try:
        with rasterio.Env(**gdal_cache_env()):
            copy(tmp, cog, driver="COG", **overviews, **COG_OPTIONS)
        os.replace(cog, tmp)
    finally:
        cog.unlink(missing_ok=True)


def mask_to_cog(tmp: Path, final: Path) -> None:
    """:func:`to_cog` for a class mask (0 clear, 1 cloud, 2 shadow): overviews of the most
    frequent class of each footprint (GDAL's ``MODE``)."""
    to_cog(tmp, final, resampling="MODE")


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], finish: Callable[[Path, Path], None] | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A crash or an exception leaves no half-written file under the final name, and any earlier
    file there stays intact until the new one is complete. A GeoTIFF is checked to be
    complete before the rename (:func:`check_complete_raster`); a write that fails because
    the disk is full is a :class:`WriteError` that names ``path``. The file gets the
    permissions a plain ``open(path, "w")`` would give (``0o666 & ~umask``), not
    ``mkstemp``'s private 0600. The temporary name carries the host and pid (:data:`_PART_RE`):
    a process killed before the rename leaves a ``.part`` file that the next write of the same
    output deletes (:func:`sweep_parts`). ``finish(tmp, path)``: a last step on the complete
    temporary file before the check and the rename (:func:`to_cog`).
    """
    from cloudfree.outputs import check_writable_file

    final = check_writable_file(path, "output")
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_parts(final.parent, final.name)
    tmp_path = _new_part(final)
    try:
        try:
            yield tmp_path
            if finish is not None:  # e.g. to_cog, once the body has closed the file
                finish(tmp_path, final)
            if final.suffix.lower() in RASTER_SUFFIXES and tmp_path.is_file():
                check_complete_raster(tmp_path)
        except Exception as e:
            # Asked while the partial file still fills the disk.
            if no_space(e, final.parent):
                raise WriteError(
                    f"no space left on device while writing {final}; nothing was written "
                    "under that name. Free some space, or write to another disk"
                ) from e
            if isinstance(e, WriteError):
                raise WriteError(f"writing {final} failed: {e}; nothing was written") from e
            if tmp_path.name in str(e):  # the user gave --out, not our hidden temporary name
                text = str(e).replace(str(tmp_path), str(final)).replace(tmp_path.name, final.name)
                raise WriteError(f"writing {final} failed: {text}; nothing was written") from e
            raise
        if tmp_path.is_file():
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_raster(
    path: str | os.PathLike[str],
    array: np.ndarray,
    meta: RasterMeta,
    descriptions: Sequence[str | None] | None = None,
    **profile: Any,
) -> Path:
    """Write a (bands, rows, cols) array as a GeoTIFF atomically (temporary name, then rename).

    Args:
        path: output file.
        array: data; its dtype and band count override ``meta``'s.
        meta: grid of the output (CRS, transform, nodata).
        descriptions: band names (e.g. ``S2_BANDS``); defaults to ``meta.descriptions``.
        **profile: extra rasterio creation options (``compress="deflate"``, ``tiled=True``...).
    """
    import rasterio

    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"array must be (bands, rows, cols), got shape {array.shape}")
    m = replace(meta, count=array.shape[0], height=array.shape[1], width=array.shape[2])
    prof = m.profile(dtype=array.dtype.name, **profile)
    descs = descriptions if descriptions is not None else meta.descriptions
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **prof) as ds:
        ds.write(array)
        if descs and len(descs) == array.shape[0]:
            for i, d in enumerate(descs, start=1):
                if d:
                    ds.set_band_description(i, d)
    return Path(path)
