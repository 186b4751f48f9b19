"""Packed shards: SEN12MS-CR patches in a few large memory-mapped ``.npy`` files.

Reading thousands of small GeoTIFFs (122k triplets, ~620 GB) is what makes SEN12MS-CR training
slow. ``cloudfree pack`` (:func:`pack`) converts an index once into shards, and
:class:`PackedDataset` serves them with the same sample pipeline as the per-file dataset
(:mod:`cloudfree.data.sample`), so a sample is identical whichever way it was read.

**Format** (``format_version`` 1). One file per array kind per shard, written with
:func:`numpy.lib.format.open_memmap`, uncompressed::

    shard-00000.s2.npy         uint16  (N, 13, H, W)  cloud-free S2, L1C DN (TOA x 10000)
    shard-00000.s2_cloudy.npy  uint16  (N, 13, H, W)  cloudy S2, DN
    shard-00000.s1.npy         float32 (N, 2, H, W)   S1 VV, VH in dB, raw (NaN kept)
    shard-00000.mask.npy       uint8   (N, H, W)      cloud mask slot; 255 = not computed
    manifest.json              shapes, dtypes, counts, shards, source index, root, split, ...
    patches.csv                one row per patch: shard, offset, roi_season, scene, patch,
                               split, has_s1, has_s2, has_s2_cloudy, crs (WKT), transform

Values are stored raw, so NaN filling, clipping and scaling happen at read time exactly as
for per-file reading (spec section 2). A kind a patch lacks (S1 of a no-SAR pair) is zeros with
``has_* = 0`` (left as file holes: sparse on disk). The mask array is the slot for a cloud
mask computed later; until then it holds 255 and the manifest says ``"mask": null``.

``N`` is the number of slots of the shard: one per selected index row, so a skipped patch
leaves an unused (zero) slot that ``patches.csv`` does not list.

Why plain ``.npy`` memmaps: any patch, and any crop window of it, is read with no decoding
(a 128x128 training crop of a 256x256 patch copies a quarter of its bytes, from half of its
pages: whole image rows); no new dependency; each
DataLoader worker opens its own memmaps lazily after fork/spawn, and any number of torchrun
ranks share the files through a map-style dataset + ``DistributedSampler``; resuming at an
exact sample index is trivial. The cost is disk: ~4 MB per triplet, like the raw release.
Zarr would add a dependency and a chunk codec for no gain on uncompressed data; WebDataset
tar shards are read sequentially, which makes exact resume and random crops harder.

**Robustness** (a multi-hour job). Shards never mix release seasons (``roi_season``), so each
season's archives can be streamed once (the shards of a season read from archives are then
finished, and resumable, together). Every file is written under a temporary name and
renamed when complete; the manifest is rewritten atomically after each finished shard and is
the record of what is done: re-running the same command keeps those shards (not re-read) and
goes on. A bad patch is warned about (file and reason), skipped (its slot stays zeros) and
listed in the manifest's ``"skipped"``; ``strict=True`` raises instead.

**Archives.** Rows pointing into the release ``.tar.gz`` archives are not read through
GDAL's ``/vsitar/`` (random access into gzip: measured ~0.1 s per file on a 300 MB archive,
and worse as archives grow) but by streaming each archive once, in its own order
(``tarfile`` ``"r|*"`` + ``rasterio.io.MemoryFile``), writing members straight into their slots.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import hashlib
import json
import multiprocessing as mp
import os
import re
import tarfile
import warnings
import zlib
from collections import Counter
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from cloudfree import __version__
from cloudfree.data.bands import KINDS, NUM_S1_BANDS, NUM_S2_BANDS, S1_BANDS, S2_BANDS
from cloudfree.data.index import SPLITS, IndexRow, read_index
from cloudfree.data.io import (
    RasterMeta,
    atomic_path,
    meta_of,
    read_meta,
    read_raster,
    split_archive_path,
)
from cloudfree.data.sample import SampleConfig, SamplePlan, make_sample, plan_sample, sample_rng
from cloudfree.errors import DataError, DatasetNotFoundError

FORMAT = "cloudfree-packed"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PATCHES = "patches.csv"
PATCH_COLUMNS: tuple[str, ...] = (
    "shard", "offset", "roi_season", "scene", "patch", "split",
    "has_s1", "has_s2", "has_s2_cloudy", "crs", "transform",
)  # fmt: skip
#: Array kinds of a shard, one .npy file each.
ARRAY_KINDS: tuple[str, ...] = ("s2", "s2_cloudy", "s1", "mask")
#: Value of the mask array where no cloud mask was computed.
MASK_NOT_COMPUTED = 255

# Band count and dtype of each kind of file as released (spec section 1).
_LAYOUT: dict[str, tuple[int, str]] = {
    "s2": (NUM_S2_BANDS, "uint16"),
    "s2_cloudy": (NUM_S2_BANDS, "uint16"),
    "s1": (NUM_S1_BANDS, "float32"),
}
_ROWS_PER_TASK = 8  # files of 8 patches per worker task: load balance vs. IPC overhead

Problem = tuple[str, str, str | None]  # (path, problem, expected): DataError's arguments
Item = tuple[int, str, str, int]  # (position in the selection, kind, target .npy, offset)


def shard_files(name: str) -> dict[str, str]:
    """File names of one shard's arrays: ``{"s2": "shard-00000.s2.npy", ...}``."""
    return {kind: f"{name}.{kind}.npy" for kind in ARRAY_KINDS}


def _array_spec(kind: str, n: int, hw: tuple[int, int]) -> tuple[str, tuple[int, ...]]:
    if kind == "mask":
        return "uint8", (n, *hw)
    bands, dtype = _LAYOUT[kind]
    return dtype, (n, bands, *hw)


# ------------------------------------------------------------------ worker side (any process)

_COUNTER: Any = None  # a multiprocessing.Value counting files done, set by _init_worker


def _init_worker(counter: Any) -> None:
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
    bands, dtype = _LAYOUT[kind]
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
) -> list[tuple[int, str, RasterMeta | None, Problem | None]]:
    out = []
    for pos, kind, target, offset in items:
        prob = _check(meta, kind, hw, src)
        if prob is None:
            targets.write(target, offset, arr)
        out.append((pos, kind, None if prob else meta, prob))
        _tick()
    return out


def _read_files(
    jobs: Sequence[tuple[str, Item]], hw: tuple[int, int]
) -> list[tuple[int, str, RasterMeta | None, Problem | None]]:
    """Read plain files (``(path, item)`` pairs) into their slots; one result per item."""
    targets, out = _Targets(), []
    try:
        for src, item in jobs:
            try:
                arr, meta = read_raster(src)
            except DataError as e:
                out.append((item[0], item[1], None, (e.path or src, e.problem, e.expected)))
                _tick()
                continue
            out += _store(targets, [item], arr, meta, hw, src)
    finally:
        targets.close()
    return out


def _member_name(name: str) -> str:
    # As GDAL's /vsitar/ and cloudfree.data.discover name members: leading "./" and "/" dropped.
    while name.startswith(("./", "/")):
        name = name[2:] if name.startswith("./") else name[1:]
    return name


def _decode(data: bytes) -> tuple[np.ndarray, RasterMeta]:
    from rasterio.io import MemoryFile

    with MemoryFile(data) as mf, mf.open() as ds:
        return ds.read(), meta_of(ds)


def _members(archive: str, wanted: Container[str]) -> Iterator[tuple[str, bytes]]:
    """``(name, data)`` of the wanted file members, in archive order, read in one pass."""
    with tarfile.open(archive, "r|*") as tf:
        for m in tf:
            name = _member_name(m.name)
            if m.isfile() and name in wanted:
                yield name, tf.extractfile(m).read()  # type: ignore[union-attr]


def _read_archive(
    archive: str, members: dict[str, list[Item]], hw: tuple[int, int]
) -> list[tuple[int, str, RasterMeta | None, Problem | None]]:
    """Stream one archive once, in its own order, storing the wanted members in their slots."""
    import rasterio

    wanted, out, targets = dict(members), [], _Targets()
    stream = _members(archive, wanted)
    broken = ""
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
            out += _store(targets, items, arr, meta, hw, src)
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


# ------------------------------------------------------------------------------ pack layout


@dataclass(frozen=True)
class _Shard:
    """Selection rows ``[start, stop)`` of one shard; ``rows_sha256`` names its content."""

    index: int
    start: int
    stop: int
    rows_sha256: str

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"

    @property
    def slots(self) -> int:
        return self.stop - self.start


def _rows_hash(rows: Sequence[IndexRow]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.id},{r.split},{r.s1},{r.s2},{r.s2_cloudy}\n".encode())
    return h.hexdigest()


def _plan_shards(rows: Sequence[IndexRow], shard_size: int) -> list[_Shard]:
    """Consecutive runs of up to ``shard_size`` rows, a new shard at each release season."""
    shards: list[_Shard] = []
    start = 0
    for pos in range(1, len(rows) + 1):
        if (
            pos == len(rows)
            or pos - start == shard_size
            or rows[pos].roi_season != rows[start].roi_season
        ):
            shards.append(_Shard(len(shards), start, pos, _rows_hash(rows[start:pos])))
            start = pos
    return shards


def _archives(rows: Sequence[IndexRow], root: Path) -> set[str]:
    found = set()
    for r in rows:
        for k in r.kinds:
            parts = split_archive_path(str(root / r.path(k)))
            if parts is not None:
                found.add(parts[0])
    return found


def _group_shards(
    shards: Sequence[_Shard], rows: Sequence[IndexRow], root: Path
) -> list[list[_Shard]]:
    """Shards processed together: consecutive shards reading the same archives share a group,
    so that each archive is streamed once; shards of plain files are one group each."""
    groups: list[list[_Shard]] = []
    seen: set[str] = set()
    for s in shards:
        arch = _archives(rows[s.start : s.stop], root)
        if groups and arch & seen:
            groups[-1].append(s)
            seen |= arch
        else:
            groups.append([s])
            seen = set(arch)
    return groups


def _probe_size(rows: Sequence[IndexRow], root: Path, tries: int = 8) -> tuple[int, int]:
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


# ------------------------------------------------------------------------- manifest, CSV


def _arrays_info(hw: tuple[int, int]) -> dict[str, Any]:
    """Per-patch dtype, shape and meaning of each array kind (for the manifest)."""
    units = {"s2": "L1C TOA reflectance x 10000", "s1": "sigma0 dB, raw (NaN kept)"}
    info: dict[str, Any] = {}
    for kind in ARRAY_KINDS:
        dtype, shape = _array_spec(kind, 1, hw)
        info[kind] = {"dtype": dtype, "shape": list(shape[1:])}
        if kind == "mask":
            info[kind]["fill"] = MASK_NOT_COMPUTED
        else:
            info[kind]["bands"] = list(S1_BANDS if kind == "s1" else S2_BANDS)
            info[kind]["units"] = units["s1" if kind == "s1" else "s2"]
    return info


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    obj["updated"] = _now()
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1) + "\n")


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(packed_dir: str | os.PathLike[str], complete: bool = True) -> dict[str, Any]:
    """Read and check a pack's ``manifest.json``.

    Raises:
        DataError: no manifest, not a cloudfree pack of a known version, or (``complete``)
            an interrupted pack.
    """
    path = Path(packed_dir) / MANIFEST
    hint = "a folder written by 'cloudfree pack INDEX --out DIR'"
    if not path.is_file():
        raise DataError(packed_dir, f"has no {MANIFEST}: not a packed dataset", hint)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(path, f"unreadable ({e})", hint) from e
    if manifest.get("format") != FORMAT:
        raise DataError(path, "is not a cloudfree pack manifest", hint)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(
            path,
            f"has format version {manifest.get('format_version')}",
            f"version {FORMAT_VERSION}; re-pack with this cloudfree ({__version__})",
        )
    if complete and not manifest.get("complete"):
        done, total = len(manifest.get("shards", [])), manifest.get("num_shards", "?")
        raise DataError(
            packed_dir,
            f"holds an interrupted pack ({done} of {total} shards written)",
            "a complete pack: re-run the same 'cloudfree pack' command to finish it",
        )
    return manifest


def _csv_row(shard: int, offset: int, row: IndexRow, ref: RasterMeta) -> list[Any]:
    crs = ref.crs.to_wkt() if ref.crs else ""
    transform = " ".join(repr(float(v)) for v in tuple(ref.transform)[:6]) if ref.transform else ""
    has = [int(row.has(k)) for k in ("s1", "s2", "s2_cloudy")]
    return [shard, offset, row.roi_season, row.scene, row.patch, row.split, *has, crs, transform]


def _read_csv_rows(path: Path, limit: int | None = None) -> list[list[str]]:
    """Data rows of patches.csv (at most ``limit``); a torn last line is ignored."""
    rows: list[list[str]] = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(header) != PATCH_COLUMNS:
            raise DataError(path, f"has header {header}", f"the columns {','.join(PATCH_COLUMNS)}")
        try:
            for rec in reader:
                if limit is not None and len(rows) >= limit:
                    break
                if len(rec) == len(PATCH_COLUMNS):
                    rows.append(rec)
        except csv.Error:
            pass  # a line torn by a crash while appending: only rows of unfinished shards follow
    return rows


def _counts(csv_rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    c: Counter[str] = Counter()
    by_split: Counter[str] = Counter()
    for rec in csv_rows:
        s1, s2, cl = (int(v) for v in rec[6:9])
        c["has_s1"] += s1
        c["has_s2"] += s2
        c["has_s2_cloudy"] += cl
        c["complete"] += s1 and s2 and cl
        by_split[str(rec[5])] += 1
    return {
        **{k: c[k] for k in ("has_s1", "has_s2", "has_s2_cloudy", "complete")},
        "by_split": dict(by_split),
    }


# ------------------------------------------------------------------------------- the packer


class _InlineExecutor:
    """Runs each task in the calling process as it is submitted (``workers=0``)."""

    def submit(self, fn: Any, *args: Any) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args))
        except Exception as e:
            fut.set_exception(e)
        return fut

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


@dataclass
class _Run:
    """A group of shards being read: their temporary files and the tasks filling them."""

    shards: list[_Shard]
    stack: contextlib.ExitStack
    temps: dict[int, dict[str, str]] = field(default_factory=dict)
    futures: list[cf.Future] = field(default_factory=list)


def _identity(m: dict[str, Any]) -> dict[str, Any]:
    s = m.get("source", {})
    return {
        "root": s.get("root"),
        "split": s.get("split"),
        "require": s.get("require"),
        "rows": s.get("rows_sha256"),
        "shard_size": m.get("shard_size"),
        "patch_shape": m.get("patch_shape"),
    }


def _pack_files(out: Path) -> Iterator[Path]:
    """Files of a pack (and leftovers of an interrupted one) in ``out``, nothing else."""
    for pattern in (MANIFEST, PATCHES, "shard-*.npy", ".shard-*.part", f".{MANIFEST}.*.part",
                    f".{PATCHES}.*.part"):  # fmt: skip
        yield from out.glob(pattern)


def _shard_ok(out: Path, entry: dict[str, Any], shard: _Shard, hw: tuple[int, int]) -> bool:
    if entry.get("name") != shard.name or entry.get("rows") != [shard.start, shard.stop]:
        return False
    if entry.get("rows_sha256") != shard.rows_sha256:
        return False
    for kind, fname in shard_files(shard.name).items():
        try:
            arr = np.load(out / fname, mmap_mode="r")
        except (OSError, ValueError):
            return False
        dtype, shape = _array_spec(kind, shard.slots, hw)
        if arr.dtype != np.dtype(dtype) or arr.shape != shape:
            return False
    return True


def _resume(
    out: Path, new: dict[str, Any], shards: Sequence[_Shard], overwrite: bool
) -> list[list[str]]:
    """Check ``out`` and keep the finished shards of an earlier run of the same pack.

    Updates ``new`` (shards, skipped, created) in place; returns the kept patches.csv rows.
    """
    hint = "an empty or new output folder, or overwrite=True (--overwrite) to replace it"
    old: dict[str, Any] | None = None
    if (out / MANIFEST).is_file() and not overwrite:
        old = read_manifest(out, complete=False)
        a, b = _identity(old), _identity(new)
        diff = [k for k in a if a[k] != b[k]]
        if diff:
            raise DataError(
                out,
                f"already holds a pack of {old.get('source', {}).get('index')} that differs from "
                f"this one in: {', '.join(diff)}",
                hint,
            )
    elif not overwrite and any(out.glob("shard-*.npy")):
        raise DataError(out, f"holds shard files but no {MANIFEST}", hint)
    if old is None:
        for p in _pack_files(out):
            p.unlink()
        return []
    kept = 0
    for entry, shard in zip(old.get("shards", []), shards, strict=False):
        if not _shard_ok(out, entry, shard, tuple(new["patch_shape"])):  # type: ignore[arg-type]
            break
        kept += 1
    entries = old["shards"][:kept]
    csv_rows: list[list[str]] = []
    if kept and (out / PATCHES).is_file():
        csv_rows = _read_csv_rows(out / PATCHES, sum(e["num_patches"] for e in entries))
    # Keep only shards whose every patches.csv row survived.
    per_shard = Counter(int(r[0]) for r in csv_rows)
    while kept and per_shard[kept - 1] != entries[kept - 1]["num_patches"]:
        kept -= 1
    entries = entries[:kept]
    csv_rows = [r for r in csv_rows if int(r[0]) < kept]
    for p in out.glob("shard-*.npy"):  # files of unfinished shards
        m = re.match(r"shard-(\d+)\.", p.name)
        if m is None or int(m.group(1)) >= kept:
            p.unlink()
    for p in out.glob(".*.part"):
        if p.name.startswith((".shard-", f".{MANIFEST}.", f".{PATCHES}.")):
            p.unlink()
    new["created"] = old.get("created", new["created"])
    new["shards"] = entries
    new["skipped"] = [s for s in old.get("skipped", []) if s["shard"] < kept]
    return csv_rows


class _Packer:
    """Reads groups of shards with an executor and finalises them one by one."""

    def __init__(
        self,
        out: Path,
        rows: Sequence[IndexRow],
        root: Path,
        manifest: dict[str, Any],
        csv_rows: list[list[str]],
        strict: bool,
        executor: Any,
        counter: Any,
    ) -> None:
        self.out, self.rows, self.root = out, rows, root
        self.hw: tuple[int, int] = tuple(manifest["patch_shape"])  # type: ignore[assignment]
        self.manifest, self.strict = manifest, strict
        self.executor, self.counter = executor, counter
        self._csv_counts = _counts(csv_rows)

    def start(self, group: list[_Shard], outer: contextlib.ExitStack) -> _Run:
        """Create the group's temporary arrays and submit the tasks that fill them."""
        run = _Run(group, outer.enter_context(contextlib.ExitStack()))
        for s in group:
            run.temps[s.index] = {}
            for kind, fname in shard_files(s.name).items():
                tmp = run.stack.enter_context(atomic_path(self.out / fname))
                dtype, shape = _array_spec(kind, s.slots, self.hw)
                mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
                if kind == "mask":
                    mm[:] = MASK_NOT_COMPUTED
                del mm
                run.temps[s.index][kind] = str(tmp)
        files: list[tuple[str, Item]] = []
        archives: dict[str, dict[str, list[Item]]] = {}
        for s in group:
            for pos in range(s.start, s.stop):
                row = self.rows[pos]
                for kind in row.kinds:
                    src = str(self.root / row.path(kind))
                    item: Item = (pos, kind, run.temps[s.index][kind], pos - s.start)
                    parts = split_archive_path(src)
                    if parts is None:
                        files.append((src, item))
                    else:
                        members = archives.setdefault(parts[0], {})
                        members.setdefault(_member_name(parts[1]), []).append(item)
        # Archives first: each is one long sequential task.
        for archive, members in archives.items():
            run.futures.append(self.executor.submit(_read_archive, archive, members, self.hw))
        step = 3 * _ROWS_PER_TASK
        for i in range(0, len(files), step):
            run.futures.append(self.executor.submit(_read_files, files[i : i + step], self.hw))
        return run

    def finish(self, run: _Run, progress: Any) -> None:
        """Wait for a group, check its patches, rename its files, record it in the manifest."""
        results: dict[int, dict[str, tuple[RasterMeta | None, Problem | None]]] = {}
        pending = set(run.futures)
        while pending:
            done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
            progress(self.counter.value)
            for fut in done:
                for pos, kind, meta, prob in fut.result():
                    if prob is not None and self.strict:
                        raise DataError(*prob)
                    results.setdefault(pos, {})[kind] = (meta, prob)
        new_rows: list[list[Any]] = []
        for s in run.shards:
            bad: list[int] = []
            for pos in range(s.start, s.stop):
                row, res = self.rows[pos], results.get(pos, {})
                prob = next((res[k][1] for k in row.kinds if res[k][1] is not None), None)
                # The cloudy file is the reference grid, as in SEN12MSCR.
                metas = {k: res[k][0] for k in ("s2_cloudy", "s2", "s1") if k in row.kinds}
                if prob is None:
                    prob = _grid_problem(row, metas, self.root)
                if prob is not None:
                    self._skip(row, s, pos, prob)
                    bad.append(pos - s.start)
                else:
                    ref = next(iter(metas.values()))
                    new_rows.append(_csv_row(s.index, pos - s.start, row, ref))
            for kind in ("s2", "s2_cloudy", "s1"):
                path = run.temps[s.index][kind]
                if bad:  # slots of skipped patches: zeros, whatever was read before the problem
                    mm = np.load(path, mmap_mode="r+")
                    mm[bad] = 0
                    del mm
            for path in run.temps[s.index].values():
                _fsync(path)
        run.stack.close()  # rename every temporary file onto its final name
        _fsync(self.out)
        with open(self.out / PATCHES, "a", newline="") as f:
            csv.writer(f).writerows(new_rows)
            f.flush()
            os.fsync(f.fileno())
        per_shard = Counter(r[0] for r in new_rows)
        for s in run.shards:
            self.manifest["shards"].append(
                {
                    "name": s.name,
                    "num_patches": per_shard[s.index],
                    "num_slots": s.slots,
                    "rows": [s.start, s.stop],
                    "rows_sha256": s.rows_sha256,
                    "files": shard_files(s.name),
                }
            )
        self._add_counts(new_rows)
        self.write_manifest()

    def _skip(self, row: IndexRow, shard: _Shard, pos: int, prob: Problem) -> None:
        if self.strict:
            raise DataError(*prob)
        path, problem, expected = prob
        reason = problem + (f" (expected {expected})" if expected else "")
        warnings.warn(f"skipping patch {row.id}: {path}: {reason}", stacklevel=3)
        self.manifest["skipped"].append(
            {"id": row.id, "shard": shard.index, "position": pos, "path": path, "reason": reason}
        )

    def _add_counts(self, new_rows: list[list[Any]]) -> None:
        add = _counts(new_rows)
        c = self._csv_counts
        for k in ("has_s1", "has_s2", "has_s2_cloudy", "complete"):
            c[k] += add[k]
        for k, v in add["by_split"].items():
            c["by_split"][k] = c["by_split"].get(k, 0) + v

    def write_manifest(self, complete: bool = False) -> None:
        m = self.manifest
        m["complete"] = complete
        m["num_patches"] = sum(e["num_patches"] for e in m["shards"])
        m["num_skipped"] = len(m["skipped"])
        m["counts"] = self._csv_counts
        _write_json(self.out / MANIFEST, m)


def _grid_problem(row: IndexRow, metas: dict[str, Any], root: Path) -> Problem | None:
    """A problem if the files of a patch do not lie on one pixel grid (as SEN12MSCR checks)."""
    ref_kind = next(iter(metas))
    ref: RasterMeta = metas[ref_kind]
    for kind, meta in metas.items():
        if not meta.same_grid(ref):
            return (
                str(root / row.path(kind)),
                f"{kind} is not on the pixel grid of its {ref_kind} file (CRS {meta.crs} vs "
                f"{ref.crs}, transform {tuple(meta.transform)[:6]} vs {tuple(ref.transform)[:6]})",
                "the files of a patch covering the same pixels",
            )
    return None


def pack(
    index: str | os.PathLike[str],
    out: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    split: str | None = None,
    shard_size: int = 1024,
    require: Sequence[str] = ("s2", "s2_cloudy"),
    workers: int = 2,
    strict: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Pack the patches of an index into memory-mapped shards (see the module docstring).

    Args:
        index: index CSV written by ``cloudfree index``.
        out: output folder (created); re-running the same pack into it resumes.
        root: dataset root; default: the one the index recorded.
        split: ``"train"``, ``"val"``, ``"test"`` or None for all rows.
        shard_size: patches per shard (1024 x ~4 MB = ~4 GB per shard at 256x256).
        require: kinds a patch must have to be packed (``("s1", "s2", "s2_cloudy")`` for
            SAR models only); the kinds it lacks are stored as zeros.
        workers: reader processes; 0 reads in this process.
        strict: raise DataError on the first bad patch instead of warning and skipping it.
        overwrite: replace whatever pack ``out`` holds instead of refusing a different one.

    Returns:
        The manifest (as written to ``out/manifest.json``): ``num_patches``, ``num_skipped``,
        ``shards`` (name, num_patches, num_slots, rows, files), ``skipped``, ``counts``, ...

    Raises:
        DataError: bad arguments, an unreadable index, no usable patch, ``out`` holding a
            different pack, or (``strict``) a bad patch.
    """
    if shard_size < 1:
        raise DataError(None, f"shard_size={shard_size}", "at least 1 patch per shard")
    unknown = [k for k in require if k not in KINDS]
    if unknown:
        raise DataError(None, f"unknown kind(s) {unknown} to require", f"kinds among {KINDS}")
    if split is not None and split not in SPLITS:
        raise DataError(None, f"unknown split {split!r}", f"one of {SPLITS} or no split")
    result = read_index(index, root)
    rows = [r for r in result.select(split, tuple(require)) if r.kinds]
    if not rows:
        scope = f"of split {split!r} " if split else ""
        raise DatasetNotFoundError(
            index,
            f"no patch {scope}has all of {list(require)}",
            "an index with such patches (check its root), another split, or fewer --require kinds",
        )
    root_path = Path(result.root).resolve()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hw = _probe_size(rows, root_path)
    shards = _plan_shards(rows, shard_size)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "cloudfree_version": __version__,
        "created": _now(),
        "updated": _now(),
        "complete": False,
        "source": {
            "index": str(Path(index).resolve()),
            "root": str(root_path),
            "split": split,
            "require": list(require),
            "num_selected": len(rows),
            "rows_sha256": _rows_hash(rows),
        },
        "shard_size": shard_size,
        "patch_shape": list(hw),
        "arrays": _arrays_info(hw),
        "mask": None,
        "num_shards": len(shards),
        "num_patches": 0,
        "num_skipped": 0,
        "shards": [],
        "skipped": [],
    }
    csv_rows = _resume(out, manifest, shards, overwrite)
    if not csv_rows:
        with atomic_path(out / PATCHES) as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerow(PATCH_COLUMNS)
    elif len(csv_rows) != len(_read_csv_rows(out / PATCHES)):
        with atomic_path(out / PATCHES) as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerows([PATCH_COLUMNS, *csv_rows])

    todo = shards[len(manifest["shards"]) :]
    # The platform's default start method, as torch's DataLoader uses (fork on Linux before
    # Python 3.14; with spawn/forkserver, call pack() under `if __name__ == "__main__":`).
    ctx = mp.get_context()
    counter = ctx.Value("q", 0)
    executor: Any
    if workers > 0:
        executor = cf.ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(counter,)
        )
        executor.submit(int).result()  # start the workers now, before tqdm starts its thread
    else:
        _init_worker(counter)
        executor = _InlineExecutor()
    packer = _Packer(out, rows, root_path, manifest, csv_rows, strict, executor, counter)
    packer.write_manifest(complete=not todo)
    if not todo:
        return manifest
    n_rows = todo[-1].stop - todo[0].start
    n_files = sum(len(r.kinds) for r in rows[todo[0].start :])
    from tqdm import tqdm

    ok = False
    try:
        with tqdm(total=n_rows, unit="patch", desc=f"pack {out.name}", smoothing=0.1) as bar:

            def progress(files_done: int) -> None:
                bar.update(files_done * n_rows // n_files - bar.n)

            with contextlib.ExitStack() as outer:
                run: _Run | None = None
                for group in _group_shards(todo, rows, root_path):
                    # Start reading the next group before finishing the last one, so that the
                    # workers keep reading while this process fsyncs and renames.
                    nxt = packer.start(group, outer)
                    if run is not None:
                        packer.finish(run, progress)
                    run = nxt
                if run is not None:
                    packer.finish(run, progress)
            progress(counter.value)
        ok = True
    finally:
        executor.shutdown(wait=ok, cancel_futures=True)
        if workers <= 0:
            _init_worker(None)
    packer.write_manifest(complete=True)
    return manifest


# ------------------------------------------------------------------------------ the dataset


@dataclass(frozen=True)
class PackedPatch:
    """One row of ``patches.csv``: where a patch lies and its georeferencing."""

    shard: int
    offset: int
    roi_season: str
    scene: int
    patch: int
    split: str
    has_s1: bool
    has_s2: bool
    has_s2_cloudy: bool
    crs: str  # WKT, "" if none
    transform: tuple[float, ...] | None  # (a, b, c, d, e, f) of the whole patch

    @property
    def id(self) -> str:
        """The patch id, as ``IndexRow.id``: ``ROIs1970_fall_136_p100``."""
        return f"{self.roi_season}_{self.scene}_p{self.patch}"

    def has(self, kind: str) -> bool:
        return bool(getattr(self, f"has_{kind}"))


def read_patches(packed_dir: str | os.PathLike[str]) -> list[PackedPatch]:
    """Every row of a pack's ``patches.csv``, in pack order."""
    path = Path(packed_dir) / PATCHES
    if not path.is_file():
        raise DataError(path, "does not exist", "the patches.csv that 'cloudfree pack' writes")
    wkts: dict[str, str] = {}  # one string object per CRS: cheap to keep and to pickle
    out = []
    for rec in _read_csv_rows(path):
        crs = wkts.setdefault(rec[9], rec[9])
        t = tuple(float(v) for v in rec[10].split()) if rec[10] else None
        out.append(
            PackedPatch(
                int(rec[0]),
                int(rec[1]),
                rec[2],
                int(rec[3]),
                int(rec[4]),
                rec[5],
                rec[6] == "1",
                rec[7] == "1",
                rec[8] == "1",
                crs,
                t,
            )  # fmt: skip
        )
    return out


class PackedDataset(Dataset):
    """Packed SEN12MS-CR patches as dicts of tensors, identical to :class:`SEN12MSCR` samples.

    Item ``i`` of epoch ``e`` plans its window and augmentation from ``sample_rng(seed, e, i)``
    exactly as :class:`~cloudfree.data.sen12mscr.SEN12MSCR` does, reads only that window from
    the memory-mapped shards, and builds the sample with
    :func:`~cloudfree.data.sample.make_sample`: for the same index rows, config, seed and epoch,
    both datasets return the same tensors.

    Args:
        packed_dir: folder written by :func:`pack`.
        split: ``"train"``, ``"val"``, ``"test"`` or None for every packed patch.
        config: window, augmentation, SAR and scaling; ``include_sar=True`` uses only the
            patches with S1.
        seed: base seed of the per-item generators.
        require_target: use only patches with the cloud-free S2 and return it as ``"s2"``
            (as ``SEN12MSCR(require_target=...)``).

    Memory maps are opened lazily in each process and dropped when pickled, so DataLoader
    workers and DDP ranks (``DistributedSampler``) each map the files themselves. Call
    :meth:`set_epoch` before each epoch to redraw crops (not seen by ``persistent_workers``).

    Raises:
        DataError: not a complete pack of a known format version.
        DatasetNotFoundError: no packed patch fits the split and config.
    """

    def __init__(
        self,
        packed_dir: str | os.PathLike[str],
        split: str | None = None,
        config: SampleConfig = SampleConfig(),  # noqa: B008 (frozen dataclass: immutable)
        seed: int = 42,
        require_target: bool = True,
    ) -> None:
        self.root = Path(packed_dir)
        self.manifest = read_manifest(self.root)
        h, w = self.manifest["patch_shape"]
        if h != w:
            raise DataError(self.root, f"holds {h}x{w} patches", "square patches")
        self.patch_size = int(h)
        self.config, self.seed, self.epoch, self.split = config, int(seed), 0, split
        self.kinds: tuple[str, ...] = (
            ("s2_cloudy",)
            + (("s2",) if require_target else ())
            + (("s1",) if config.include_sar else ())
        )
        self.with_mask = self.manifest.get("mask") is not None
        self.patches = [
            p
            for p in read_patches(self.root)
            if (split is None or p.split == split) and all(p.has(k) for k in self.kinds)
        ]
        if not self.patches:
            scope = f"of split {split!r} " if split else ""
            raise DatasetNotFoundError(
                self.root,
                f"no packed patch {scope}has all of {list(self.kinds)} "
                f"({self.manifest['num_patches']} packed; counts {self.manifest.get('counts')})",
                "SampleConfig(include_sar=False) for pairs without S1, another split, or a pack "
                "with such patches",
            )
        self._files = {
            i: {k: str(self.root / f) for k, f in e["files"].items()}
            for i, e in enumerate(self.manifest["shards"])
        }
        self._maps: dict[tuple[int, str], np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = {}  # each process maps the files itself
        return state

    def __len__(self) -> int:
        return len(self.patches)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops and augmentations items draw (reproducible per epoch)."""
        self.epoch = int(epoch)

    def plan(self, index: int) -> SamplePlan:
        """The window and augmentation item ``index`` draws in the current epoch."""
        return plan_sample(self.config, sample_rng(self.seed, self.epoch, index), self.patch_size)

    def _map(self, shard: int, kind: str) -> np.ndarray:
        mm = self._maps.get((shard, kind))
        if mm is None:
            mm = self._maps[(shard, kind)] = np.load(self._files[shard][kind], mmap_mode="r")
        return mm

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One sample (see :func:`~cloudfree.data.sample.make_sample`)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} patches")
        index = index % len(self)
        p = self.patches[index]
        plan = self.plan(index)
        r, c, h, w = plan.window
        raw = {
            k: np.ascontiguousarray(self._map(p.shard, k)[p.offset, :, r : r + h, c : c + w])
            for k in self.kinds
        }
        if self.with_mask:
            raw["mask"] = np.ascontiguousarray(
                self._map(p.shard, "mask")[p.offset, r : r + h, c : c + w]
            )
        meta = {
            "id": p.id,
            "roi_season": p.roi_season,
            "scene": p.scene,
            "patch": p.patch,
            "crs": p.crs or None,
            "transform": None if p.transform is None else _window_affine(p.transform, plan),
            "source": f"{self._files[p.shard]['s2_cloudy']}[{p.offset}]",
        }
        return make_sample(raw, plan, self.config, meta)


def _window_affine(transform: tuple[float, ...], plan: SamplePlan) -> Any:
    """The affine of a window, computed by rasterio as ``read_raster`` does (bit-identical)."""
    from affine import Affine
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    return window_transform(Window(plan.col, plan.row, plan.width, plan.height), Affine(*transform))
