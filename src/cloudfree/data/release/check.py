"""Header checks of an index (``cloudfree index --check``): what makes a patch file unusable.

Opening headers costs ~1-1.5 ms per file here (about 7-10 minutes for the 366k files of the full
release), so discovery never does it unless asked.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from typing import Any, Final

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS, PATCH_SIZE
from cloudfree.data.release.index import IndexResult, IndexRow, Problem
from cloudfree.errors import DataError
from cloudfree.io import RasterMeta, gdal_path, meta_of, split_archive_path


def check_rows(
    result: IndexResult, strict: bool = False, sizes: dict[str, int] | None = None
) -> None:
    """Open every file's header; remove bad files from their rows and list them as problems.

    A file is bad if it cannot be opened, is truncated (its last data block ends past the end
    of the file), has the wrong band count (S1: 2, S2: 13), an unusable dtype (S1 not float,
    S2 not integer), or is not on the grid of the other files of its patch (the grid most of
    them share; ties go to the cloudy input, then the target). Bad files get their path set
    to ``""``. Usable oddities are kept and reported once per kind with :func:`warnings.warn`:
    S1 not float32, S2 an integer dtype other than uint16 (e.g. int16: same DN scale), or a
    size other than 256 x 256 (the loaders crop or tile any size).

    Args:
        result: index to check in place (its rows and problems are updated).
        strict: raise DataError on the first bad file instead.
        sizes: byte sizes of archive members (files on disk are measured with ``os.stat``).

    Raises:
        DataError: in strict mode, naming the first bad file.
    """
    from tqdm import tqdm

    sizes = sizes or {}
    oddities: dict[str, list[str]] = {}
    new_rows: list[IndexRow] = []
    for row in tqdm(result.rows, desc="checking", unit="patch", disable=None):
        metas: dict[str, RasterMeta] = {}
        odd: dict[str, list[str]] = {}
        bad: dict[str, str] = {}
        for kind in row.kinds:
            full = str(result.root / row.path(kind))
            meta, reason, odd[kind] = _check_file(full, kind, sizes.get(row.path(kind)))
            if meta is not None:
                metas[kind] = meta
            elif strict:
                raise DataError(full, str(reason), _EXPECTED[kind])
            else:
                bad[kind] = str(reason)
        for kind, ref in _grid_outliers(metas):
            bad[kind] = (
                f"not on the grid of {row.path(ref)} ({_grid_text(metas[kind])} vs "
                f"{_grid_text(metas[ref])})"
            )
            if strict:
                raise DataError(
                    result.root / row.path(kind), bad[kind], "all files of a patch on one grid"
                )
        for kind, reason in bad.items():
            result.problems.append(Problem(row.path(kind), reason))
        for kind in metas.keys() - bad.keys():
            for what in odd[kind]:
                oddities.setdefault(what, []).append(row.path(kind))
        new_rows.append(_without(row, bad) if bad else row)
    result.rows = [r for r in new_rows if r.kinds]
    for what, paths in sorted(oddities.items()):
        note = f"{len(paths)} file(s) {what} (kept), e.g. {paths[0]}"
        result.notes.append(note)
        warnings.warn(note, UserWarning, stacklevel=2)


_S2_EXPECTED = f"a GeoTIFF of {NUM_S2_BANDS} uint16 bands (B1..B12, L1C TOA reflectance x 10000)"
_EXPECTED: Final[dict[str, str]] = {
    "s1": f"a GeoTIFF of {NUM_S1_BANDS} float32 bands (VV, VH in dB)",
    "s2": _S2_EXPECTED,
    "s2_cloudy": _S2_EXPECTED,
}


def _check_file(
    path: str, kind: str, size: int | None
) -> tuple[RasterMeta | None, str | None, list[str]]:
    """``(meta, None, usable oddities)`` of a good file, ``(None, reason, [])`` of a bad one."""
    import rasterio

    try:
        with rasterio.open(gdal_path(path)) as ds:
            meta = meta_of(ds)
            end = _data_end(ds)
    except rasterio.errors.RasterioError as e:
        return None, f"cannot open raster (corrupt?): {e}", []
    if size is None and end is not None and split_archive_path(path) is None:
        try:
            size = os.stat(path).st_size
        except OSError as e:
            return None, f"cannot stat file: {e}", []
    if end is not None and size is not None and end > size:
        return None, f"truncated: {size} bytes, but its pixel data runs to byte {end}", []
    want = NUM_S1_BANDS if kind == "s1" else NUM_S2_BANDS
    if meta.count != want:
        return None, f"has {meta.count} bands, expected {want} for {kind}", []
    odd: list[str] = []
    if kind == "s1":
        if not meta.dtype.startswith("float"):
            return None, f"dtype {meta.dtype}, expected float32 backscatter in dB", []
        if meta.dtype != "float32":
            odd.append(f"of kind s1 are {meta.dtype}, not float32")
    else:
        if meta.dtype not in ("uint16", "int16", "uint32", "int32"):
            return None, f"dtype {meta.dtype}, expected uint16 (L1C TOA reflectance x 10000)", []
        if meta.dtype != "uint16":
            odd.append(f"of kind {kind} are {meta.dtype}, not uint16 as released")
    if (meta.width, meta.height) != (PATCH_SIZE, PATCH_SIZE):
        odd.append(f"are {meta.width}x{meta.height} px, not {PATCH_SIZE}x{PATCH_SIZE}")
    return meta, None, odd


def _data_end(ds: Any) -> int | None:
    """Byte just past the last block of pixel data (GeoTIFF only; None if unknown).

    A header read alone does not notice a file cut short (an interrupted copy or unpack): the
    header comes first. Blocks are written in order, so the last block of the last band ends
    the data (in the released patches it ends exactly at the end of the file).
    """
    bh, bw = ds.block_shapes[0]
    x = -(-ds.width // bw) - 1
    y = -(-ds.height // bh) - 1
    ends = []
    for band in {1, ds.count}:
        off = ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=band)
        size = ds.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=band)
        if off is None or size is None:
            return None
        ends.append(int(off) + int(size))
    return max(ends)


def _grid_outliers(metas: dict[str, RasterMeta]) -> list[tuple[str, str]]:
    """``(kind, reference kind)`` for each file off the grid most files of a patch share."""
    kinds = [k for k in ("s2_cloudy", "s2", "s1") if k in metas]  # tie-break priority
    if len(kinds) < 2:
        return []
    ref = max(kinds, key=lambda k: sum(metas[k].same_grid(metas[o]) for o in kinds))
    return [(k, ref) for k in kinds if not metas[k].same_grid(metas[ref])]


def _grid_text(m: RasterMeta) -> str:
    crs = "no CRS" if m.crs is None else (f"EPSG:{m.crs.to_epsg()}" if m.crs.to_epsg() else "CRS")
    t = m.transform
    return f"{m.width}x{m.height} px, {crs}, origin ({t.c:.1f}, {t.f:.1f}), pixel {t.a:g}"


def _without(row: IndexRow, kinds: dict[str, str]) -> IndexRow:
    blank: dict[str, Any] = {k: "" for k in kinds}
    return replace(row, **blank)
