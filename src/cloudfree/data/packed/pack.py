"""``cloudfree pack``: convert an index once into packed shards (:mod:`cloudfree.data.packed.shards`).

:func:`pack` plans the shards, reads the source files with worker processes
(:mod:`cloudfree.data.packed.sources`), checks each patch, and finalises the shards one by one,
recording them in the manifest (:mod:`cloudfree.data.packed.manifest`).

**Robustness** (a multi-hour job). Shards never mix release seasons (``roi_season``), so each
season's archives can be streamed once (the shards of a season read from archives are then
finished, and resumable, together). Every file is written under a temporary name and
renamed when complete; the manifest is rewritten atomically after each finished shard and is
the record of what is done: re-running the same command keeps those shards (not re-read) and
goes on. A bad patch is warned about (file and reason), skipped (its slot stays zeros) and
listed in the manifest's ``"skipped"``; ``strict=True`` raises instead.

**Cloud masks.** With ``mask=True`` (the default; ``cloudfree pack --no-mask`` skips it) the
workers compute the DSen2-CR cloud/shadow mask of each full cloudy patch from the array they
just read (no extra I/O) into the shard's mask slot, and each shard entry records
``"mask": true``. Re-running with masks over a pack made without them keeps its shards and
fills their masks (:func:`~cloudfree.data.packed.manifest.fill_masks`).

**Archives.** Rows pointing into the release ``.tar.gz`` archives are not read through
GDAL's ``/vsitar/`` but by streaming each archive once, in its own order (see
:mod:`cloudfree.data.packed.sources`); consecutive shards reading the same archives are read
together, so that each archive is streamed once.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import multiprocessing as mp
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree import __version__
from cloudfree.bands import KINDS, SPLITS
from cloudfree.data.packed.manifest import (
    Shard,
    arrays_info,
    csv_row,
    fill_masks,
    mask_state,
    now,
    patch_counts,
    plan_shards,
    resume,
    rows_hash,
    write_json,
)
from cloudfree.data.packed.shards import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MASK_NOT_COMPUTED,
    PATCH_COLUMNS,
    PATCHES,
    array_spec,
    read_patch_rows,
    shard_files,
)
from cloudfree.data.packed.sources import (
    Item,
    Problem,
    init_worker,
    member_name,
    probe_size,
    read_archive,
    read_files,
)
from cloudfree.data.release.index import IndexRow, read_index
from cloudfree.errors import DataError, DatasetNotFoundError
from cloudfree.io import RasterMeta, atomic_path, fsync_path, split_archive_path
from cloudfree.locks import folder_lock
from cloudfree.outputs import check_output_dir, created_folder
from cloudfree.workers import process_pool

_ROWS_PER_TASK = 8  # files of 8 patches per worker task: load balance vs. IPC overhead


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

    shards: list[Shard]
    stack: contextlib.ExitStack
    temps: dict[int, dict[str, str]] = field(default_factory=dict)
    futures: list[cf.Future] = field(default_factory=list)


def _archives(rows: Sequence[IndexRow], root: Path) -> set[str]:
    found = set()
    for r in rows:
        for k in r.kinds:
            parts = split_archive_path(str(root / r.path(k)))
            if parts is not None:
                found.add(parts[0])
    return found


def _group_shards(
    shards: Sequence[Shard], rows: Sequence[IndexRow], root: Path
) -> list[list[Shard]]:
    """Shards processed together: consecutive shards reading the same archives share a group,
    so that each archive is streamed once; shards of plain files are one group each."""
    groups: list[list[Shard]] = []
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
        mask: bool = True,
    ) -> None:
        self.out, self.rows, self.root, self.mask = out, rows, root, mask
        self.hw: tuple[int, int] = tuple(manifest["patch_shape"])
        self.manifest, self.strict = manifest, strict
        self.executor, self.counter = executor, counter
        self._csv_counts = patch_counts(csv_rows)

    def start(self, group: list[Shard], outer: contextlib.ExitStack) -> _Run:
        """Create the group's temporary arrays and submit the tasks that fill them."""
        run = _Run(group, outer.enter_context(contextlib.ExitStack()))
        for s in group:
            run.temps[s.index] = {}
            for kind, fname in shard_files(s.name).items():
                tmp = run.stack.enter_context(atomic_path(self.out / fname))
                dtype, shape = array_spec(kind, s.slots, self.hw)
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
                        members.setdefault(member_name(parts[1]), []).append(item)
        masks = {t["s2_cloudy"]: t["mask"] for t in run.temps.values()} if self.mask else None
        # Archives first: each is one long sequential task.
        for archive, members in archives.items():
            run.futures.append(self.executor.submit(read_archive, archive, members, self.hw, masks))
        step = 3 * _ROWS_PER_TASK
        for i in range(0, len(files), step):
            run.futures.append(
                self.executor.submit(read_files, files[i : i + step], self.hw, masks)
            )
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
                metas: dict[str, Any] = {
                    k: res[k][0] for k in ("s2_cloudy", "s2", "s1") if k in row.kinds
                }
                if prob is None:
                    prob = _grid_problem(row, metas, self.root)
                if prob is not None:
                    self._skip(row, s, pos, prob)
                    bad.append(pos - s.start)
                else:
                    ref = next(m for m in metas.values() if m is not None)
                    new_rows.append(csv_row(s.index, pos - s.start, row, ref))
            for kind in ("s2", "s2_cloudy", "s1", "mask"):
                path = run.temps[s.index][kind]
                if bad:  # slots of skipped patches: zeros, whatever was read before the problem
                    mm = np.load(path, mmap_mode="r+")
                    mm[bad] = MASK_NOT_COMPUTED if kind == "mask" else 0
                    del mm
            for path in run.temps[s.index].values():
                fsync_path(path)
        run.stack.close()  # rename every temporary file onto its final name
        fsync_path(self.out)
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
                    "mask": self.mask,
                }
            )
        self._add_counts(new_rows)
        self.write_manifest()

    def _skip(self, row: IndexRow, shard: Shard, pos: int, prob: Problem) -> None:
        if self.strict:
            raise DataError(*prob)
        path, problem, expected = prob
        reason = problem + (f" (expected {expected})" if expected else "")
        warnings.warn(f"skipping patch {row.id}: {path}: {reason}", stacklevel=3)
        self.manifest["skipped"].append(
            {"id": row.id, "shard": shard.index, "position": pos, "path": path, "reason": reason}
        )

    def _add_counts(self, new_rows: list[list[Any]]) -> None:
        add = patch_counts(new_rows)
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
        m["mask"] = mask_state(m)
        write_json(self.out / MANIFEST, m)


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
    mask: bool = True,
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
        mask: compute the cloud/shadow mask of every full cloudy patch into the mask slots
            (and fill those of shards an earlier run packed without masks); False leaves
            them 255 and the manifest's ``"mask"`` null.

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
    out = check_output_dir(out, "--out", [index, root_path])
    done: list[Any] = []  # [the manifest] once it exists: what the finished shards hold
    # A pack that fails before finishing a shard leaves no --out folder it created; one with
    # finished shards is kept, for the next run to resume.
    with (
        created_folder(out, keep=lambda: bool(done and done[0]["num_patches"])),
        folder_lock(out, "pack"),
    ):
        hw = probe_size(rows, root_path)
        shards = plan_shards(rows, shard_size)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "cloudfree_version": __version__,
            "created": now(),
            "updated": now(),
            "complete": False,
            "source": {
                "index": str(Path(index).resolve()),
                "root": str(root_path),
                "split": split,
                "require": list(require),
                "num_selected": len(rows),
                "rows_sha256": rows_hash(rows),
            },
            "shard_size": shard_size,
            "patch_shape": list(hw),
            "arrays": arrays_info(hw),
            "mask": None,
            "num_shards": len(shards),
            "num_patches": 0,
            "num_skipped": 0,
            "shards": [],
            "skipped": [],
        }
        done.append(manifest)
        csv_rows = resume(out, manifest, shards, overwrite)
        if not csv_rows:
            with atomic_path(out / PATCHES) as tmp, open(tmp, "w", newline="") as f:
                csv.writer(f).writerow(PATCH_COLUMNS)
        elif len(csv_rows) != len(read_patch_rows(out / PATCHES)):
            with atomic_path(out / PATCHES) as tmp, open(tmp, "w", newline="") as f:
                csv.writer(f).writerows([PATCH_COLUMNS, *csv_rows])

        todo = shards[len(manifest["shards"]) :]
        # The platform's default start method, as torch's DataLoader uses (fork on Linux before
        # Python 3.14; with spawn/forkserver, call pack() under `if __name__ == "__main__":`).
        ctx = mp.get_context()
        counter = ctx.Value("q", 0)
        executor: Any
        if workers > 0:
            # Readers that end with this process: a killed pack leaves none behind.
            executor = process_pool(workers, init_worker, (counter,), mp_context=ctx)
            executor.submit(int).result()  # start the workers now, before tqdm starts its thread
        else:
            init_worker(counter)
            executor = _InlineExecutor()
        packer = _Packer(out, rows, root_path, manifest, csv_rows, strict, executor, counter, mask)
        packer.write_manifest(complete=not todo)
        if not todo:
            executor.shutdown()
            if workers <= 0:
                init_worker(None)
            return fill_masks(out) if mask else manifest
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
                init_worker(None)
        if manifest["num_patches"] == 0:  # a pack of nothing is no success
            first = manifest["skipped"][0] if manifest["skipped"] else None
            raise DatasetNotFoundError(
                index,
                f"none of the {len(rows)} patches could be read"
                + (f" (the first: {first['path']}: {first['reason']})" if first else ""),
                "an index whose files exist under its root (give --root if the dataset moved)",
            )
        packer.write_manifest(complete=True)
        if mask and manifest["mask"] is None:  # shards kept from a run without masks
            return fill_masks(out)
        return manifest
