"""``cloudfree pack TS_INDEX.csv --out DIR``: SEN12MS-CR-TS into memory-mapped shards.

A series sample reads 4 dates of S2 (and their S1) out of 30, i.e. 4-8 GeoTIFFs of a few
hundred kB, often inside ``.tar.gz`` archives: the reads, not the network, bound training. A
pack holds each patch's 30 dates in one slot of a shard, read without decoding:

- ``DIR/shard_<k>/s2.npy``: (N, 30, 13, H, W) uint16, the release's DN as they are;
- ``DIR/shard_<k>/s1.npy``: (N, 30, 2, H, W) float32 dB, NaN kept (with ``include_s1``);
- ``DIR/index.csv``: the index rows of the packed patches (``s2``/``s1`` paths as in the
  source index: the keys of the pack and of the coverage cache), and beside it that index's
  coverage caches (``index.coverage-<masker>.csv``), copied from the source index's;
- ``DIR/manifest.json``: format, the source index and its hash, the patch side, the shards
  and their patches (``[roi, patch]`` per slot), which shards are finished, what was skipped.

Only complete series are packed (30 S2 dates; and 30 S1 with ``include_s1``, the default when
the index has them); a series with an unreadable file is warned about and skipped (listed in
the manifest), ``strict`` raises. Every shard is written under a temporary name and renamed
when complete, and the manifest is rewritten atomically after each: running the same command
again keeps the finished shards and goes on. A pack of another index is refused unless
``overwrite``.

:class:`PackedSeries` reads a pack: its rows, and any file of it by its index path, as
:class:`~cloudfree.data.timeseries.dataset.SeriesDataset` reads the release.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.data.source import PACK_MARKER, SERIES_PACK_FORMAT, series_kind
from cloudfree.data.timeseries.names import TIME_POINTS
from cloudfree.errors import DataError

SERIES_FORMAT: Final[str] = SERIES_PACK_FORMAT
SERIES_FORMAT_VERSION: Final[int] = 1
MANIFEST: Final[str] = PACK_MARKER
#: Patches per shard unless asked: 16 x 30 dates x (13 x 2 + 2 x 4) bytes x 256^2 = 1.07 GB.
DEFAULT_SHARD_PATCHES: Final[int] = 16
_BANDS: Final[dict[str, tuple[int, str]]] = {"s2": (13, "uint16"), "s1": (2, "float32")}


def _hash_rows(rows: Sequence[Mapping[str, str]]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r['roi']},{r['patch']},{r['t']},{r['s2']},{r['s1']}\n".encode())
    return h.hexdigest()[:16]


def pack_series(
    index: str | os.PathLike[str],
    out: str | os.PathLike[str],
    split: str | None = None,
    shard_patches: int = DEFAULT_SHARD_PATCHES,
    include_s1: bool | None = None,
    workers: int = 2,
    strict: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Pack the complete series of ``index`` (module docstring). Returns the manifest.

    Args:
        split: only this split (``train``, ``val``, ``test``); None: all.
        include_s1: pack S1 too (default: when every series has it); False: S2 only.
        workers: threads reading the files of a series (GDAL reads release the GIL).

    Raises:
        DataError: not a SEN12MS-CR-TS index, no complete series, a pack of another index in
            ``out`` (without ``overwrite``), or (``strict``) an unreadable file.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from cloudfree import __version__
    from cloudfree.data.timeseries.index import read_ts_index, ts_index_root
    from cloudfree.io import atomic_path

    rows = [r for r in read_ts_index(index) if split is None or r["split"] == split]
    root = ts_index_root(index)
    series: dict[tuple[str, int], dict[int, Mapping[str, str]]] = defaultdict(dict)
    for r in rows:
        series[(r["roi"], int(r["patch"]))][int(r["t"])] = r
    complete = {k: v for k, v in series.items()
                if len(v) == TIME_POINTS and all(r["s2"] for r in v.values())}  # fmt: skip
    if include_s1 is None:
        include_s1 = bool(complete) and all(r["s1"] for v in complete.values() for r in v.values())
    if include_s1:
        complete = {k: v for k, v in complete.items() if all(r["s1"] for r in v.values())}
    if not complete:
        raise DataError(index, f"has no complete series{f' in split {split!r}' if split else ''}"
                        f" ({len(series)} patches, none with all {TIME_POINTS} dates"
                        f"{' of S2 and S1' if include_s1 else ' of S2'})",
                        "the index of a SEN12MS-CR-TS copy ('cloudfree index ROOT --out ts.csv')")  # fmt: skip
    keys = sorted(complete)
    packed_rows = [complete[k][t] for k in keys for t in range(TIME_POINTS)]
    digest = _hash_rows(packed_rows)
    out = Path(out)
    manifest = _start(out, digest, overwrite)
    if manifest is None:
        side = _side(root, packed_rows[0]["s2"])
        groups = [keys[i : i + shard_patches] for i in range(0, len(keys), shard_patches)]
        manifest = {
            "format": SERIES_FORMAT, "format_version": SERIES_FORMAT_VERSION,
            "source_index": str(Path(index).resolve()), "root": str(root), "rows_hash": digest,
            "split": split, "patch_side": side, "include_s1": bool(include_s1),
            "time_points": TIME_POINTS,
            "shards": [{"name": f"shard_{k:05d}", "patches": [[r, p] for r, p in g],
                        "done": False} for k, g in enumerate(groups)],
            "skipped": [], "cloudfree_version": __version__,
        }  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        _write_index(out, packed_rows, index)
        _write_manifest(out, manifest)
    side = int(manifest["patch_side"])
    kinds = ("s2", "s1") if manifest["include_s1"] else ("s2",)
    todo = [s for s in manifest["shards"] if not s["done"]]
    bar = tqdm(total=sum(len(s["patches"]) for s in todo), unit="series", desc="pack",
               disable=not progress)  # fmt: skip
    with bar, ThreadPoolExecutor(max(1, workers)) as pool:
        for shard in todo:
            folder = out / shard["name"]
            folder.mkdir(exist_ok=True)
            n = len(shard["patches"])
            with contextlib.ExitStack() as staged:
                arrays = {}
                for kind in kinds:
                    bands, dtype = _BANDS[kind]
                    tmp = staged.enter_context(atomic_path(folder / f"{kind}.npy"))
                    arrays[kind] = np.lib.format.open_memmap(
                        tmp, mode="w+", dtype=dtype, shape=(n, TIME_POINTS, bands, side, side)
                    )
                for slot, (roi, patch) in enumerate(shard["patches"]):
                    dates = complete[(roi, int(patch))]
                    try:
                        for kind in kinds:
                            paths = [root / dates[t][kind] for t in range(TIME_POINTS)]
                            for t, arr in enumerate(pool.map(_read, paths)):
                                _put(arrays[kind], slot, t, arr, paths[t])
                    except DataError as e:
                        if strict:
                            raise
                        warnings.warn(f"series {roi}/{patch} skipped: {e}", stacklevel=2)
                        manifest["skipped"].append({"roi": roi, "patch": int(patch),
                                                    "reason": str(e)})  # fmt: skip
                        for kind in kinds:
                            arrays[kind][slot] = 0
                    bar.update(1)
                for a in arrays.values():
                    a.flush()
                del arrays  # closed before the renames
            shard["done"] = True
            _write_manifest(out, manifest)
    return manifest


def _start(out: Path, digest: str, overwrite: bool) -> dict[str, Any] | None:
    """The manifest of the pack to resume in ``out``, or None to start afresh."""
    m = out / MANIFEST
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    if series_kind(out) != "packed":
        # --overwrite replaces a pack, never a folder of other files (or a file)
        if not overwrite or not m.is_file():
            raise DataError(out, "exists and is not a SEN12MS-CR-TS pack",
                            "an empty or new folder" + ("" if m.is_file() else
                            ": --overwrite replaces only a pack"))  # fmt: skip
    else:
        manifest = json.loads(m.read_text(encoding="utf-8"))
        if manifest.get("rows_hash") == digest and not overwrite:
            return manifest
        if not overwrite:
            raise DataError(out, f"holds a pack of another index ({manifest.get('source_index')})",
                            "another --out, or --overwrite to replace it")  # fmt: skip
    shutil.rmtree(out)
    return None


def _write_manifest(out: Path, manifest: Mapping[str, Any]) -> None:
    from cloudfree.io import atomic_path

    with atomic_path(out / MANIFEST) as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _write_index(
    out: Path, rows: Sequence[Mapping[str, str]], index: str | os.PathLike[str]
) -> None:
    """The packed rows as ``out/index.csv``, and the source index's coverage caches beside it
    (sizes of the pack's files are not the release's: each entry keyed by the pack instead)."""
    import csv

    from cloudfree.data.timeseries.coverage import (
        COVERAGE_MASKERS,
        coverage_cache_path,
        read_coverage_cache,
    )
    from cloudfree.data.timeseries.index import TS_INDEX_COLUMNS
    from cloudfree.io import atomic_path

    with atomic_path(out / "index.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=TS_INDEX_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    wanted = {r["s2"] for r in rows}
    for masker in COVERAGE_MASKERS:
        known = read_coverage_cache(coverage_cache_path(index, masker))
        keep = {k: (PACK_SIZE, c) for k, (_, c) in known.items() if k in wanted}
        if keep:
            from cloudfree.data.timeseries.coverage import _write_cache

            _write_cache(coverage_cache_path(out / "index.csv", masker), keep)


#: The "size" a packed file has in the coverage cache: its values never change in a pack.
PACK_SIZE: Final[int] = 0


def _side(root: Path, rel: str) -> int:
    from cloudfree.io import gdal_path, read_meta

    meta = read_meta(gdal_path(root / rel))
    if meta.width != meta.height:
        raise DataError(root / rel, f"is {meta.height} x {meta.width} px",
                        "square SEN12MS-CR-TS patches (256 x 256)")  # fmt: skip
    return int(meta.width)


def _read(path: Path) -> np.ndarray:
    import rasterio

    from cloudfree.io import gdal_path

    try:
        with rasterio.open(gdal_path(path)) as ds:
            return ds.read()
    except rasterio.errors.RasterioError as e:
        raise DataError(path, f"cannot be read: {e}", "a readable GeoTIFF") from None


def _put(dst: np.ndarray, slot: int, t: int, arr: np.ndarray, path: Path) -> None:
    """One date into its slot: S1 as read (NaN kept); S2 in uint16 DN (a float file's NaN as
    0, as SeriesDataset's nan_to_num makes it anyway)."""
    want = dst.shape[2:]
    if arr.shape != want:
        raise DataError(path, f"has shape {arr.shape}", f"{want} like every date of the pack")
    if dst.dtype == np.uint16 and arr.dtype != np.uint16:
        arr = np.clip(np.rint(np.nan_to_num(arr)), 0, 65535)
    dst[slot, t] = arr


class PackedSeries:
    """A pack written by :func:`pack_series`, read by index path (module docstring).

    Attributes:
        root: the pack's folder; rows: its index rows (``index.csv``); index: that file.

    Raises:
        DataError: not a series pack, an unfinished one, or of another format version.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        from cloudfree.data.timeseries.index import read_ts_index

        self.root = Path(folder)
        if series_kind(self.root) != "packed":
            raise DataError(self.root, "is not a SEN12MS-CR-TS pack",
                            "a folder written by 'cloudfree pack TS_INDEX.csv --out DIR'")  # fmt: skip
        self.manifest = json.loads((self.root / MANIFEST).read_text(encoding="utf-8"))
        if self.manifest.get("format_version") != SERIES_FORMAT_VERSION:
            raise DataError(self.root, f"is a pack of format version "
                            f"{self.manifest.get('format_version')}",
                            f"version {SERIES_FORMAT_VERSION}: pack it again")  # fmt: skip
        unfinished = [s["name"] for s in self.manifest["shards"] if not s["done"]]
        if unfinished:
            raise DataError(self.root, f"is an unfinished pack ({len(unfinished)} shards to go)",
                            "run the same 'cloudfree pack' command again to finish it")  # fmt: skip
        self.index = self.root / "index.csv"
        skipped = {(s["roi"], int(s["patch"])) for s in self.manifest["skipped"]}
        self.rows = [r for r in read_ts_index(self.index)
                     if (r["roi"], int(r["patch"])) not in skipped]  # fmt: skip
        slots = {}
        for shard in self.manifest["shards"]:
            for i, (roi, patch) in enumerate(shard["patches"]):
                slots[(roi, int(patch))] = (shard["name"], i)
        self._where: dict[str, tuple[str, int, int, str]] = {}
        for r in self.rows:
            name, i = slots[(r["roi"], int(r["patch"]))]
            self._where[r["s2"]] = (name, i, int(r["t"]), "s2")
            if r["s1"] and self.manifest["include_s1"]:
                self._where[r["s1"]] = (name, i, int(r["t"]), "s1")
        self._maps: dict[tuple[str, str], np.ndarray] = {}

    def read(self, rel: str) -> np.ndarray:
        """(C, H, W) float32 of the file ``rel`` of the index (S2 DN, S1 dB with NaN)."""
        try:
            name, i, t, kind = self._where[rel]
        except KeyError:
            raise DataError(self.root / rel, "is not in the pack",
                            "a file of the packed index (S1 only if it was packed)") from None  # fmt: skip
        key = (name, kind)
        if key not in self._maps:  # opened lazily: a DataLoader worker opens its own
            self._maps[key] = np.load(self.root / name / f"{kind}.npy", mmap_mode="r")
        return np.asarray(self._maps[key][i, t], dtype=np.float32)

    def reader(self) -> Callable[[str], np.ndarray]:
        """:meth:`read`, for ``SeriesDataset(reader=...)``."""
        return self.read

    def coverage(self, masker: str, progress: bool = False) -> dict[str, float]:
        """The cloud coverage of every packed S2 date, cached in the pack (computed from the
        packed arrays where the source index had none)."""
        from cloudfree.data.timeseries.coverage import compute_coverage, coverage_cache_path

        return compute_coverage(
            self.root, [r["s2"] for r in self.rows], coverage_cache_path(self.index, masker),
            masker, progress=progress, read=lambda p: self.read(str(p.relative_to(self.root))),
            size=lambda rel: PACK_SIZE,
        )  # fmt: skip

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = {}  # memory maps are reopened in each worker process
        return state
