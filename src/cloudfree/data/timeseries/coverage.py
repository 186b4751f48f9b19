"""Cloud coverage of every S2 date of a SEN12MS-CR-TS copy, computed once and cached.

The samplers (:mod:`cloudfree.data.timeseries.sampling`) choose input and target dates by the
cloud coverage of each date: the mean of its cloud mask. The masks are upstream's
(PatrickTUM/UnCRtainTS ``data/dataLoader.py``, ``get_cloud_map``):

- ``s2cloudless`` (the default, ``cloud_masks='s2cloudless_mask'``): DN clipped to
  [0, 10000], s2cloudless with threshold 0.4, averaging disk of radius 4, dilation disk of
  radius 2 (extra ``masks``); clouds only;
- ``dsen2cr``: the DSen2-CR cloud/shadow mask (:func:`cloudfree.masks.patch.patch_mask`),
  cloud or shadow counted.

An image that is blank (mean and standard deviation of its DN both under 1e-5) is all cloud,
as upstream (which warns "Encountered a blank sample, defaulting to cloudy mask").

Computing s2cloudless on 30 dates of every patch takes hours, so the coverage of each file is
written to a cache CSV (``s2,bytes,coverage``: the index's S2 path, its size, the coverage),
one per masker, reused while the file keeps its size; progress is saved every
:data:`SAVE_EVERY` files, so an interrupted run resumes.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

import numpy as np

#: Maskers a coverage can come from.
COVERAGE_MASKERS: Final[tuple[str, ...]] = ("s2cloudless", "dsen2cr")
#: Cache progress is written every this many newly computed files.
SAVE_EVERY: Final[int] = 200
#: Upstream clips DN to this before s2cloudless (``np.clip(img, 0, 10000)``).
DN_CLIP: Final[float] = 10000.0


def upstream_cloud_mask(s2_dn: np.ndarray, masker: str = "s2cloudless") -> np.ndarray:
    """(H, W) float32 cloud mask of one (13, H, W) L1C date as upstream computes it (module
    docstring): 1 cloud (or shadow, for ``dsen2cr``), 0 clear.

    Raises:
        ValueError: an unknown masker.
        ImportError: s2cloudless is not installed (for that masker).
    """
    if masker not in COVERAGE_MASKERS:
        raise ValueError(f"unknown masker {masker!r}; expected one of {list(COVERAGE_MASKERS)}")
    img = np.clip(np.nan_to_num(np.asarray(s2_dn, dtype=np.float32)), 0, DN_CLIP)
    if img.mean() < 1e-5 and img.std() < 1e-5:
        return np.ones(img.shape[-2:], dtype=np.float32)
    if masker == "s2cloudless":
        from cloudfree.masks.s2cloudless import s2cloudless_mask

        return s2cloudless_mask(img).astype(np.float32)
    from cloudfree.masks.patch import patch_mask

    return (patch_mask(img) != 0).astype(np.float32)


def coverage_cache_path(index_path: str | os.PathLike[str], masker: str) -> Path:
    """Where the coverage of an index is cached: ``<index stem>.coverage-<masker>.csv``."""
    p = Path(index_path)
    return p.with_name(f"{p.stem}.coverage-{masker}.csv")


def read_coverage_cache(path: Path) -> dict[str, tuple[int, float]]:
    """``{s2 path: (bytes, coverage)}`` of a cache file; empty if there is none."""
    if not path.is_file():
        return {}
    from cloudfree.errors import DataError, read_text_file

    out = {}
    rows = csv.DictReader(read_text_file(path, "a coverage cache CSV").splitlines())
    for n, row in enumerate(rows, start=2):
        try:
            out[row["s2"]] = (int(row["bytes"]), float(row["coverage"]))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(
                path, f"line {n} is not s2,bytes,coverage ({e})", "delete it to recompute"
            ) from None
    return out


def _write_cache(path: Path, table: dict[str, tuple[int, float]]) -> None:
    from cloudfree.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(("s2", "bytes", "coverage"))
        for s2, (size, cov) in sorted(table.items()):
            w.writerow((s2, size, repr(cov)))


def compute_coverage(
    root: str | os.PathLike[str],
    s2_paths: Iterable[str],
    cache: str | os.PathLike[str],
    masker: str = "s2cloudless",
    progress: bool = False,
    read: Callable[[Path], np.ndarray] | None = None,
    size: Callable[[str], int] | None = None,
) -> dict[str, float]:
    """The cloud coverage (in [0, 1]) of each S2 file (paths relative to ``root``, as in the
    index), from the cache where it holds the file at its current size, else computed and
    added to the cache.

    Args:
        read: how a file is read (default: all bands with rasterio, archives included).
        size: the size a cached value is kept for (default: the file's, or its archive's; a
            pack's files never change: a constant).

    Returns:
        ``{s2 path: coverage}`` for every path given.
    """
    from tqdm.auto import tqdm

    top, cache = Path(root), Path(cache)
    table = read_coverage_cache(cache)
    paths = list(dict.fromkeys(s2_paths))
    reader = read or _read_dn
    sizes = {p: size(p) if size is not None else _size(top, p) for p in paths}
    todo = [p for p in paths if table.get(p, (-1, 0.0))[0] != sizes[p]]
    bar = tqdm(todo, desc="cloud coverage", unit="date", disable=not progress)
    for done, rel in enumerate(bar, start=1):
        mask = upstream_cloud_mask(reader(top / rel), masker)
        table[rel] = (sizes[rel], float(mask.mean()))
        if done % SAVE_EVERY == 0:
            _write_cache(cache, table)
    if todo:
        _write_cache(cache, table)
    return {p: table[p][1] for p in paths}


def seed_coverage_cache(
    root: str | os.PathLike[str], known: dict[str, float], cache: str | os.PathLike[str]
) -> None:
    """Put coverages known from elsewhere (the authors' sample file) into ``cache``, at the
    files' current sizes, so that :func:`compute_coverage` uses them."""
    top, cache = Path(root), Path(cache)
    table = read_coverage_cache(cache)
    table.update({rel: (_size(top, rel), float(c)) for rel, c in known.items()})
    _write_cache(cache, table)


def _size(top: Path, rel: str) -> int:
    """The file's size; for a member of an archive, the archive's (a new download changes it)."""
    from cloudfree.io import split_archive_path

    parts = split_archive_path(top / rel)
    return os.path.getsize(parts[0] if parts else top / rel)


def _read_dn(path: Path) -> np.ndarray:
    import rasterio

    from cloudfree.io import gdal_path

    with rasterio.open(gdal_path(path)) as ds:
        return ds.read()
