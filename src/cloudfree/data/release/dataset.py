"""The SEN12MS-CR PyTorch dataset over a patch index, with the DSen2-CR preprocessing.

Each item reads only the planned window of each GeoTIFF (``io.read_raster``), checks that the
files of the patch lie on the same pixel grid, and builds the sample with
:func:`cloudfree.data.sample.make_sample` (spec section 2). Bad patches raise
:class:`~cloudfree.errors.DataError` in strict mode, or warn and yield None otherwise; use
:func:`cloudfree.data.collate.collate_skip_bad` as the DataLoader's ``collate_fn`` to drop them.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.bands import FILE_LAYOUT, PATCH_SIZE
from cloudfree.data.dataset import PatchDataset
from cloudfree.data.left_out import left_out
from cloudfree.data.release.index import IndexResult, IndexRow, read_index
from cloudfree.data.release.mask_cache import MaskCache
from cloudfree.data.sample import SampleConfig, make_sample
from cloudfree.errors import DataError, DatasetNotFoundError
from cloudfree.io import RasterMeta, read_meta, read_raster


def _coeffs(meta: RasterMeta) -> tuple[float, ...] | None:
    return None if meta.transform is None else tuple(meta.transform)[:6]


class SEN12MSCR(PatchDataset):
    """SEN12MS-CR patches as dicts of tensors (see :func:`~cloudfree.data.sample.make_sample`).

    Args:
        index: an index CSV (written by ``cloudfree index``) or an :class:`IndexResult`.
        root: dataset root the index paths are relative to; default: the index's own root.
        split: ``"train"``, ``"val"``, ``"test"`` or None for every row.
        config: window, augmentation, SAR and scaling (default: the paper's training sampling).
        require_target: only use rows with the cloud-free S2 and return it as ``"s2"``. False
            for prediction: the target is then neither read nor returned, and rows without one
            are usable.
        strict: raise DataError on the first bad patch instead of warning and yielding None.
        seed: base seed; item ``i`` of epoch ``e`` draws from ``default_rng([seed, e, i])``.
        patch_size: side of every patch in pixels (SEN12MS-CR: 256), needed to plan the window
            before reading; None reads it from the cloudy file's header for every item (one
            extra file open) for datasets of another, square, size.
        mask_cache: with ``config.mask == "cached"``: the cache's ``.npy`` path, or a
            :class:`~cloudfree.data.release.mask_cache.MaskCache`. Default: ``<index stem>.masks.npy``
            beside the index file (created on demand); required when ``index`` is an in-memory
            IndexResult. Masks missing from the cache are computed on the full cloudy patch
            by the worker that first reads it, once; ``config.mask == "crop"`` computes the
            mask of each raw crop on the fly instead (upstream's way, slow).

    Raises:
        DatasetNotFoundError: no row of the index has the files the configuration needs.
        DataError: the index file is missing or malformed; ``config.mask == "cached"`` with an
            in-memory index and no ``mask_cache``.

    Epochs: :meth:`~cloudfree.data.dataset.PatchDataset.set_epoch` before each epoch.
    """

    def __init__(
        self,
        index: str | os.PathLike[str] | IndexResult,
        root: str | os.PathLike[str] | None = None,
        split: str | None = None,
        config: SampleConfig = SampleConfig(),  # noqa: B008 (frozen dataclass: immutable)
        require_target: bool = True,
        strict: bool = False,
        seed: int = 42,
        patch_size: int | None = PATCH_SIZE,
        mask_cache: str | os.PathLike[str] | MaskCache | None = None,
    ) -> None:
        if isinstance(index, IndexResult):
            result = index if root is None else replace(index, root=Path(root))
            where: str | Path = result.root
        else:
            result = read_index(index, root=root)
            where = Path(index)
        self.index = result
        self.split = split
        self._init_sampling(config, seed, require_target, strict, patch_size)
        if config.inpaint is not None:
            raise DataError(
                where,
                f"the per-file dataset has no cache of {config.inpaint!r}-inpainted images, which "
                "the hybrid model reads (inpainting every epoch would be far too slow)",
                f"packed shards with it: cloudfree pack INDEX --out DIR --inpaint {config.inpaint}, "
                "then data.packed=DIR",
            )
        self.rows: list[IndexRow] = result.select(split, require=self.kinds)
        self.left_out = left_out(result.select(split), self.kinds, lambda r, k: r.has(k))
        if not self.rows:
            raise DatasetNotFoundError(where, self._nothing_usable(), self._fix_hint())
        self.mask_cache: MaskCache | None = None
        if config.mask == "cached":
            if isinstance(mask_cache, MaskCache):
                self.mask_cache = mask_cache
            elif isinstance(index, IndexResult):
                self.mask_cache = MaskCache(result, path=mask_cache, patch_size=patch_size)
            else:
                self.mask_cache = MaskCache(
                    index, root=root, path=mask_cache, patch_size=patch_size
                )

    def _nothing_usable(self) -> str:
        s = self.index.summary()
        scope = f"split {self.split!r}" if self.split else "the index"
        # Only the kinds of rows it holds, in words (not every count, nor a Python dict).
        kinds = [
            (s.complete, "complete triplets"), (s.pairs_without_s1, "cloudy/clear pairs without "
            "S1"), (s.pairs_without_target, "S1+cloudy pairs without target"),
            (s.pairs_without_cloudy, "S1+clear pairs without cloudy input"),
        ]  # fmt: skip
        held = ", ".join(f"{n} {what}" for n, what in kinds if n) or "no usable row"
        splits = ", ".join(f"{name} {n}" for name, n in s.by_split.items() if n)
        return (
            f"no patch in {scope} has all of {', '.join(self.kinds)} (the index holds {held}; "
            f"by split: {splits or 'none'})"
        )

    def _fix_hint(self) -> str:
        first = "an index with such patches (check the root and 'cloudfree index' output)"
        more = self.usable_hint()
        return f"{first}; or {more}" if more else first

    def __len__(self) -> int:
        return len(self.rows)

    def _item_id(self, index: int) -> str:
        return self.rows[index].id

    def _patch_size(self, row: IndexRow) -> int:
        if self.patch_size is not None:
            return self.patch_size
        path = self.index.resolve(row, "s2_cloudy")
        meta = read_meta(path)
        if meta.width != meta.height:
            raise DataError(
                path, f"is {meta.height}x{meta.width} pixels", "a square patch (e.g. 256x256)"
            )
        return meta.width

    def _load(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        plan = self.plan(index, self._patch_size(row))
        raw: dict[str, np.ndarray] = {}
        grids: dict[str, tuple[Path, RasterMeta]] = {}
        for kind in self.kinds:
            path = self.index.resolve(row, kind)
            count, dtype = FILE_LAYOUT[kind]
            arr, meta = read_raster(
                path, window=plan.window, expect_count=count, expect_dtypes=(dtype,)
            )
            raw[kind] = arr
            grids[kind] = (path, meta)
        if self.mask_cache is not None:
            pos = self.mask_cache.position(row)
            raw["mask"] = self.mask_cache.window(pos, plan.window)
        ref_path, ref = grids["s2_cloudy"]
        for kind, (path, meta) in grids.items():
            if not meta.same_grid(ref):
                raise DataError(
                    path,
                    f"{kind} is not on the same pixel grid as {ref_path} "
                    f"(CRS {meta.crs} vs {ref.crs}, transform {_coeffs(meta)} vs "
                    f"{_coeffs(ref)}, size {meta.height}x{meta.width} vs "
                    f"{ref.height}x{ref.width})",
                    "S1, cloudy and cloud-free files of a patch covering the same pixels",
                )
        info = {
            "id": row.id,
            "roi_season": row.roi_season,
            "scene": row.scene,
            "patch": row.patch,
            "crs": ref.crs,
            "transform": ref.transform,
            "source": ref_path,
        }
        return make_sample(raw, plan, self.config, info)
