"""Cloud removal of a whole Sentinel-2 scene: GeoTIFF in, georeferenced GeoTIFF out, any size.

How a scene is processed (memory is that of one window, whatever the scene size):

1. The scene is cut into output windows (1024 px by default, aligned with the 512-px blocks of
   the output GeoTIFF, so no compressed block is written twice; or the window one large tile
   covers). Each window is read with a halo of ``overlap // 4 + 1`` pixels (more if a cloud
   mask is needed: its filters need 7); outside the
   scene the halo is filled by reflection (:func:`~cloudfree.predict.tiling.pad_reflect`).
2. The window + halo is cut into overlapping tiles (:mod:`cloudfree.predict.tiling`), the model
   runs on batches of tiles, and the outputs are blended with weights that fall towards the
   tile edges. Every kept pixel comes from tiles in which it lies >= ``overlap // 4`` pixels
   from the edge, so for a model with a receptive-field radius up to that the result equals the
   untiled prediction to float rounding; windows are independent for the same reason.
3. Network values -> DN (``cloudfree.bands`` scaling), optional ``keep_clear`` and
   ``outside_sar="input"`` replacements, rounding and clipping to the input dtype, nodata
   pixels (all bands == nodata) restored, then the window is written.

The output is a tiled (512 px), deflate-compressed GeoTIFF with the input's CRS, transform,
size, dtype and nodata, band descriptions and, up to 4096 x 4096 px, internal overviews
(average; see :data:`OVERVIEW_MAX_PIXELS`), written under a
temporary name and renamed at the end (:func:`cloudfree.io.atomic_path`): an error at any
point leaves no output file.

The cloud/shadow mask (``keep_clear``, ``mask_out``, the inpainting baselines and the hybrid
models) is the DSen2-CR mask of :mod:`cloudfree.masks.csm` computed window by window with the
shadow thresholds of the whole scene (a first pass over B2, B8, B11), exactly as
:func:`cloudfree.masks.scene.mask_scene` does: the written mask equals ``mask_scene``'s. For
L2A input it is computed with the filled B10, so it is not the published mask there. A mask
file (``mask=``) replaces it. Methods that leave some pixels as they are (an inpainting
outside its mask, :meth:`~cloudfree.methods.base.Method.unchanged`) get those pixels copied
from the input file, bit for bit.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.data.sentinel.scene import (
    OUTSIDE_SAR,
    MaskSource,
    S1Source,
    S2Source,
)
from cloudfree.errors import DataError
from cloudfree.io import atomic_path, gdal_cache_env
from cloudfree.methods.base import Method
from cloudfree.predict.tiling import axis_positions, fit_tile
from cloudfree.predict.window import Runner, WindowPredictor, load_runner
from cloudfree.windows import windows

log = logging.getLogger(__name__)

#: Output window sides tried; the one computing the fewest tile pixels per kept pixel wins.
WINDOW_CHOICES: Final[tuple[int, ...]] = (512, 1024)
#: Side of the output GeoTIFF blocks when the window allows it.
BLOCK: Final[int] = 512
#: Overviews are built down to about this size (smallest level >= it).
OVERVIEW_MIN: Final[int] = 256
#: Overviews are built only for scenes up to this many pixels. GDAL builds them by re-reading
#: the compressed, pixel-interleaved output many times (a 10980 x 10980 output: over 46 GB
#: read and still not done after 5 min, for a prediction of 18 min on 2 loaded cores);
#: for larger scenes add them afterwards if needed: ``gdaladdo -r average OUT.tif``.
OVERVIEW_MAX_PIXELS: Final[int] = 4096 * 4096
#: Deflate level of the output: level 1 writes 2.5x faster than the default 6 for a file
#: ~1 % larger on noisy 13-band DN (deflate rather than zstd: every GIS reads it).
DEFLATE_LEVEL: Final[int] = 1


def choose_window(tile: int, overlap: int, halo: int) -> int:
    """Output window side wasting the least compute on tile overlap: one of
    :data:`WINDOW_CHOICES`, or the window that one tile covers with its halo (large tiles)."""

    def cost(w: int) -> float:
        length = w + 2 * halo
        t = fit_tile(length, tile, overlap)
        return len(axis_positions(length, t, overlap)) * t / w

    # Windows under the smallest choice cost more in per-window work (reads, halos) than they
    # save in overlap.
    one_tile = (tile - 2 * halo) // 16 * 16
    choices = WINDOW_CHOICES + ((one_tile,) if one_tile > WINDOW_CHOICES[0] else ())
    return min(choices, key=lambda w: (cost(w), w))


def _device_of(runner: Runner) -> Any:
    import torch

    return getattr(runner.method, "device", None) or torch.device("cpu")


def _block_size(window: int) -> int:
    return next(b for b in (BLOCK, 256, 128, 64, 32, 16) if window % b == 0)


def _release_large_buffers() -> None:
    """Make glibc give every buffer >= 1 MiB back to the OS when it is freed.

    Each window allocates and frees a few hundred MB of arrays. glibc raises its mmap threshold
    after such frees (up to 32 MiB), so later tile-sized arrays come from the heap, which it
    rarely shrinks: peak RSS then grew from 0.61 to 1.08 GB between a 1k and a 4k scene with
    the same windows (identity method). A fixed 1 MiB threshold keeps it flat (0.61 -> 0.76
    GB, the rest being GDAL's block cache) at no measurable cost. Process-wide and harmless; a
    no-op where glibc's ``mallopt`` is unavailable.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        pass


#: glibc's ``mallopt`` parameter number for the mmap threshold (malloc.h).
_M_MMAP_THRESHOLD: Final[int] = -3


def _check_args(
    tile: int, overlap: int, batch_size: int, outside_sar: str, window: int | None
) -> None:
    if outside_sar not in OUTSIDE_SAR:
        raise ValueError(f"outside_sar must be one of {OUTSIDE_SAR}, got {outside_sar!r}")
    if tile < 8:
        raise ValueError(f"tile must be >= 8 pixels, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= overlap < tile, got overlap {overlap}, tile {tile}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if window is not None and (window < 16 or window % 16):
        raise ValueError(f"window must be a multiple of 16 (>= 16), got {window}")


def _overview_factors(height: int, width: int) -> list[int]:
    if height * width > OVERVIEW_MAX_PIXELS:
        return []
    factors, f = [], 2
    while min(height, width) // f >= OVERVIEW_MIN:
        factors.append(f)
        f *= 2
    return factors


def predict_scene(
    s2: str | os.PathLike[str],
    out: str | os.PathLike[str],
    checkpoint: str | Method | None = None,
    s1: str | os.PathLike[str] | None = None,
    *,
    mask: str | os.PathLike[str] | None = None,
    sd_weights: str | None = None,
    checkpoint_nosar: str | None = None,
    outside_sar: str = "nosar",
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    keep_clear: bool = False,
    mask_out: str | os.PathLike[str] | None = None,
    b10: float | None = None,
    progress: bool = True,
    window: int | None = None,
    uncertainty_out: str | os.PathLike[str] | None = None,
    backend: str = "auto",
) -> dict[str, Any]:
    """Predict the cloud-free version of a whole S2 scene and write it as a GeoTIFF.

    Args:
        s2: S2 scene: 13-band L1C or 12-band L2A (warned; B10 filled, see ``b10``), any integer
            or float DN dtype, any size and CRS.
        out: output GeoTIFF: same CRS, transform, size, band count, dtype and nodata as ``s2``;
            DN rounded and clipped to the dtype; nodata pixels stay nodata. Written atomically.
        checkpoint: a weights name (:mod:`cloudfree.weights`), weights file, checkpoint / run
            folder, or a baseline (``"identity"``, ``"mask-fill"``, ...): see
            :func:`cloudfree.methods.load.load_method`; or a ready
            :class:`~cloudfree.methods.base.Method`. None: the bundled weights (with SAR if
            ``s1`` is given, else without).
        s1: optional S1 scene (VV, VH in dB) on any grid overlapping ``s2``; reprojected onto
            the S2 grid when needed. Ignored (logged) by a model without SAR input.
        mask: a cloud/shadow mask GeoTIFF on the S2 grid (0 clear, nonzero cloud or shadow,
            :class:`~cloudfree.data.sentinel.scene.MaskSource`) used instead of the computed
            DSen2-CR mask wherever a mask is needed (``keep_clear``, ``mask_out``, inpainting
            and hybrid methods).
        sd_weights: folder of a Stable Diffusion inpainting pipeline (the
            ``"stable-diffusion"`` baseline, hybrids trained on its inpainting).
        checkpoint_nosar: the no-SAR model for pixels without S1 (``outside_sar="nosar"``, or
            no ``s1`` given to a SAR model); None: the bundled no-SAR weights.
        outside_sar: where S1 is missing: ``"nosar"`` predicts with ``checkpoint_nosar``,
            ``"input"`` keeps the input values. Never filled with zeros.
        tile: largest tile side fed to the model, pixels; overlap: pixels shared by
            neighbouring tiles (its quarter is the trusted-margin of each tile edge).
            None: chosen for the model and the device (:mod:`cloudfree.predict.plan`: the
            overlap from the model's measured edge effect, the tile from the free memory).
        batch_size: tiles per forward pass; None: chosen from the free memory (1 on CPU).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"auto"`` (= fp32, see ``cloudfree.models.runtime``), ``"fp32"``, ``"bf16"``
            (autocast; fast on GPU, slow on most CPUs).
        keep_clear: clear input pixels (mask class 0) keep the input values.
        mask_out: also write the uint8 cloud/shadow mask (0 clear, 1 cloud, 2 shadow) here.
        b10: B10 DN for L2A input (default :data:`~cloudfree.data.sentinel.scene.L2A_B10_FILL_DN`).
        progress: show a tqdm progress bar.
        window: output window side (multiple of 16); None picks 512 or 1024 (least overlap
            work). Memory grows with its square, not with the scene.
        uncertainty_out: also write the model's per-pixel uncertainty here: the predicted
            **standard deviation in reflectance** (sqrt of the variance, same units as
            DN / 10000), float32, one band per output band, on the output's grid; NaN (the
            file's nodata) where the value is not the model's (nodata input, pixels kept from
            the input by ``keep_clear`` or ``outside_sar="input"``, a no-SAR fallback without
            variance). Needs a model that predicts a variance (UnCRtainTS trained with the
            Gaussian NLL loss).
        backend: a model's inference backend: ``"auto"`` (OpenVINO for UnCRtainTS on the CPU
            where installed, else PyTorch), ``"torch"`` or ``"openvino"``
            (:func:`cloudfree.models.runtime.resolve_backend`).

    Returns:
        Summary: ``out``, ``height``, ``width``, ``seconds``, ``mpx_per_s``, ``tiles``,
        ``tile_pixels``, ``window``, ``reprojected``, ``sar_coverage`` (fraction, None without
        S1), ``l2a``, ``b10_fill``, ``method``, ``method_nosar``, ``device``, ``precision``, ``backend``,
        mask fractions if a mask was computed.

    Raises:
        DataError: unreadable or unexpected S2 / S1 (band count, no overlap...), bad weights.
        ValueError: bad arguments, or a SAR checkpoint without ``s1`` and ``outside_sar="input"``.
    """
    import rasterio

    from cloudfree.models.runtime import BACKENDS, resolve_precision

    start = time.perf_counter()
    # What was given is checked now, before any model is loaded; the plan is checked after.
    _check_args(2048 if tile is None else tile, 0 if overlap is None else overlap,
                1 if batch_size is None else batch_size, outside_sar, window)  # fmt: skip
    resolve_precision(precision)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    out = Path(out)
    if checkpoint is None:
        from cloudfree.predict.bundled import default_weights_name

        checkpoint = default_weights_name(include_sar=s1 is not None)
    main = load_runner(checkpoint, device, precision, sd_weights, backend)
    if uncertainty_out is not None:
        if not main.method.predicts_variance:
            raise ValueError(
                f"--uncertainty-out needs a model that predicts a variance; {main.method.name} "
                "does not (UnCRtainTS trained with the Gaussian NLL loss does: the bundled "
                "--checkpoint uncrtaints-demo-sar or uncrtaints-demo-nosar, the uncrtaints_*_nll "
                "presets, or a checkpoint imported with 'cloudfree weights import model.pth.tar "
                "--conf conf.json --name NAME')"
            )
        if Path(uncertainty_out).resolve() in {out.resolve(), *(
            [Path(mask_out).resolve()] if mask_out is not None else [])}:  # fmt: skip
            raise ValueError(
                f"uncertainty_out {uncertainty_out} is also the prediction or mask output; "
                "give it a file name of its own"
            )
    from cloudfree.predict.plan import plan_tiles

    plan = plan_tiles(main.method, _device_of(main), resolve_precision(precision), tile,
                      overlap, batch_size)  # fmt: skip
    tile, overlap, batch_size = plan.tile, plan.overlap, plan.batch
    _check_args(tile, overlap, batch_size, outside_sar, window)
    log.info("tiling: %s", plan.reason)
    _release_large_buffers()
    with rasterio.Env(**gdal_cache_env()):
        return _predict(
            s2,
            out,
            main,
            s1,
            checkpoint_nosar,
            outside_sar,
            tile,
            overlap,
            batch_size,
            device,
            precision,
            keep_clear,
            mask_out,
            b10,
            progress,
            window,
            start,
            mask,
            sd_weights,
            uncertainty_out,
            backend=backend,
        )


def _weights_path(runner: Runner) -> str | None:
    path = getattr(runner.method, "path", None)
    return None if path is None else str(Path(path).resolve())


def _predict(
    s2: str | os.PathLike[str],
    out: Path,
    main: Runner,
    s1: str | os.PathLike[str] | None,
    checkpoint_nosar: str | None,
    outside_sar: str,
    tile: int,
    overlap: int,
    batch_size: int,
    device: str,
    precision: str,
    keep_clear: bool,
    mask_out: str | os.PathLike[str] | None,
    b10: float | None,
    progress: bool,
    window: int | None,
    start: float,
    mask: str | os.PathLike[str] | None = None,
    sd_weights: str | None = None,
    uncertainty_out: str | os.PathLike[str] | None = None,
    backend: str = "auto",
) -> dict[str, Any]:
    """The body of :func:`predict_scene` once the model is loaded (same arguments)."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window as RioWindow
    from tqdm.auto import tqdm

    from cloudfree.models.runtime import resolve_precision

    src = S2Source(s2, b10=b10)
    s1src: S1Source | None = None
    mask_src: MaskSource | None = None
    try:
        if mask is not None:
            mask_src = MaskSource(mask, src.meta)
        if s1 is not None:
            if main.method.include_sar:
                s1src = S1Source(s1, src.meta)
            else:
                log.info("%s takes no S1: %s is not used", main.method.name, s1)
        elif main.method.include_sar:
            if outside_sar == "input":
                raise ValueError(
                    f"{main.method.name} takes S1 but no s1 was given; give --s1, a no-SAR "
                    "checkpoint, or outside_sar='nosar' (predicts everything without SAR)"
                )
            log.warning("no S1 given: the whole scene is predicted with the no-SAR model")
        # Every batch a method sees carries the scene mask (cloudfree.masks.patch.batch_mask):
        # computed when a method reads it, which the no-SAR fallback (e.g. hybrid-nosar) may.
        may_use_nosar = main.method.include_sar and outside_sar == "nosar"
        need_mask = (
            keep_clear
            or mask_out is not None
            or main.method.needs_mask
            or mask_src is not None
            or may_use_nosar
        )
        sp = WindowPredictor(
            src,
            s1src,
            main,
            checkpoint_nosar,
            device,
            precision,
            outside_sar,
            tile,
            overlap,
            batch_size,
            keep_clear,
            need_mask,
            mask_src,
            sd_weights,
            uncertainty=uncertainty_out is not None,
            backend=backend,
        )
        win_size = window or choose_window(tile, overlap, sp.halo)
        if need_mask and mask_src is None:
            sp.scene_thresholds(win_size)
        meta = src.meta
        block = _block_size(win_size)
        is_int = np.issubdtype(np.dtype(meta.dtype), np.integer)
        profile = meta.profile(
            tiled=True,
            blockxsize=block,
            blockysize=block,
            compress="deflate",
            zlevel=DEFLATE_LEVEL,
            predictor=2 if is_int else 3,
            interleave="pixel",
            BIGTIFF="IF_SAFER",
        )
        mask_profile = meta.profile(
            count=1,
            dtype="uint8",
            nodata=None,
            tiled=True,
            blockxsize=block,
            blockysize=block,
            compress="deflate",
        )
        std_profile = meta.profile(
            dtype="float32",
            nodata=float("nan"),
            tiled=True,
            blockxsize=block,
            blockysize=block,
            compress="deflate",
            zlevel=DEFLATE_LEVEL,
            predictor=3,
            interleave="pixel",
            BIGTIFF="IF_SAFER",
        )
        h, w = meta.height, meta.width
        with (
            atomic_path(out) as tmp,
            _maybe_atomic(mask_out) as mask_tmp,
            _maybe_atomic(uncertainty_out) as std_tmp,
            rasterio.open(tmp, "w", **profile) as dst,
        ):
            mdst = rasterio.open(mask_tmp, "w", **mask_profile) if mask_tmp else None
            udst = rasterio.open(std_tmp, "w", **std_profile) if std_tmp else None
            try:
                bar = tqdm(
                    total=h * w,
                    unit="px",
                    unit_scale=True,
                    disable=not progress,
                    desc=f"predict {Path(s2).name}",
                )
                with bar:
                    for win in windows(h, w, win_size):
                        values, wmask, std = sp.window(win)
                        r, c, wh, ww = win
                        dst.write(values, window=RioWindow(c, r, ww, wh))
                        if mdst is not None and wmask is not None:
                            mdst.write(wmask, 1, window=RioWindow(c, r, ww, wh))
                        if udst is not None and std is not None:
                            udst.write(std, window=RioWindow(c, r, ww, wh))
                        bar.update(wh * ww)
                if mdst is not None:
                    backend = "dsen2cr" if mask_src is None else f"file {mask}"
                    mdst.set_band_description(1, f"{backend} mask: 0 clear, 1 cloud, 2 shadow")
                    mdst.update_tags(backend=backend, classes="0=clear,1=cloud,2=shadow")
                if udst is not None:
                    for i, name in enumerate(src.bands, start=1):
                        udst.set_band_description(i, f"{name} std")
                    udst.update_tags(
                        software="cloudfree predict",
                        method=main.method.name,
                        source=str(s2),
                        quantity="predicted standard deviation (sqrt of the variance)",
                        units="reflectance (DN / 10000)",
                    )
            finally:
                if mdst is not None:
                    mdst.close()
                if udst is not None:
                    udst.close()
            for i, name in enumerate(src.bands, start=1):
                dst.set_band_description(i, name)
            dst.update_tags(software="cloudfree predict", method=main.method.name, source=str(s2))
            factors = _overview_factors(h, w)
            if factors:
                dst.build_overviews(factors, Resampling.average)
    except rasterio.errors.RasterioError as e:
        raise DataError(s2, f"reading the inputs or writing {out} failed: {e}") from e
    finally:
        src.close()
        if s1src is not None:
            s1src.close()
        if mask_src is not None:
            mask_src.close()

    seconds = time.perf_counter() - start
    summary: dict[str, Any] = {
        "out": str(out),
        "height": h,
        "width": w,
        "seconds": seconds,
        "mpx_per_s": h * w / 1e6 / seconds,
        **sp.counts,
        "window": win_size,
        "reprojected": bool(s1src is not None and s1src.reprojected),
        "sar_coverage": sp.covered / (h * w) if sp.sar else None,
        "l2a": src.l2a,
        "b10_fill": src.b10_fill,
        "method": main.method.name,
        "method_nosar": None if sp._nosar is None else sp._nosar.method.name,
        # The short names above are for tables; these are the files used (None: a baseline).
        "weights": _weights_path(main),
        "weights_nosar": None if sp._nosar is None else _weights_path(sp._nosar),
        "device": str(getattr(main.method, "device", "cpu")),
        "precision": resolve_precision(precision),
        "backend": getattr(main.method, "backend", None),
        "tile": tile,
        "overlap": overlap,
        "batch_size": batch_size,
    }
    if uncertainty_out is not None:
        summary["uncertainty_out"] = str(uncertainty_out)
    if need_mask:
        n = h * w
        summary.update(
            cloud_fraction=float(sp.mask_counts[1]) / n,
            shadow_fraction=float(sp.mask_counts[2]) / n,
            clear_fraction=float(sp.mask_counts[0]) / n,
            mask_out=None if mask_out is None else str(mask_out),
            mask_source="dsen2cr" if mask is None else str(mask),
        )
    return summary


class _maybe_atomic:
    """``atomic_path(path)`` when a path is given, else a context yielding None."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self._cm = None if path is None else atomic_path(path)

    def __enter__(self) -> Path | None:
        return None if self._cm is None else self._cm.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return None if self._cm is None else self._cm.__exit__(*exc)
