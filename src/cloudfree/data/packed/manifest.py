"""The record of a pack being written: shard plan, manifest, ``patches.csv`` rows, resuming.

Internals of :func:`cloudfree.data.packed.pack.pack`. The shards are planned deterministically from the
selected index rows (a new shard at each release season), so a re-run plans the same shards; the
manifest, rewritten atomically after each finished shard, is the record of what is done:
:func:`resume` keeps the finished shards of an earlier run of the same pack (checked against the
plan, their files and ``patches.csv``) and removes everything else it left. :func:`fill_masks`
computes the cloud masks of shards packed without them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.bands import S1_BANDS, S2_BANDS
from cloudfree.data.packed.shards import (
    ARRAY_KINDS,
    MANIFEST,
    MASK_NOT_COMPUTED,
    PATCHES,
    array_spec,
    read_manifest,
    read_patch_rows,
    read_patches,
    shard_files,
)
from cloudfree.data.release.index import IndexRow
from cloudfree.errors import DataError
from cloudfree.io import RasterMeta, atomic_path, fsync_path
from cloudfree.locks import holds_folder
from cloudfree.masks.patch import mask_record, patch_mask


@dataclass(frozen=True)
class Shard:
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


def rows_hash(rows: Sequence[IndexRow]) -> str:
    """SHA-256 of the rows' ids, splits and paths: names the content of a selection or shard."""
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.id},{r.split},{r.s1},{r.s2},{r.s2_cloudy}\n".encode())
    return h.hexdigest()


def plan_shards(rows: Sequence[IndexRow], shard_size: int) -> list[Shard]:
    """Consecutive runs of up to ``shard_size`` rows, a new shard at each release season."""
    shards: list[Shard] = []
    start = 0
    for pos in range(1, len(rows) + 1):
        if (
            pos == len(rows)
            or pos - start == shard_size
            or rows[pos].roi_season != rows[start].roi_season
        ):
            shards.append(Shard(len(shards), start, pos, rows_hash(rows[start:pos])))
            start = pos
    return shards


def arrays_info(hw: tuple[int, int]) -> dict[str, Any]:
    """Per-patch dtype, shape and meaning of each array kind (for the manifest)."""
    units = {"s2": "L1C TOA reflectance x 10000", "s1": "sigma0 dB, raw (NaN kept)"}
    info: dict[str, Any] = {}
    for kind in ARRAY_KINDS:
        dtype, shape = array_spec(kind, 1, hw)
        info[kind] = {"dtype": dtype, "shape": list(shape[1:])}
        if kind == "mask":
            info[kind]["fill"] = MASK_NOT_COMPUTED
        else:
            info[kind]["bands"] = list(S1_BANDS if kind == "s1" else S2_BANDS)
            info[kind]["units"] = units["s1" if kind == "s1" else "s2"]
    return info


def now() -> str:
    """The current UTC time, ISO 8601 to the second (the manifest's ``created``, ``updated``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write a manifest atomically, stamping its ``updated`` time."""
    obj["updated"] = now()
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1) + "\n")


def csv_row(shard: int, offset: int, row: IndexRow, ref: RasterMeta) -> list[Any]:
    """The ``patches.csv`` row (``PATCH_COLUMNS``) of a patch; ``ref``: its reference file."""
    crs = ref.crs.to_wkt() if ref.crs else ""
    transform = " ".join(repr(float(v)) for v in tuple(ref.transform)[:6]) if ref.transform else ""
    has = [int(row.has(k)) for k in ("s1", "s2", "s2_cloudy")]
    return [shard, offset, row.roi_season, row.scene, row.patch, row.split, *has, crs, transform]


def patch_counts(csv_rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Patches with each kind, complete triplets, and patches per split, of patches.csv rows."""
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


def _shard_ok(out: Path, entry: dict[str, Any], shard: Shard, hw: tuple[int, int]) -> bool:
    if entry.get("name") != shard.name or entry.get("rows") != [shard.start, shard.stop]:
        return False
    if entry.get("rows_sha256") != shard.rows_sha256:
        return False
    for kind, fname in shard_files(shard.name).items():
        try:
            arr = np.load(out / fname, mmap_mode="r")
        except (OSError, ValueError):
            return False
        dtype, shape = array_spec(kind, shard.slots, hw)
        if arr.dtype != np.dtype(dtype) or arr.shape != shape:
            return False
    return True


def resume(
    out: Path, new: dict[str, Any], shards: Sequence[Shard], overwrite: bool
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
        if not _shard_ok(out, entry, shard, tuple(new["patch_shape"])):
            break
        kept += 1
    entries = old["shards"][:kept]
    csv_rows: list[list[str]] = []
    if kept and (out / PATCHES).is_file():
        csv_rows = read_patch_rows(out / PATCHES, sum(e["num_patches"] for e in entries))
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
    # How the inpainted arrays were made (cloudfree.data.packed.inpaint_cache); kept shards keep their
    # files and their entries' "inpaint" flags, new shards have none until filled.
    for key in ("inpaint", "inpaint_timing"):
        if key in old:
            new[key] = old[key]
    new["shards"] = entries
    new["skipped"] = [s for s in old.get("skipped", []) if s["shard"] < kept]
    return csv_rows


def mask_state(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest's ``"mask"`` record: :func:`mask_record` if every shard has its masks
    (entry ``"mask": true``), else None."""
    shards = manifest.get("shards", [])
    if shards and all(e.get("mask") is True for e in shards):
        return mask_record()
    return None


@holds_folder("pack")
def fill_masks(packed_dir: str | os.PathLike[str], batch: int = 32) -> dict[str, Any]:
    """Compute the cloud masks of a complete pack's shards that have none (``"mask"`` not true).

    Each such shard's listed cloudy patches are read from the shard itself and masked (full
    patch, raw DN, as while packing), written in place into its mask file, which is fsynced
    before its entry is set ``"mask": true`` and the manifest rewritten atomically: an
    interrupted run leaves the shard unmarked and is simply run again.

    Args:
        packed_dir: a complete pack.
        batch: patches masked per call (memory: ~2 MB of DN per 256x256 patch).

    Returns:
        The updated manifest (its ``"mask"`` is the mask record once every shard has masks).

    Raises:
        DataError: not a complete pack.
    """
    out = Path(packed_dir)
    manifest = read_manifest(out)
    by_shard: dict[int, list[int]] = {}
    for p in read_patches(out):
        if p.has_s2_cloudy:
            by_shard.setdefault(p.shard, []).append(p.offset)
    for i, entry in enumerate(manifest["shards"]):
        if entry.get("mask") is True:
            continue
        offsets = sorted(by_shard.get(i, []))
        files = entry["files"]
        cloudy = np.load(out / files["s2_cloudy"], mmap_mode="r")
        masks = np.load(out / files["mask"], mmap_mode="r+")
        for j in range(0, len(offsets), batch):
            sel = offsets[j : j + batch]
            masks[sel] = patch_mask(np.asarray(cloudy[sel]))
        masks.flush()
        del masks, cloudy
        fsync_path(out / files["mask"])
        entry["mask"] = True
        manifest["mask"] = mask_state(manifest)
        write_json(out / MANIFEST, manifest)
    manifest["mask"] = mask_state(manifest)
    write_json(out / MANIFEST, manifest)
    return manifest
