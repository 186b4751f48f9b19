"""Reading the source GeoTIFFs of a pack into shard slots: the worker side of ``cloudfree pack``.

Internals of :func:`cloudfree.data.packed.pack.pack`. Tasks run in worker processes (or inline with
``workers=0``): each reads plain files, or streams one release archive once, writes every array
into its slot of the temporary shard files, and returns one result per file with the metadata or
the problem (file and reason) that makes its patch skipped.

Rows pointing into the release ``.tar.gz`` archives are not read through GDAL's ``/vsitar/``
(random access into gzip: measured ~0.1 s per file on a 300 MB archive, and worse as archives
grow) but by streaming each archive once, in its own order (``tarfile`` ``"r|*"`` +
``rasterio.io.MemoryFile``), writing members straight into their slots.

With ``masks`` (a map from each temporary cloudy-S2 shard file to its mask file), the cloud/shadow
mask of each cloudy patch is computed from the array just read (no extra I/O) and written into
the mask slot: the full patch, raw DN (see :mod:`cloudfree.data.release.mask_cache`).
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Container, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.data.packed.shards import array_spec
from cloudfree.data.release.index import IndexRow
from cloudfree.errors import DataError
from cloudfree.io import RasterMeta, meta_of, read_meta, read_raster, split_archive_path
from cloudfree.masks.patch import patch_mask

Problem = tuple[str, str, str | None]  # (path, problem, expected): DataError's arguments
Item = tuple[int, str, str, int]  # (position in the selection, kind, target .npy, offset)
#: What a read returns for one item: (position, kind, its raster's meta or None, problem or None).
Result = tuple[int, str, "RasterMeta | None", "Problem | None"]


_COUNTER: Any = None  # a multiprocessing.Value counting files done, set by init_worker


def init_worker(counter: Any) -> None:
    """Set the shared counter of files done (the executor's initializer; None unsets it)."""
    global _COUNTER
    _COUNTER = counter


def _tick() -> None:
    if _COUNTER is not None:
        with _COUNTER.get_lock():
            _COUNTER.value += 1


class _Targets:
    """The temporary shard arrays one task writes into, each mapped once per task."""

    def __init__(self) -> None:
        self._maps: dict[str, np.ndarray] = {}

    def write(self, path: str, offset: int, arr: np.ndarray) -> None:
        mm = self._maps.get(path)
        if mm is None:
            mm = self._maps[path] = np.load(path, mmap_mode="r+")
        mm[offset] = arr

    def close(self) -> None:
        # No msync here: the pages are in the page cache shared with the main process, which
        # fsyncs each file once before renaming it.
        self._maps.clear()


def _check(meta: RasterMeta, kind: str, hw: tuple[int, int], label: str) -> Problem | None:
    """The problem with a file of ``kind`` (band count, dtype, size), or None if it fits."""
    dtype, shape = array_spec(kind, 1, hw)
    bands = shape[1]
    if meta.count != bands:
        return label, f"has {meta.count} bands", f"{bands} bands in a {kind} file"
    if meta.dtype != dtype:
        return label, f"has dtype {meta.dtype}", f"{dtype} in a {kind} file"
    if (meta.height, meta.width) != hw:
        return label, f"is {meta.height}x{meta.width} pixels", f"{hw[0]}x{hw[1]} like the others"
    return None


def _store(
    targets: _Targets,
    items: Sequence[Item],
    arr: np.ndarray,
    meta: RasterMeta,
    hw: tuple[int, int],
    src: str,
    masks: Mapping[str, str] | None = None,
) -> list[Result]:
    out: list[Result] = []
    for pos, kind, target, offset in items:
        prob = _check(meta, kind, hw, src)
        if prob is None and kind == "s2_cloudy" and masks and target in masks:
            try:
                targets.write(masks[target], offset, patch_mask(arr))
            except DataError as e:
                prob = (src, f"no cloud mask: {e.problem}", e.expected)
        if prob is None:
            targets.write(target, offset, arr)
        out.append((pos, kind, None if prob else meta, prob))
        _tick()
    return out


def read_files(
    jobs: Sequence[tuple[str, Item]],
    hw: tuple[int, int],
    masks: Mapping[str, str] | None = None,
) -> list[Result]:
    """Read plain files (``(path, item)`` pairs) into their slots; one result per item.

    ``masks``: cloudy shard file -> mask shard file, to fill the mask slots (module docstring).
    """
    targets, out = _Targets(), list[Result]()
    try:
        for src, item in jobs:
            try:
                arr, meta = read_raster(src)
            except DataError as e:
                out.append((item[0], item[1], None, (e.path or src, e.problem, e.expected)))
                _tick()
                continue
            out += _store(targets, [item], arr, meta, hw, src, masks)
    finally:
        targets.close()
    return out


def member_name(name: str) -> str:
    """A tar member's name as the index gives it (see below)."""
    # As GDAL's /vsitar/ and cloudfree.data.release.discover name members: leading "./" and "/" dropped.
    while name.startswith(("./", "/")):
        name = name[2:] if name.startswith("./") else name[1:]
    return name


def _decode(data: bytes) -> tuple[np.ndarray, RasterMeta]:
    from rasterio.io import MemoryFile

    with MemoryFile(data) as mf, mf.open() as ds:
        return ds.read(), meta_of(ds)


def _members(archive: str, wanted: Container[str]) -> Generator[tuple[str, bytes], None, None]:
    """``(name, data)`` of the wanted file members, in archive order, read in one pass."""
    with tarfile.open(archive, "r|*") as tf:
        for m in tf:
            name = member_name(m.name)
            if m.isfile() and name in wanted:
                yield name, tf.extractfile(m).read()  # type: ignore[union-attr]


def read_archive(
    archive: str,
    members: dict[str, list[Item]],
    hw: tuple[int, int],
    masks: Mapping[str, str] | None = None,
) -> list[Result]:
    """Stream one archive once, in its own order, storing the wanted members in their slots
    (and, with ``masks``, the cloud masks of the cloudy ones)."""
    import rasterio

    wanted, targets = dict(members), _Targets()
    out: list[Result] = []
    stream = _members(archive, wanted)
    broken = ""
    prob: Problem
    try:
        while wanted:  # stop decompressing once everything is found
            try:
                name, data = next(stream)
            except StopIteration:
                break
            except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
                broken = f" (the archive is unreadable from there on: {e})"
                break
            items, src = wanted.pop(name), f"{archive}/{name}"
            try:
                arr, meta = _decode(data)
            except rasterio.errors.RasterioError as e:
                prob = (src, f"cannot read raster (corrupt or truncated?): {e}", None)
                for pos, kind, _, _ in items:
                    out.append((pos, kind, None, prob))
                    _tick()
                continue
            out += _store(targets, items, arr, meta, hw, src, masks)
    finally:
        stream.close()
        targets.close()
    for name, items in wanted.items():
        prob = (
            f"{archive}/{name}",
            f"not found in the archive{broken}",
            "the member the index names",
        )
        for pos, kind, _, _ in items:
            out.append((pos, kind, None, prob))
            _tick()
    return out


def _probe_archive(archive: str) -> tuple[int, int]:
    """Height and width of the first GeoTIFF in an archive (decompresses only up to it)."""
    with tarfile.open(archive, "r|*") as tf:
        for m in tf:
            if m.isfile() and m.name.lower().endswith((".tif", ".tiff")):
                _, meta = _decode(tf.extractfile(m).read())  # type: ignore[union-attr]
                return meta.height, meta.width
    raise DataError(archive, "holds no GeoTIFF", "a SEN12MS-CR release archive")


def probe_size(rows: Sequence[IndexRow], root: Path, tries: int = 8) -> tuple[int, int]:
    """``(height, width)`` of the patches, from the first readable file of the first rows."""
    import rasterio

    first: Exception | None = None
    src = ""
    probed: set[str] = set()
    for row in rows[:tries]:
        for kind in row.kinds:
            src = str(root / row.path(kind))
            parts = split_archive_path(src)
            try:
                if parts is None:
                    meta = read_meta(src)
                    return meta.height, meta.width
                if parts[0] not in probed:
                    probed.add(parts[0])
                    return _probe_archive(parts[0])
            except (DataError, rasterio.errors.RasterioError, tarfile.TarError, OSError,
                    EOFError, zlib.error) as e:  # fmt: skip
                first = first or e
    if isinstance(first, DataError):
        raise first
    raise DataError(
        src, f"cannot read the size of the first patches ({first})", "readable GeoTIFFs"
    )
