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
size, dtype and nodata, band descriptions and overviews (averaged while each window is in
memory: :mod:`cloudfree.overviews`), in GDAL's COG layout, written under a temporary name
and renamed at the end (:func:`cloudfree.io.atomic_path`): an error at any point leaves no
output file.

The cloud/shadow mask (``keep_clear``, ``mask_out``, the inpainting baselines and the hybrid
models) is computed by the masker ``mask_backend`` (:mod:`cloudfree.masks.backends`: by
default ukis-csmask's CNN where installed, else the DSen2-CR mask) on its own fixed grid of
blocks and grown by ``dilate``, exactly as :func:`cloudfree.masks.scene.mask_scene` does: the
written mask equals ``mask_scene``'s, and ``mask_out`` is the mask that was used, growth
included. The DSen2-CR mask of L2A input is computed with the filled B10, so it is not the
published mask there. A mask file (``mask=``) replaces the computed mask (grown only when
``dilate`` is given). Methods that leave some pixels as they are (an inpainting outside its
mask, :meth:`~cloudfree.methods.base.Method.unchanged`) get those pixels copied from the input
file, bit for bit. A scene that is almost all clear or almost all cloud gets a warning
(:func:`cloudfree.masks.report.mask_warnings`), logged and in the summary.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.data.sentinel.scene import MaskSource, S1Source, S2Source
from cloudfree.errors import DataError, root_reason
from cloudfree.io import DEFLATE_LEVEL, atomic_path, gdal_cache_env, mask_to_cog
from cloudfree.masks.computed import SceneMask
from cloudfree.methods.base import Method
from cloudfree.overviews import OverviewLevels
from cloudfree.predict.options import PredictOptions, SceneFiles, check_tiling
from cloudfree.predict.plan import TilePlan
from cloudfree.predict.tiling import axis_positions, fit_tile
from cloudfree.predict.window import Runner, WindowPredictor, load_runner
from cloudfree.windows import windows

log = logging.getLogger(__name__)

#: Output window sides tried; the one computing the fewest tile pixels per kept pixel wins.
WINDOW_CHOICES: Final[tuple[int, ...]] = (512, 1024)
#: Side of the output GeoTIFF blocks when the window allows it.
BLOCK: Final[int] = 512


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


def predict_scene(
    s2_cloudy: str | os.PathLike[str],
    out: str | os.PathLike[str],
    checkpoint: str | Method | None = None,
    s1: str | os.PathLike[str] | None = None,
    *,
    mask: str | os.PathLike[str] | None = None,
    sd_weights: str | None = None,
    checkpoint_nosar: str | None = None,
    outside_sar: str | None = None,
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
    mask_backend: str = "auto",
    dilate: str | float | None = None,
) -> dict[str, Any]:
    """Predict the cloud-free version of a whole S2 scene and write it as a GeoTIFF.

    Args:
        s2_cloudy: the cloudy S2 scene (``--s2``): 13-band L1C or 12-band L2A (warned; B10
            filled, see ``b10``), any integer or float DN dtype, any size and CRS.
        out: output GeoTIFF: same CRS, transform, size, band count, dtype and nodata as ``s2_cloudy``;
            DN rounded and clipped to the dtype; nodata pixels stay nodata. Written atomically.
        checkpoint: a weights name (:mod:`cloudfree.weights`), weights file, checkpoint / run
            folder, or a baseline (``"identity"``, ``"mask-fill"``, ...): see
            :func:`cloudfree.methods.load.load_method`; or a ready
            :class:`~cloudfree.methods.base.Method`. None: the bundled weights (with SAR if
            ``s1`` is given, else without).
        s1: optional S1 scene (VV, VH in dB) on any grid overlapping ``s2_cloudy``; reprojected onto
            the S2 grid when needed. Ignored (logged) by a model without SAR input.
        mask: a cloud/shadow mask GeoTIFF on the S2 grid (0 clear, nonzero cloud or shadow,
            :class:`~cloudfree.data.sentinel.scene.MaskSource`) used instead of the computed
            mask wherever a mask is needed (``keep_clear``, ``mask_out``, inpainting and
            hybrid methods).
        sd_weights: folder of a Stable Diffusion inpainting pipeline (the
            ``"stable-diffusion"`` baseline, hybrids trained on its inpainting).
        checkpoint_nosar: the no-SAR model for pixels without S1 (or for the whole scene
            when no ``s1`` is given to a SAR model); None: the no-SAR partner of the SAR
            model's recipe (:func:`cloudfree.predict.bundled.choose_nosar`).
        outside_sar: where S1 is missing: ``"nosar"`` predicts with the no-SAR model
            (``checkpoint_nosar``, the partner, else the bundled demonstration model), blended
            with the SAR model across the edge of the S1 coverage as tiles are
            (:func:`cloudfree.predict.tiling.coverage_weights`: no seam); ``"input"`` keeps the
            input values; None (not chosen): the no-SAR model named or the partner, else an
            error. Never filled with zeros, never a model the user did not choose.
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
        mask_backend: the cloud/shadow masker (:data:`~cloudfree.masks.backends.MASK_BACKENDS`;
            ``"auto"``: ukis where installed, else dsen2cr with a note).
        dilate: growth of the mask, metres (or ``"6px"``); None: the masker's default
            (60 m for ukis, 0 for dsen2cr), and a mask file as it is.

    Returns:
        Summary: ``out``, ``height``, ``width``, ``seconds``, ``mpx_per_s``, ``tiles``,
        ``tile_pixels``, ``window``, ``reprojected``, ``sar_coverage`` (fraction, None without
        S1), ``l2a``, ``b10_fill``, ``method``, ``method_nosar``, ``device``, ``precision``,
        ``backend``, ``changed_fraction`` (of the pixels with data, those whose values
        changed), ``warnings``; where a mask was used, its fractions
        (:func:`~cloudfree.masks.report.mask_fractions`), ``mask_source`` (``"computed"`` or
        the file), ``mask_backend``, ``masker``, ``dilate_m``, ``dilate_px``.

    Raises:
        DataError: unreadable or unexpected S2 / S1 (band count, no overlap...), bad weights.
        ValueError: bad arguments, or a SAR checkpoint without ``s1`` and ``outside_sar="input"``.
    """
    import rasterio

    from cloudfree.models.runtime import resolve_precision
    from cloudfree.predict.plan import plan_tiles

    start = time.perf_counter()
    # What was given is checked now, before any model is loaded; the plan is checked after.
    files = SceneFiles.of(s2_cloudy, out, s1, mask, mask_out, uncertainty_out)
    files.check()
    opts = PredictOptions(
        checkpoint_nosar=checkpoint_nosar, outside_sar=outside_sar, tile=tile, overlap=overlap,
        batch_size=batch_size, window=window, device=device, precision=precision,
        backend=backend, keep_clear=keep_clear, b10=b10, sd_weights=sd_weights,
        progress=progress, mask_backend=mask_backend, dilate=dilate,
    )  # fmt: skip
    opts.check()
    if checkpoint is None:
        from cloudfree.predict.bundled import default_weights_name

        checkpoint = default_weights_name(include_sar=s1 is not None)
    main = load_runner(checkpoint, device, precision, sd_weights, backend)
    if uncertainty_out is not None and not main.method.predicts_variance:
        raise ValueError(
            f"--uncertainty-out needs a model that predicts a variance; {main.method.name} "
            "does not (UnCRtainTS trained with the Gaussian NLL loss does: the bundled "
            "--checkpoint uncrtaints-demo-sar or uncrtaints-demo-nosar, the uncrtaints_*_nll "
            "presets, or a checkpoint imported with 'cloudfree weights import model.pth.tar "
            "--conf conf.json --name NAME')"
        )
    # The inputs are opened (and their values checked) before the plan: measuring a model's
    # edge takes a while.
    src, s1src = _open_sources(files, main, opts)
    try:
        plan = plan_tiles(main.method, _device_of(main), resolve_precision(precision), tile,
                          overlap, batch_size)  # fmt: skip
        check_tiling(plan.tile, plan.overlap, plan.batch)
        log.debug("tiling: %s", plan.reason)  # the summary has the tiling; --debug shows why
        _release_large_buffers()
        with rasterio.Env(**gdal_cache_env()):
            summary = _predict(files, main, opts, plan, src, s1src)
    finally:
        src.close()
        if s1src is not None:
            s1src.close()
    seconds = time.perf_counter() - start
    summary.update(seconds=seconds, mpx_per_s=summary["height"] * summary["width"] / 1e6 / seconds)
    return summary


def _open_sources(
    files: SceneFiles, main: Runner, opts: PredictOptions
) -> tuple[S2Source, S1Source | None]:
    """The S2 scene and, for a model that reads it, the S1 scene, opened (their values checked
    on opening: :func:`cloudfree.units.check_scene`). Without S1, a SAR model's no-SAR model
    for the whole scene is chosen here, before any work (:func:`choose_nosar`)."""
    method = main.method
    src = S2Source(files.s2_cloudy, b10=opts.b10)
    try:
        if files.s1 is not None:
            if method.include_sar:
                return src, S1Source(files.s1, src.meta, files.s2_cloudy)
            log.info("%s takes no S1: %s is not used", method.name, files.s1)
        elif method.include_sar:
            if opts.outside_sar == "input":
                raise ValueError(
                    f"{method.name} takes S1 but no s1 was given; give --s1, a no-SAR "
                    "checkpoint, or outside_sar='nosar' (predicts everything without SAR)"
                )
            from cloudfree.predict.bundled import choose_nosar

            spec = choose_nosar(method.name, opts.checkpoint_nosar, opts.outside_sar,
                                "no --s1 was given")  # fmt: skip
            log.warning("no S1 given: the whole scene is predicted with the no-SAR model %s", spec)
    except Exception:
        src.close()
        raise
    return src, None


def _weights_path(runner: Runner) -> str | None:
    path = getattr(runner.method, "path", None)
    return None if path is None else str(Path(path).resolve())


def _profiles(meta: Any, block: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """GeoTIFF profiles of the prediction, the mask and the standard deviation."""
    is_int = np.issubdtype(np.dtype(meta.dtype), np.integer)
    tiling = {"tiled": True, "blockxsize": block, "blockysize": block, "compress": "deflate"}
    big = {"zlevel": DEFLATE_LEVEL, "interleave": "pixel", "BIGTIFF": "IF_SAFER"}
    values = meta.profile(**tiling, **big, predictor=2 if is_int else 3)
    mask = meta.profile(count=1, dtype="uint8", nodata=None, **tiling)
    std = meta.profile(dtype="float32", nodata=float("nan"), **tiling, **big, predictor=3)
    return values, mask, std


def _predict(
    files: SceneFiles,
    main: Runner,
    opts: PredictOptions,
    plan: TilePlan,
    src: S2Source,
    s1src: S1Source | None,
) -> dict[str, Any]:
    """The body of :func:`predict_scene` once the model is loaded, the sources open and the
    tiling planned: predict window by window, write the outputs; returns the summary without
    the timing. The caller closes the sources."""
    import rasterio
    from tqdm.auto import tqdm

    from cloudfree.models.runtime import resolve_precision

    mask_src: SceneMask | None = None
    mask_info: dict[str, Any] = {}
    method = main.method
    try:
        # Every batch a method sees carries the scene mask (cloudfree.masks.patch.batch_mask):
        # computed when a method reads it, which the no-SAR fallback (e.g. hybrid-nosar) may.
        may_use_nosar = method.include_sar and opts.outside_sar != "input"
        need_mask = (
            opts.keep_clear
            or files.mask_out is not None
            or method.needs_mask
            or files.mask is not None
            or may_use_nosar
        )
        if need_mask:
            mask_src, mask_info = _open_mask(files, src, opts)
        sp = WindowPredictor(
            src, s1src, main, opts, plan, mask_src,
            uncertainty=files.uncertainty_out is not None,
        )  # fmt: skip
        win_size = opts.window or choose_window(plan.tile, plan.overlap, sp.halo)
        meta = src.meta
        profile, mask_profile, std_profile = _profiles(meta, _block_size(win_size))
        h, w = meta.height, meta.width
        # Each output is rewritten in the COG layout once complete, before it is renamed into
        # place, with overviews: those of the values and the std averaged while each window is
        # in memory (cloudfree.overviews), the mask's made by GDAL (cheap for 1 band).
        with contextlib.ExitStack() as stack:
            dst = _open_output(stack, files.out, profile, win_size)
            mdst = udst = None
            if files.mask_out is not None:
                mdst = _open_output(stack, files.mask_out, mask_profile, None)
            if files.uncertainty_out is not None:
                udst = _open_output(stack, files.uncertainty_out, std_profile, win_size)
            bar = tqdm(
                total=h * w,
                unit="px",
                unit_scale=True,
                disable=not opts.progress,
                desc=f"predict {files.s2_cloudy.name}",
            )
            with bar:
                for win in windows(h, w, win_size):
                    values, wmask, std = sp.window(win)
                    dst.write(values, win)
                    if mdst is not None and wmask is not None:
                        mdst.write(wmask[None], win)
                    if udst is not None and std is not None:
                        udst.write(std, win)
                    bar.update(win[2] * win[3])
            if sp.valid == 0:  # raised before the outputs are renamed into place
                raise DataError(
                    files.s2_cloudy,
                    "every pixel is nodata (or 0 in every band, the Sentinel-2 NO_DATA "
                    "value, where the file declares no nodata): there is nothing to predict",
                    "a scene with data",
                )
            if mdst is not None:
                source = mask_info.get("mask_backend") or f"file {files.mask}"
                mdst.ds.set_band_description(1, f"{source} mask: 0 clear, 1 cloud, 2 shadow")
                mdst.ds.update_tags(
                    backend=source,
                    masker=mask_info.get("masker") or f"file {files.mask}",
                    dilate=f"{mask_info.get('dilate_px', 0.0):g} px",
                    classes="0=clear,1=cloud,2=shadow",
                    source=str(files.s2_cloudy.resolve()),
                )
            if udst is not None:
                for i, name in enumerate(src.bands, start=1):
                    udst.ds.set_band_description(i, f"{name} std")
                udst.ds.update_tags(
                    software="cloudfree predict",
                    method=method.name,
                    source=str(files.s2_cloudy.resolve()),
                    quantity="predicted standard deviation (sqrt of the variance)",
                    units="reflectance (DN / 10000)",
                )
            for i, name in enumerate(src.bands, start=1):
                dst.ds.set_band_description(i, name)
            # The input, absolute: the viewer shows a prediction beside it (and its mask).
            dst.ds.update_tags(
                software="cloudfree predict",
                method=method.name,
                source=str(files.s2_cloudy.resolve()),
            )
    except rasterio.errors.RasterioError as e:
        raise DataError(
            files.s2_cloudy, f"reading the inputs or writing {files.out} failed: {root_reason(e)}"
        ) from e
    finally:
        if mask_src is not None:
            mask_src.close()
    changed = sp.changed / sp.valid

    nosar = sp.nosar_runner
    used_nosar = nosar is not None and sp.made_by["nosar"] > 0
    summary: dict[str, Any] = {
        "out": str(files.out),
        "height": h,
        "width": w,
        **sp.counts,
        "window": win_size,
        "reprojected": bool(s1src is not None and s1src.reprojected),
        "sar_coverage": sp.covered / (h * w) if sp.sar else None,
        "l2a": src.l2a,
        "b10_fill": src.b10_fill,
        "method": method.name,
        "method_nosar": nosar.method.name if used_nosar and nosar is not None else None,
        # Which share of the pixels with data each made: method, method_nosar, the input.
        "made_by": {k: v / max(sp.valid, 1) for k, v in sp.made_by.items()},
        # The short names above are for tables; these are the files used (None: a baseline).
        "weights": _weights_path(main),
        "weights_nosar": _weights_path(nosar) if used_nosar and nosar is not None else None,
        "device": str(getattr(method, "device", "cpu")),
        "precision": resolve_precision(opts.precision),
        "backend": getattr(method, "backend", None),
        "tile": plan.tile,
        "overlap": plan.overlap,
        "batch_size": plan.batch,
    }
    if files.uncertainty_out is not None:
        summary["uncertainty_out"] = str(files.uncertainty_out)
    summary["changed_fraction"] = changed
    summary["warnings"] = []
    if need_mask:
        from cloudfree.masks.report import mask_fractions, mask_warnings

        fractions = mask_fractions(sp.mask_counts)
        summary.update(
            **fractions,
            **mask_info,
            mask_out=None if files.mask_out is None else str(files.mask_out),
            mask_source="computed" if files.mask is None else str(files.mask),
        )
        summary["warnings"] = mask_warnings(fractions, changed)
        for text in summary["warnings"]:
            log.warning("%s: %s", files.s2_cloudy.name, text)
    return summary


def _open_mask(
    files: SceneFiles, src: S2Source, opts: PredictOptions
) -> tuple[SceneMask, dict[str, Any]]:
    """The scene's mask and what to report of it: the mask file (grown when ``opts.dilate``
    is given), or the mask computed by ``opts.mask_backend``, as ``cloudfree mask`` makes it."""
    from cloudfree.masks.scene import file_mask_for, scene_mask_for

    if files.mask is not None:
        return file_mask_for(MaskSource(files.mask, src.meta), src.meta, opts.dilate)
    # The reader supplies every band (B10 filled for L2A), so no band is missing here.
    level = "l2a" if src.l2a else "l1c"
    return scene_mask_for(
        opts.mask_backend, src.read_bands, src.meta, level, None, opts.dilate, files.s2_cloudy
    )


class _Output:
    """An output GeoTIFF being written window by window (``ds``), and its overview levels
    (None: the COG driver makes them, as for the mask)."""

    def __init__(self, ds: Any, levels: OverviewLevels | None) -> None:
        self.ds, self.levels = ds, levels

    def write(self, values: np.ndarray, win: tuple[int, int, int, int]) -> None:
        """Write ``values`` (bands, h, w) at ``win = (row, col, h, w)``."""
        from rasterio.windows import Window

        r, c, h, w = win
        self.ds.write(values, window=Window(c, r, w, h))
        if self.levels is not None:
            self.levels.add(values, win)


def _open_output(
    stack: contextlib.ExitStack[Any],
    path: Path,
    profile: dict[str, Any],
    window: int | None,
) -> _Output:
    """Open output ``path`` on ``stack``: staged by
    :func:`~cloudfree.io.atomic_path`, rewritten as a COG at the end, with overviews averaged
    in the pass of ``window``-px windows (a class mask: ``window=None``, GDAL's mode)."""
    import rasterio

    levels = None
    if window is None:
        finish = mask_to_cog
    else:
        levels = stack.enter_context(OverviewLevels(path, profile, window))
        finish = levels.to_cog
    tmp = stack.enter_context(atomic_path(path, finish=finish))
    return _Output(stack.enter_context(rasterio.open(tmp, "w", **profile)), levels)
