"""The inpainted cloudy images of a pack, computed once per patch and cached in the shards.

The hybrid model (:mod:`cloudfree.models.hybrid`) takes the cloudy image inpainted
(:mod:`cloudfree.inpaint`) as input. Inpainting is far too slow to redo every epoch (Telea:
~0.35 s per 256 x 256 patch on one core, Stable Diffusion seconds on a GPU), so it is computed
once per patch, on the full cloudy patch with its cached cloud/shadow mask, exactly as the
hybrid's chain does at evaluation (:class:`cloudfree.methods.hybrid.HybridMethod`), and stored
next to the other arrays of each shard::

    shard-00000.inpaint-mask-fill.npy   uint16 (N, 13, H, W)  the cloudy S2 inpainted, DN

Training crops and augments it exactly like the images (``SampleConfig(inpaint="mask-fill")``).
The manifest records how each method's arrays were made (``"inpaint": {"mask-fill": {"method",
"options", "mask", ...}}``) and each shard entry whether its file is complete
(``"inpaint": {"mask-fill": true}``): a shard's file is written under a temporary name, fsynced
and renamed before its entry is set and the manifest rewritten atomically, so an interrupted
run is simply run again and goes on with the next shard. Asking for the same method with other
options recomputes every shard (with a warning): one pack holds one version per method.

``cloudfree pack INDEX --out DIR --inpaint METHOD`` packs (or resumes) and then runs
:func:`fill_inpainting`.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.bands import NUM_S2_BANDS
from cloudfree.data.packed.shards import MANIFEST, MASK_NOT_COMPUTED, read_manifest, read_patches
from cloudfree.errors import DataError
from cloudfree.locks import holds_folder
from cloudfree.masks.patch import MASK_ALGORITHM
from cloudfree.workers import process_pool

#: Patches inpainted per task (bounded memory, progress granularity).
_CHUNK = 8


def inpaint_file(shard_name: str, method: str) -> str:
    """File name of a shard's inpainted array for ``method``."""
    return f"{shard_name}.inpaint-{method}.npy"


def inpaint_record(method: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a pack's inpainted arrays are: the method, its options and the mask they fill."""
    return {
        "method": method,
        "options": json.loads(json.dumps(dict(options or {}), sort_keys=True, default=str)),
        "mask": MASK_ALGORITHM,
        "dtype": "uint16",
        "units": "L1C TOA reflectance x 10000 (the cloudy S2, inpainted)",
    }


def inpaint_complete(manifest: Mapping[str, Any], method: str) -> bool:
    """Whether every shard of a pack holds the inpainted array of ``method``."""
    shards = manifest.get("shards", [])
    return (
        method in manifest.get("inpaint", {})
        and bool(shards)
        and all(e.get("inpaint", {}).get(method) is True for e in shards)
    )


def _work(
    tmp: str, cloudy_path: str, mask_path: str, s1_path: str | None, offsets: list[int],
    inpainter: Any,
) -> int:  # fmt: skip
    """Inpaint some slots of one shard into its temporary array (a worker task)."""
    out = np.load(tmp, mmap_mode="r+")
    cloudy = np.load(cloudy_path, mmap_mode="r")
    masks = np.load(mask_path, mmap_mode="r")
    s1 = None if s1_path is None else np.load(s1_path, mmap_mode="r")
    for start in range(0, len(offsets), _CHUNK):
        sel = offsets[start : start + _CHUNK]
        s1b = None if s1 is None else np.asarray(s1[sel])
        out[sel] = inpainter(np.asarray(cloudy[sel]), np.asarray(masks[sel]), s1b)
    out.flush()
    return len(offsets)


@holds_folder("pack --inpaint")
def fill_inpainting(
    packed_dir: str | os.PathLike[str],
    method: str = "mask-fill",
    options: Mapping[str, Any] | None = None,
    workers: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Compute the inpainted cloudy image of every patch of a complete pack (module docstring).

    Args:
        packed_dir: a complete pack (its cloud masks are computed first if it has none).
        method: an inpainting method of :mod:`cloudfree.inpaint`.
        options: the method's options (e.g. ``{"weights": "sd/", "steps": 20}``).
        workers: processes; 0 inpaints in this process (Stable Diffusion always does).
        progress: show a tqdm progress bar.

    Returns:
        The updated manifest; its ``"inpaint_timing"[method]`` holds the patches inpainted by
        the call that computed them and their mean seconds.

    Raises:
        DataError: not a complete pack; ``sar-match`` while a cloudy patch has no S1.
        ValueError: unknown method or option.
    """
    from tqdm.auto import tqdm

    from cloudfree.data.packed.manifest import fill_masks, write_json
    from cloudfree.inpaint.registry import get_inpainter
    from cloudfree.io import atomic_path, fsync_path

    out = Path(packed_dir)
    manifest = read_manifest(out)
    inpainter = get_inpainter(method, **dict(options or {}))
    if manifest.get("mask") is None:
        manifest = fill_masks(out)  # the inpainting fills the cached cloud/shadow mask
    record = inpaint_record(method, options)
    old = manifest.get("inpaint", {}).get(method)
    if old is not None and old != record:
        warnings.warn(
            f"{out} holds {method} inpainting made with other settings ({old.get('options')}); "
            f"recomputing it with {record['options']}",
            stacklevel=2,
        )
        for entry in manifest["shards"]:
            entry.get("inpaint", {}).pop(method, None)
    manifest.setdefault("inpaint", {})[method] = record
    write_json(out / MANIFEST, manifest)

    by_shard: dict[int, list[int]] = {}
    for p in read_patches(out):
        if not p.has_s2_cloudy:
            continue
        if inpainter.needs_sar and not p.has_s1:
            raise DataError(
                out,
                f"patch {p.id} has no S1 but the {method!r} inpainting needs it",
                "a pack of complete triplets: cloudfree pack INDEX --out DIR --require "
                "s1,s2,s2_cloudy",
            )
        by_shard.setdefault(p.shard, []).append(p.offset)
    todo = [i for i, e in enumerate(manifest["shards"]) if not e.get("inpaint", {}).get(method)]
    total = sum(len(by_shard.get(i, [])) for i in todo)
    done, t0 = 0, time.perf_counter()
    use_pool = workers > 0 and method != "stable-diffusion"
    pool = process_pool(workers) if use_pool else None
    h, w = manifest["patch_shape"]
    try:
        with tqdm(total=total, unit="patch", desc=f"inpaint {method}", disable=not progress) as bar:
            for i in todo:
                entry = manifest["shards"][i]
                files = entry["files"]
                offsets = sorted(by_shard.get(i, []))
                _check_masks(out / files["mask"], offsets)
                fname = inpaint_file(entry["name"], method)
                with atomic_path(out / fname) as tmp:
                    shape = (entry["num_slots"], NUM_S2_BANDS, h, w)
                    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint16, shape=shape)
                    del mm  # zeros (file holes) for slots without a cloudy patch
                    args = (
                        str(tmp),
                        str(out / files["s2_cloudy"]),
                        str(out / files["mask"]),
                        str(out / files["s1"]) if inpainter.needs_sar else None,
                    )
                    chunks = [
                        offsets[j : j + 4 * _CHUNK] for j in range(0, len(offsets), 4 * _CHUNK)
                    ]
                    if pool is None:
                        for c in chunks:
                            bar.update(_work(*args, c, inpainter))
                    else:
                        futures = [pool.submit(_work, *args, c, inpainter) for c in chunks]
                        for fut in cf.as_completed(futures):
                            bar.update(fut.result())
                    fsync_path(tmp)
                done += len(offsets)
                entry.setdefault("inpaint", {})[method] = True
                entry.setdefault("files_inpaint", {})[method] = fname
                write_json(out / MANIFEST, manifest)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    seconds = time.perf_counter() - t0
    if done or method not in manifest.get("inpaint_timing", {}):
        # A call with nothing left to do keeps the timing of the call that did the work.
        manifest.setdefault("inpaint_timing", {})[method] = {
            "patches": done,
            "seconds": seconds,
            "seconds_per_patch": seconds / done if done else None,
            "workers": workers if use_pool else 0,
        }
    write_json(out / MANIFEST, manifest)
    return manifest


def _check_masks(path: Path, offsets: list[int]) -> None:
    masks = np.load(path, mmap_mode="r")
    for j in range(0, len(offsets), 256):
        sel = offsets[j : j + 256]
        if (np.asarray(masks[sel]) == MASK_NOT_COMPUTED).any():
            raise DataError(
                path,
                "holds patches without a computed cloud mask",
                "a pack with masks: run the same 'cloudfree pack' command without --no-mask",
            )
