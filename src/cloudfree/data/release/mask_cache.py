"""A cache of the DSen2-CR cloud/shadow mask of every patch of an index, next to the index.

The CARL loss needs the cloud/shadow mask of each cloudy input. This project computes it ONCE
on the full cloudy patch (raw DN, before any normalisation) and caches it; training crops and
augmentations are then applied to it exactly like to the images (``SampleConfig(mask="cached")``,
see :class:`~cloudfree.data.sample.SampleConfig` for how this differs from upstream's per-crop
mask). Packed shards keep it in their mask slot (:mod:`cloudfree.data.packed.pack`); for the per-file
dataset this module keeps it beside the index:

    <index stem>.masks.npy   uint8 (N_rows, S, S), one row per index row, in the order
                             ``read_index`` returns them; 255 = not computed yet
    <index stem>.masks.json  what the cache is of: index hash, row count, patch size,
                             algorithm and CSM parameters (a mismatch rebuilds the cache)

Masks are computed lazily by whichever process (DataLoader worker) first reads the patch, or
all up-front by :meth:`MaskCache.precompute`. The ``.npy`` is a ``MAP_SHARED`` memory map, so
the rows written by one worker are seen by the others; workers write distinct rows, and a row
is written as one slice AFTER its mask is computed. **A row is valid iff it holds no 255**: the
mask never takes that value (classes 0/1/2), so a row being written, or torn by a crash (only
some of its pages reached the disk), still holds 255 somewhere and is simply recomputed; two
workers computing the same row write identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.bands import NUM_S2_BANDS
from cloudfree.data.release.index import IndexResult, IndexRow, read_index
from cloudfree.errors import DataError
from cloudfree.io import atomic_path, read_meta, read_raster
from cloudfree.masks.patch import MASK_NOT_COMPUTED, mask_record, patch_mask

CACHE_FORMAT = "cloudfree-mask-cache"
CACHE_VERSION = 1


def index_hash(rows: list[IndexRow]) -> str:
    """SHA-256 of the rows' ids and cloudy-file paths, in order: what a cache is aligned with."""
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.id},{r.s2_cloudy}\n".encode())
    return h.hexdigest()


class MaskCache:
    """The cloud/shadow masks of an index's patches, in one memory-mapped ``.npy`` beside it.

    Args:
        index: an index CSV, or an in-memory :class:`IndexResult` (then ``path`` is required).
        root: dataset root the index paths are relative to; default: the index's own root.
        path: the cache's ``.npy`` file; default ``<index stem>.masks.npy`` beside the index.
            Its record is the same name with ``.json``.
        patch_size: side of every patch (SEN12MS-CR: 256); None reads it from the first cloudy
            file's header.

    Creating the object creates the cache file (all 255) if it is missing or stale (its record
    does not match this index, size or algorithm: a warning says it is rebuilt). It is then
    safe to pickle into DataLoader workers: each maps the file itself.

    Raises:
        DataError: ``index`` is an IndexResult and no ``path`` is given, or no row has a cloudy
            file to size the cache from.
    """

    def __init__(
        self,
        index: str | os.PathLike[str] | IndexResult,
        root: str | os.PathLike[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        patch_size: int | None = 256,
    ) -> None:
        if isinstance(index, IndexResult):
            if path is None:
                raise DataError(
                    None,
                    "a mask cache of an in-memory index has no place to live",
                    "an explicit cache path (mask_cache='.../name.masks.npy'), or an index file",
                )
            self.index = index if root is None else replace(index, root=Path(root))
        else:
            self.index = read_index(index, root=root)
            if path is None:
                p = Path(index)
                path = p.with_name(f"{p.stem}.masks.npy")
        self.path = Path(path)
        self.record_path = self.path.with_name(self.path.name.removesuffix(".npy") + ".json")
        self.rows: list[IndexRow] = list(self.index.rows)
        self._pos = {r: i for i, r in enumerate(self.rows)}
        self.patch_size = patch_size if patch_size is not None else self._probe_size()
        self.record = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "index_sha256": index_hash(self.rows),
            "num_rows": len(self.rows),
            "patch_size": self.patch_size,
            **mask_record(),
        }
        self._map: np.ndarray | None = None
        self._ensure_file()

    # ------------------------------------------------------------------ file management

    def _probe_size(self) -> int:
        row = next((r for r in self.rows if r.has("s2_cloudy")), None)
        if row is None:
            raise DataError(self.index.root, "no index row has a cloudy S2 file", "cloudy rows")
        meta = read_meta(self.index.resolve(row, "s2_cloudy"))
        return int(meta.width)

    def _current(self) -> bool:
        try:
            rec = json.loads(self.record_path.read_text())
            arr = np.load(self.path, mmap_mode="r")
        except (OSError, ValueError):
            return False
        shape = (len(self.rows), self.patch_size, self.patch_size)
        return rec == self.record and arr.dtype == np.uint8 and arr.shape == shape

    def _ensure_file(self) -> None:
        if self._current():
            return
        if self.path.exists() or self.record_path.exists():
            warnings.warn(
                f"mask cache {self.path} is stale (its index, patch size or mask algorithm "
                "changed): rebuilding it",
                stacklevel=3,
            )
            self.record_path.unlink(missing_ok=True)  # the record goes first: never valid-looking
        shape = (len(self.rows), self.patch_size, self.patch_size)
        with atomic_path(self.path) as tmp:
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            for i in range(0, shape[0], 256):  # chunked: bounded memory for big indexes
                mm[i : i + 256] = MASK_NOT_COMPUTED
            mm.flush()
            del mm
        with atomic_path(self.record_path) as tmp:
            tmp.write_text(json.dumps(self.record, indent=1) + "\n")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_map"] = None  # each process maps the file itself
        return state

    def _mm(self) -> np.ndarray:
        if self._map is None:
            self._map = np.load(self.path, mmap_mode="r+")
        return self._map

    # ------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self.rows)

    def position(self, row: IndexRow) -> int:
        """The cache row of an index row."""
        try:
            return self._pos[row]
        except KeyError:
            raise DataError(
                self.path, f"has no row for patch {row.id}", "a row of its index"
            ) from None

    def is_computed(self, pos: int) -> bool:
        """Whether row ``pos`` holds a complete mask (no 255 anywhere in it)."""
        return not bool((self._mm()[pos] == MASK_NOT_COMPUTED).any())

    def get(self, pos: int) -> np.ndarray:
        """The full-patch mask of row ``pos``, uint8 (S, S); computed and stored if missing.

        Raises:
            DataError: the row has no cloudy file, or it is unreadable / not S x S x 13 uint16.
        """
        mm = self._mm()
        m = np.array(mm[pos])
        if not (m == MASK_NOT_COMPUTED).any():
            return m
        m = self._compute(pos)
        mm[pos] = m  # one slice, after computing: a reader sees 255 until all of it is there
        return m

    def window(self, pos: int, window: tuple[int, int, int, int]) -> np.ndarray:
        """The ``(row, col, height, width)`` window of row ``pos``'s full-patch mask."""
        r, c, h, w = window
        return np.ascontiguousarray(self.get(pos)[r : r + h, c : c + w])

    def _compute(self, pos: int) -> np.ndarray:
        row = self.rows[pos]
        if not row.has("s2_cloudy"):
            raise DataError(
                self.index.root, f"patch {row.id} has no cloudy S2 file", "a cloudy S2 file"
            )
        path = self.index.resolve(row, "s2_cloudy")
        arr, _ = read_raster(path, expect_count=NUM_S2_BANDS, expect_dtypes=("uint16",))
        if arr.shape[1:] != (self.patch_size, self.patch_size):
            raise DataError(
                path,
                f"is {arr.shape[1]}x{arr.shape[2]} pixels",
                f"{self.patch_size}x{self.patch_size} like the mask cache {self.path}",
            )
        return patch_mask(arr)

    def precompute(self, workers: int = 0) -> int:
        """Compute every missing mask now (rows with a cloudy file); returns how many.

        Args:
            workers: processes; 0 computes in this process.
        """
        todo = [
            i for i, r in enumerate(self.rows) if r.has("s2_cloudy") and not self.is_computed(i)
        ]
        if workers <= 0:
            for i in todo:
                self.get(i)
            return len(todo)
        chunks = [todo[i : i + 16] for i in range(0, len(todo), 16)]
        from cloudfree.workers import process_pool

        with process_pool(workers) as ex:
            for fut in [ex.submit(_fill, self, c) for c in chunks]:
                fut.result()
        self._map = None  # re-map: the workers wrote through their own maps
        return len(todo)


def _fill(cache: MaskCache, positions: list[int]) -> None:
    for i in positions:
        cache.get(i)
    mm = cache._mm()
    assert isinstance(mm, np.memmap)  # opened with mmap_mode
    mm.flush()
