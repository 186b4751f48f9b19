"""Packed shards: SEN12MS-CR patches in a few large memory-mapped ``.npy`` files.

Reading thousands of small GeoTIFFs (122k triplets, ~620 GB) is what makes SEN12MS-CR training
slow. ``cloudfree pack`` (:func:`cloudfree.data.pack.pack`) converts an index once into shards,
and :class:`PackedDataset` serves them with the same sample pipeline as the per-file dataset
(:mod:`cloudfree.data.sample`), so a sample is identical whichever way it was read. This module
is the format and its reader; :mod:`cloudfree.data.pack` writes it.

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

import numpy as np
from torch.utils.data import Dataset

from cloudfree import __version__
from cloudfree.data.bands import NUM_S1_BANDS, NUM_S2_BANDS
from cloudfree.data.collate import load_or_skip
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


def shard_files(name: str) -> dict[str, str]:
    """File names of one shard's arrays: ``{"s2": "shard-00000.s2.npy", ...}``."""
    return {kind: f"{name}.{kind}.npy" for kind in ARRAY_KINDS}


def array_spec(kind: str, n: int, hw: tuple[int, int]) -> tuple[str, tuple[int, ...]]:
    """Dtype and shape of ``n`` slots of an array kind: ``("uint16", (n, 13, H, W))`` for S2."""
    if kind == "mask":
        return "uint8", (n, *hw)
    bands, dtype = _LAYOUT[kind]
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

    ``config.mask == "cached"`` returns the window of the packed full-patch mask (identical to
    ``SEN12MSCR``'s cached mask); ``"crop"`` computes the mask of each raw crop on the fly.
    ``config.inpaint`` returns the window of the cached inpainted cloudy image as
    ``"s2_inpainted"`` (:mod:`cloudfree.data.inpaint_cache`).

    Memory maps are opened lazily in each process and dropped when pickled, so DataLoader
    workers and DDP ranks (``DistributedSampler``) each map the files themselves. Call
    :meth:`set_epoch` before each epoch to redraw crops (not seen by ``persistent_workers``).

    Raises:
        DataError: not a complete pack of a known format version; ``config.mask == "cached"``
            but the pack holds no masks; ``config.inpaint`` but the pack holds no complete
            inpainting of that method.
        DatasetNotFoundError: no packed patch fits the split and config.
    """

    def __init__(
        self,
        packed_dir: str | os.PathLike[str],
        split: str | None = None,
        config: SampleConfig = SampleConfig(),  # noqa: B008 (frozen dataclass: immutable)
        seed: int = 42,
        require_target: bool = True,
        strict: bool = False,
    ) -> None:
        self.root = Path(packed_dir)
        self.strict = strict
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
        self.with_mask = config.mask == "cached"
        if self.with_mask and self.manifest.get("mask") is None:
            raise DataError(
                self.root,
                "holds no cloud masks (packed with --no-mask, or by an older cloudfree) but the "
                "config asks for cached masks",
                "a pack with masks: re-run the same 'cloudfree pack' command without --no-mask "
                "(it fills the masks of the existing shards), or SampleConfig(mask='crop')",
            )
        self.inpaint = config.inpaint
        if self.inpaint is not None:
            from cloudfree.data.inpaint_cache import inpaint_complete

            if not inpaint_complete(self.manifest, self.inpaint):
                raise DataError(
                    self.root,
                    f"holds no complete {self.inpaint!r} inpainting of its patches, which the "
                    "hybrid model reads",
                    f"a pack with it: run 'cloudfree pack INDEX --out {self.root} --inpaint "
                    f"{self.inpaint}' (the same pack command plus --inpaint; finished shards "
                    "are kept, only the inpainting is computed)",
                )
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
        if self.inpaint is not None:
            from cloudfree.data.inpaint_cache import inpaint_file

            for i, e in enumerate(self.manifest["shards"]):
                self._files[i]["s2_inpainted"] = str(
                    self.root / inpaint_file(e["name"], self.inpaint)
                )
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

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        """One sample (see :func:`~cloudfree.data.sample.make_sample`), or None for a bad
        patch when not ``strict`` (as :class:`~cloudfree.data.sen12mscr.SEN12MSCR`: the
        training loop skips and counts it with ``collate_skip_bad``)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} patches")
        index = index % len(self)
        return load_or_skip(self._load, index, self.patches[index].id, self.strict)

    def _load(self, index: int) -> dict[str, Any]:
        p = self.patches[index]
        plan = self.plan(index)
        r, c, h, w = plan.window
        raw = {
            k: np.ascontiguousarray(self._map(p.shard, k)[p.offset, :, r : r + h, c : c + w])
            for k in self.kinds
        }
        if self.inpaint is not None:
            raw["s2_inpainted"] = np.ascontiguousarray(
                self._map(p.shard, "s2_inpainted")[p.offset, :, r : r + h, c : c + w]
            )
        if self.with_mask:
            raw["mask"] = np.ascontiguousarray(
                self._map(p.shard, "mask")[p.offset, r : r + h, c : c + w]
            )
            if (raw["mask"] == MASK_NOT_COMPUTED).any():
                raise DataError(
                    f"{self._files[p.shard]['mask']}[{p.offset}]",
                    f"patch {p.id} has no computed cloud mask (255) although the manifest "
                    "records masks",
                    "a complete mask: run 'cloudfree pack' with masks again to fill it",
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
