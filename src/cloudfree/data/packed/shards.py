"""Packed shards: SEN12MS-CR patches in a few large memory-mapped ``.npy`` files.

Reading thousands of small GeoTIFFs (122k triplets, ~620 GB) is what makes SEN12MS-CR training
slow. ``cloudfree pack`` (:func:`cloudfree.data.packed.pack.pack`) converts an index once into shards,
and :class:`~cloudfree.data.packed.dataset.PackedDataset` serves them with the same sample pipeline as the per-file dataset
(:mod:`cloudfree.data.sample`), so a sample is identical whichever way it was read. This module
is the format and its reader (the dataset lives in :mod:`cloudfree.data.packed.dataset`); :mod:`cloudfree.data.packed.pack` writes it.

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
``has_* = 0`` (left as file holes: sparse on disk). The mask array holds the DSen2-CR
cloud/shadow mask (0 clear, 1 cloud, 2 shadow) of the FULL cloudy patch, computed from the raw
DN once while packing (``pack(mask=True)``, the default) or afterwards (``fill_masks``); the
manifest then records ``"mask": {"algorithm": "dsen2cr-csm", "params": {...}, "classes":
{...}}`` and every shard entry ``"mask": true``. Slots without a mask (``--no-mask`` packs,
skipped patches, patches without a cloudy image) hold 255 and the manifest says
``"mask": null``.

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
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudfree import __version__
from cloudfree.bands import FILE_LAYOUT
from cloudfree.data.source import PACK_MARKER
from cloudfree.errors import DataError
from cloudfree.masks.patch import MASK_NOT_COMPUTED  # noqa: F401 (part of the format)

FORMAT = "cloudfree-packed"
FORMAT_VERSION = 1
MANIFEST = PACK_MARKER  # how cloudfree.data.source recognises a pack
PATCHES = "patches.csv"
PATCH_COLUMNS: tuple[str, ...] = (
    "shard", "offset", "roi_season", "scene", "patch", "split",
    "has_s1", "has_s2", "has_s2_cloudy", "crs", "transform",
)  # fmt: skip
#: Array kinds of a shard, one .npy file each.
ARRAY_KINDS: tuple[str, ...] = ("s2", "s2_cloudy", "s1", "mask")


def shard_files(name: str) -> dict[str, str]:
    """File names of one shard's arrays: ``{"s2": "shard-00000.s2.npy", ...}``."""
    return {kind: f"{name}.{kind}.npy" for kind in ARRAY_KINDS}


def array_spec(kind: str, n: int, hw: tuple[int, int]) -> tuple[str, tuple[int, ...]]:
    """Dtype and shape of ``n`` slots of an array kind: ``("uint16", (n, 13, H, W))`` for S2."""
    if kind == "mask":
        return "uint8", (n, *hw)
    bands, dtype = FILE_LAYOUT[kind]
    return dtype, (n, bands, *hw)


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


def read_patch_rows(path: Path, limit: int | None = None) -> list[list[str]]:
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
    for rec in read_patch_rows(path):
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
