"""Datasets and loaders of a training run, built from ``Config.data`` (issue 4).

The training split is sampled as in the paper (spec section 2: random ``crop_size`` crops with
flips / rot90, redrawn every epoch); the validation split is read as whole patches without
augmentation (``SampleConfig(mode="eval", crop_size=None)``). When the loss is CARL the cloud
mask is needed: by default it is computed on each augmented crop, as the original code does
(``data.mask="crop"``, about a millisecond per crop); ``data.mask="cached"`` computes it once
per patch and caches it (in the packed shards, or in a ``.masks.npy`` beside the index) and
crops that, which differs near crop edges and in the shadow thresholds.

Data sources, the first one set wins: ``data.packed`` (memory-mapped shards of
``cloudfree pack``), ``data.index`` (an index CSV, per-file GeoTIFF reads), ``data.root`` (a
SEN12MS-CR folder, indexed once into ``<cache_dir>/index.csv``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cloudfree.config import Config, DataConfig
from cloudfree.data.collate import collate_skip_bad
from cloudfree.data.dataset import PatchDataset
from cloudfree.data.left_out import LEFT_OUT_REASONS, describe_left_out
from cloudfree.data.sample import SampleConfig
from cloudfree.errors import DataError, DatasetNotFoundError

#: How many index rows are tried to read the patch size from before giving up.
_PROBE_ROWS = 16


def sample_configs(cfg: Config, include_sar: bool) -> tuple[SampleConfig, SampleConfig]:
    """(train, val) sampling of a run.

    Args:
        cfg: the run's config (``data.crop_size``, ``data.scaling``, ``data.mask``,
            ``loss.name``).
        include_sar: whether the model takes S1 (``False`` for ``dsen2cr-nosar``).

    Returns:
        Train: random ``crop_size`` crops with augmentation (spec section 2), with the cloud
        mask when the loss is CARL or the model reads it: computed on each crop as the original
        does (``data.mask="crop"``, the default) or cropped from the cached mask of the whole
        patch (``"cached"``; always for a hybrid, whose cached inpainting was made under it).
        Val: whole patches, no
        augmentation, always with the mask (the recon/reprod metrics need it whatever the
        loss); on whole patches computing it ("crop" mode) gives exactly the cached full-patch
        mask, and needs no cache. A hybrid model gets the pack's cached inpainting of its
        method (``model.inpaint``) in both.
    """
    hybrid = cfg.model.is_hybrid
    # A hybrid's config has data.mask == "cached" (Config checks it).
    needed = cfg.loss.name == "carl" or (hybrid and cfg.model.mask_channel)
    mask = cfg.data.mask if needed else "none"
    inpaint = cfg.model.inpaint if hybrid else None
    train = SampleConfig(
        mode="train",
        crop_size=cfg.data.crop_size,
        include_sar=include_sar,
        scaling=cfg.data.scaling,
        augment=cfg.data.augment,
        mask=mask,
        inpaint=inpaint,
    )
    val = SampleConfig(
        mode="eval",
        crop_size=None,
        include_sar=include_sar,
        scaling=cfg.data.scaling,
        mask="crop",
        inpaint=inpaint,
    )
    return train, val


def _probe_patch_size(index: Path, root: str | None) -> int | None:
    """Side in pixels of the index's patches (read from one cloudy file's header), or None."""
    from cloudfree.data.release.index import read_index
    from cloudfree.io import read_meta

    result = read_index(index, root=root)
    tried = 0
    for row in result.rows:
        if not row.has("s2_cloudy"):
            continue
        try:
            meta = read_meta(result.resolve(row, "s2_cloudy"))
        except DataError:
            tried += 1
            if tried >= _PROBE_ROWS:
                break
            continue
        if meta.width == meta.height:
            return int(meta.width)
        return None  # not square: let the dataset read (and check) every file's header
    return None


def resolve_index(data: DataConfig, cache_dir: str | Path) -> Path | None:
    """The index CSV of a per-file run: ``data.index``, or ``data.root`` indexed once.

    Indexing a root writes ``<cache_dir>/index.csv`` (reused when it exists), so the CARL mask
    cache has a place beside it. Call on one process first (rank 0), then on the others.

    Returns:
        The index path, or None for a packed run.

    Raises:
        ValueError: none of ``data.packed``, ``data.index``, ``data.root`` is set.
    """
    if data.packed:
        return None
    if data.index:
        return Path(data.index)
    if data.root:
        from cloudfree.data.release.discover import build_index
        from cloudfree.data.release.index import write_index

        path = Path(cache_dir) / "index.csv"
        if not path.is_file():
            write_index(build_index(data.root), path)
        return path
    raise ValueError(
        "config data: no training data given; set one of data.packed=DIR (cloudfree pack), "
        "data.index=CSV (cloudfree index) or data.root=DIR (a SEN12MS-CR folder)"
    )


def build_dataset(
    data: DataConfig, split: str, sample: SampleConfig, seed: int, cache_dir: str | Path
) -> PatchDataset:
    """One split of the configured data source (see the module docstring).

    Raises:
        DatasetNotFoundError: the split holds no usable patch for this sampling.
        DataError: a missing or malformed index / pack.
    """
    index = resolve_index(data, cache_dir)
    if index is None:
        from cloudfree.data.packed.dataset import PackedDataset

        return PackedDataset(data.packed, split=split, config=sample, seed=seed, strict=data.strict)  # type: ignore[arg-type]
    from cloudfree.data.release.dataset import SEN12MSCR

    root = None if data.index is None else data.root
    return SEN12MSCR(
        index,
        root=root,
        split=split,
        config=sample,
        strict=data.strict,
        seed=seed,
        patch_size=_probe_patch_size(index, root),
    )


def build_series_datasets(cfg: Config, include_sar: bool) -> tuple[Any, Any | None]:
    """(train, val) SEN12MS-CR-TS datasets of a temporal run (``data.input_t`` > 1), from its
    index (``data.index``) or its pack (``data.packed``): the
    training split's dates drawn anew each epoch (upstream's ``random`` sampler, seeded by
    ``train.seed``), validation's fixed; the coverage that picks them computed once on the rank
    that runs first and cached beside the index (``data.coverage``).

    Raises:
        DataError: neither ``data.packed`` nor ``data.index`` is a SEN12MS-CR-TS pack / index.
        DatasetNotFoundError: no complete series in the training split.
    """
    from cloudfree.data.source import series_kind
    from cloudfree.data.timeseries.coverage import compute_coverage, coverage_cache_path
    from cloudfree.data.timeseries.dataset import SeriesDataset
    from cloudfree.data.timeseries.index import read_ts_index, ts_index_root
    from cloudfree.data.timeseries.pack import PackedSeries

    data = cfg.data
    packed = None
    if data.packed is not None and series_kind(data.packed) == "packed":
        packed = PackedSeries(data.packed)
    elif data.packed is not None or data.index is None or series_kind(data.index) != "index":
        raise DataError(
            data.packed or data.index or data.root,
            f"is not a SEN12MS-CR-TS index or pack, which a temporal model (data.input_t="
            f"{data.input_t}) trains on",
            "data.index=ts.csv ('cloudfree index ROOT --out ts.csv' on a SEN12MS-CR-TS copy) or "
            "data.packed=DIR ('cloudfree pack ts.csv --out DIR')",
        )
    if packed is not None:
        rows, root = packed.rows, packed.root
        coverage = packed.coverage(data.coverage, progress=True)
    else:
        assert data.index is not None
        rows, root = read_ts_index(data.index), ts_index_root(data.index)
        wanted = {data.train_split, data.val_split}
        s2 = [r["s2"] for r in rows if r["s2"] and r["split"] in wanted]
        coverage = compute_coverage(root, s2, coverage_cache_path(data.index, data.coverage),
                                    data.coverage, progress=True)  # fmt: skip
    masker = data.coverage if cfg.loss.name == "carl" else None
    common = dict(root=root, rows=rows, coverage=coverage, n_input=data.input_t,
                  include_sar=include_sar, scaling=data.scaling,
                  reader=None if packed is None else packed.read)  # fmt: skip
    train = SeriesDataset(split=data.train_split, sampler="random", seed=cfg.train.seed,
                          masker=masker, **common)  # type: ignore[arg-type]  # fmt: skip
    if len(train) == 0:
        raise DatasetNotFoundError(
            data.index, f"has no complete series in split {data.train_split!r} "
            f"({describe_left_out(0, train.left_out) or 'none in the index'})",
        )  # fmt: skip
    # validation always gets the masks: its recon / reprod metrics need them
    val = SeriesDataset(split=data.val_split, masker=data.coverage, **common)  # type: ignore[arg-type]
    if len(val) == 0:
        warnings.warn(f"no validation series (split {data.val_split!r}); training continues "
                      "without validation", stacklevel=2)  # fmt: skip
        return train, None
    return train, val


def build_datasets(cfg: Config, include_sar: bool, cache_dir: str | Path) -> tuple[Any, Any | None]:
    """(train, val) datasets of a run (:class:`PatchDataset`, or SEN12MS-CR-TS
    :class:`~cloudfree.data.timeseries.dataset.SeriesDataset` for ``data.input_t`` > 1); val is
    None (with a warning) when that split is empty.

    Args:
        cfg: the run's config.
        include_sar: whether the model takes S1.
        cache_dir: where an index built from ``data.root`` is kept (the run folder).
    """
    if cfg.data.input_t > 1:
        train, val = build_series_datasets(cfg, include_sar)
    else:
        train, val = _patch_datasets(cfg, include_sar, cache_dir)
    for name, ds in (("training", train), ("validation", val)):
        if ds is None or not ds.left_out:
            continue
        left = describe_left_out(len(ds), ds.left_out)
        hint = ""
        if LEFT_OUT_REASONS["s1"] in ds.left_out:
            hint = (
                f" A no-SAR model (model.name={nosar_name(cfg.model.name)}) can use the "
                "patches without S1"
            )
        warnings.warn(f"{name} uses {len(ds)} patches: {left}.{hint}", stacklevel=2)
    return train, val


def _patch_datasets(
    cfg: Config, include_sar: bool, cache_dir: str | Path
) -> tuple[PatchDataset, PatchDataset | None]:
    """(train, val) of one-date patches (SEN12MS-CR: packed, indexed or a root)."""
    train_sample, val_sample = sample_configs(cfg, include_sar)
    seed = cfg.train.seed
    train = build_dataset(cfg.data, cfg.data.train_split, train_sample, seed, cache_dir)
    side = _patch_side(train)
    if side is not None and cfg.data.crop_size > side:
        raise ValueError(
            f"config data.crop_size {cfg.data.crop_size} is larger than the training patches "
            f"({side} x {side} px); set data.crop_size={side} or less"
        )
    try:
        val: PatchDataset | None = build_dataset(
            cfg.data, cfg.data.val_split, val_sample, seed, cache_dir
        )
    except DatasetNotFoundError as e:
        where = f"{e.path}: " if e.path else ""
        warnings.warn(  # what was wrong, not the whole list of layouts the error explains
            f"no validation data (split {cfg.data.val_split!r}: {where}{e.problem}); training "
            "continues without validation. Set data.val_split to a split that has patches to "
            "validate at each epoch end",
            stacklevel=2,
        )
        val = None
    return train, val


def _patch_side(ds: Any) -> int | None:
    """The side of a dataset's square patches, px, where it is known without reading them."""
    size = getattr(ds, "patch_size", None)
    if size is None and isinstance(getattr(ds, "manifest", None), dict):
        h, w = ds.manifest.get("patch_shape") or (None, None)
        size = h if h == w else None
    return None if size is None else int(size)


def nosar_name(model: str) -> str:
    """The registered no-SAR variant of a model name (``dsen2cr`` -> ``dsen2cr-nosar``), or the
    generic ``<name>-nosar`` pattern when it has none."""
    from cloudfree.models import list_models

    name = model if model.endswith("-nosar") else f"{model}-nosar"
    return name if name in list_models() else "<model>-nosar"


def build_loader(
    dataset: Dataset, sampler: Sampler[int], batch_size: int, num_workers: int, device: torch.device
) -> DataLoader:
    """A DataLoader over ``sampler`` that skips (and counts) bad patches.

    ``persistent_workers`` stays off so that each epoch's workers get a fresh copy of the
    dataset and see its ``set_epoch`` (new random crops every epoch, spec section 2).
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_skip_bad,
        pin_memory=device.type == "cuda",
        drop_last=False,
        persistent_workers=False,
    )
