"""The packed dataset: samples read from a pack's memory-mapped shards.

The format is :mod:`cloudfree.data.packed.shards`'s; the sample pipeline is the per-file
dataset's (:class:`cloudfree.data.dataset.PatchDataset`, :func:`cloudfree.data.sample.make_sample`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.data.dataset import PatchDataset
from cloudfree.data.left_out import left_out
from cloudfree.data.packed.shards import MASK_NOT_COMPUTED, read_manifest, read_patches
from cloudfree.data.sample import SampleConfig, SamplePlan, make_sample
from cloudfree.errors import DataError, DatasetNotFoundError


class PackedDataset(PatchDataset):
    """Packed SEN12MS-CR patches as dicts of tensors, identical to :class:`SEN12MSCR` samples.

    Item ``i`` of epoch ``e`` plans its window and augmentation from ``sample_rng(seed, e, i)``
    exactly as :class:`~cloudfree.data.release.dataset.SEN12MSCR` does, reads only that window from
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
    ``"s2_inpainted"`` (:mod:`cloudfree.data.packed.inpaint_cache`).

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
        self.manifest = read_manifest(self.root)
        h, w = self.manifest["patch_shape"]
        if h != w:
            raise DataError(self.root, f"holds {h}x{w} patches", "square patches")
        self.split = split
        self._init_sampling(config, seed, require_target, strict, int(h))
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
            from cloudfree.data.packed.inpaint_cache import inpaint_complete

            if not inpaint_complete(self.manifest, self.inpaint):
                raise DataError(
                    self.root,
                    f"holds no complete {self.inpaint!r} inpainting of its patches, which the "
                    "hybrid model reads",
                    f"a pack with it: run 'cloudfree pack INDEX --out {self.root} --inpaint "
                    f"{self.inpaint}' (the same pack command plus --inpaint; finished shards "
                    "are kept, only the inpainting is computed)",
                )
        in_split = [p for p in read_patches(self.root) if split is None or p.split == split]
        self.patches = [p for p in in_split if all(p.has(k) for k in self.kinds)]
        self.left_out = left_out(in_split, self.kinds, lambda p, k: p.has(k))
        if not self.patches:
            scope = f"of split {split!r} " if split else ""
            more = self.usable_hint()
            raise DatasetNotFoundError(
                self.root,
                f"no packed patch {scope}has all of {list(self.kinds)} "
                f"({self.manifest['num_patches']} packed; counts {self.manifest.get('counts')})",
                "a pack with such patches ('cloudfree pack INDEX --out DIR' packs every patch "
                "of the index)" + (f"; or {more}" if more else ""),
            )
        self._files = {
            i: {k: str(self.root / f) for k, f in e["files"].items()}
            for i, e in enumerate(self.manifest["shards"])
        }
        if self.inpaint is not None:
            from cloudfree.data.packed.inpaint_cache import inpaint_file

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

    def _item_id(self, index: int) -> str:
        return self.patches[index].id

    def _map(self, shard: int, kind: str) -> np.ndarray:
        mm = self._maps.get((shard, kind))
        if mm is None:
            mm = self._maps[(shard, kind)] = np.load(self._files[shard][kind], mmap_mode="r")
        return mm

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
