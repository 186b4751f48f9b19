"""Several dates of one place into one cloud-free image, window by window (``cloudfree
composite``).

1. The dates (:mod:`cloudfree.predict.series`) are opened; every one must be L1C (13 bands) or
   every one L2A (12 bands). The grid is the target date's input (``target_date``), else the
   oldest input's; inputs on another grid are reprojected onto it (bilinear), no data outside
   their extent; a date that does not overlap the grid at all is refused, naming it.
2. Each date's cloud/shadow mask is the scene masker's (``mask_backend``, grown by ``dilate``:
   the mask ``cloudfree mask`` writes), on its own block grid; pixels without data count as
   masked.
3. Window by window (with ``halo`` pixels of context for the fill), the temporal method
   (:mod:`cloudfree.methods.temporal`) makes the image from the clear observations of each
   pixel, in DN; days are counted from the target date (default: the newest input's).
   With ``checkpoint`` the fill is a model's instead. A one-date model: the statistic is
   written to a staging folder beside the output, then ``predict`` runs the model on it with
   the pixels no date sees clear as its mask and ``keep_clear`` (every other pixel kept bit for
   bit), with the target date's S1 for a SAR model. A temporal model (multi-temporal
   UnCRtainTS): in the same pass, from the dates nearest the target and their S1
   (:mod:`cloudfree.methods.temporal_model`).
4. The output has the grid's CRS, transform and size, the grid input's dtype and band names,
   nodata where no date has data; a second file (``made_out``, int16) says per pixel how it was
   made: the number of clear observations used, 0 the least cloudy date's value (no clear
   date, nothing filled), -1 filled by the one-image method, -2 no data on any date. Both are
   COGs with overviews, written atomically.

Memory: T dates x 13 bands x (window + 2 halo)^2 x 4 bytes, twice (the median's copy): about
0.6 GB for 10 dates with the default 512-px windows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.errors import DataError
from cloudfree.predict.series import Dated

log = logging.getLogger(__name__)

#: ``made`` code where no date has data (output nodata there).
NO_DATA: Final[int] = -2
#: Nodata of the ``made`` file.
MADE_NODATA: Final[int] = -32768


@dataclass(frozen=True)
class CompositeOptions:
    """How ``composite`` works (module docstring)."""

    method: str = "composite"
    target_date: date | None = None
    mask_backend: str = "auto"
    dilate: str | float | None = None
    fill: str = "push-pull"
    window: int = 512
    halo: int = 64
    progress: bool = True
    #: A model (any ``--checkpoint`` of predict) fills what no date sees clear instead of
    #: ``fill``, from the composite and the target date's S1 (``s1``) for a SAR model.
    checkpoint: str | None = None
    s1: str | None = None
    device: str = "auto"
    #: The ``checkpoint`` model's predicted standard deviation where it filled (reflectance,
    #: 13 float32 bands, NaN elsewhere), for a model that predicts a variance.
    uncertainty_out: str | None = None


def composite_scene(
    inputs: list[Dated],
    out: str | os.PathLike[str],
    made_out: str | os.PathLike[str],
    opts: CompositeOptions = CompositeOptions(),  # noqa: B008 (frozen)
) -> dict[str, Any]:
    """Write the composite of ``inputs`` to ``out`` and how each pixel was made to
    ``made_out`` (module docstring). Returns the summary.

    Raises:
        DataError: fewer than 2 dates, L1C mixed with L2A, a target date none of the inputs
            has, unreadable inputs, a date without data over the grid.
        ValueError: an unknown method or fill.
    """
    import rasterio

    from cloudfree.data.sentinel.scene import S2Source
    from cloudfree.io import gdal_cache_env
    from cloudfree.methods.temporal import TemporalMethod

    t0 = time.perf_counter()
    if len(inputs) < 2:
        raise DataError(
            inputs[0].s2 if inputs else None, "is the only date given: a composite needs two "
            "or more", "several dates of one place (for one image: cloudfree predict or inpaint)",
        )  # fmt: skip
    if opts.checkpoint is not None and opts.method != "composite":
        raise ValueError(f"--checkpoint fills what no date sees clear: it goes with --method "
                         f"composite, not {opts.method}")  # fmt: skip
    # With a model, the first pass is the statistic alone; the model fills afterwards.
    name = "median" if opts.checkpoint is not None else opts.method
    method = TemporalMethod(name, scaling="reflectance", fill=opts.fill)
    if method.include_sar:
        raise ValueError(f"--fill {opts.fill} reads S1, which composite does not pass to an "
                         "inpainting method: use a model with the target date's S1 instead "
                         "(--checkpoint MODEL --s1 S1.tif), or --fill push-pull")  # fmt: skip
    target = opts.target_date or inputs[-1].day
    if opts.target_date is not None and all(d.day != target for d in inputs):
        raise DataError(None, f"--target-date {target} is none of the input dates "
                        f"({', '.join(str(d.day) for d in inputs)})", "one of them")  # fmt: skip
    grid_input = next((d for d in inputs if d.day == target), inputs[0])
    with contextlib.ExitStack() as stack, rasterio.Env(**gdal_cache_env()):
        sources = []
        for d in inputs:
            with warnings.catch_warnings():
                # S2Source's note on L2A is about models; L2A dates stay 12 bands here
                warnings.filterwarnings("ignore", message=".*read as Sentinel-2 L2A")
                src = S2Source(d.s2)
            stack.callback(src.close)
            sources.append(src)
        levels = {s.l2a for s in sources}
        if len(levels) > 1:
            l2a = [str(d.s2) for d, s in zip(inputs, sources, strict=True) if s.l2a]
            raise DataError(
                l2a[0], "is L2A (12 bands) among L1C dates (13 bands): a composite of "
                "reflectances of two kinds would be wrong", "dates of one processing level",
            )  # fmt: skip
        grid = sources[inputs.index(grid_input)].meta
        reprojected = [str(d.s2) for d, s in zip(inputs, sources, strict=True)
                       if s.warp_to(grid)]  # fmt: skip
        model = None
        if opts.checkpoint is not None:
            from cloudfree.methods.load import load_method

            model = load_method(opts.checkpoint, opts.device, series=True)
            if getattr(model, "temporal", False) and getattr(model, "model", None) is None:
                raise ValueError(f"--checkpoint {opts.checkpoint} is a temporal method, not a "
                                 f"model: give it as --method {opts.checkpoint}")  # fmt: skip
        if opts.uncertainty_out is not None and not getattr(model, "predicts_variance", False):
            raise ValueError("--uncertainty-out is the standard deviation a model predicts where "
                             "it fills: it needs --checkpoint with a model trained with the "
                             "Gaussian NLL (e.g. uncrtaints-mt-nll, uncrtaints-demo-sar)")  # fmt: skip
        masks, info = _masks(inputs, sources, opts, stack)
        if model is None:
            summary = _run(inputs, sources, masks, grid, method, target, out, made_out, opts)
        elif model.temporal:
            summary = _with_temporal_model(inputs, sources, masks, grid, model, target, out,
                                           made_out, opts, stack)  # fmt: skip
        else:
            s1 = opts.s1 or (str(grid_input.s1) if grid_input.s1 else None)
            summary = _with_model(inputs, sources, masks, grid, method, target, out, made_out,
                                  opts, s1, model)  # fmt: skip
    summary.update({
        "dates": [str(d.day) for d in inputs], "target_date": str(target),
        "grid": str(grid_input.s2), "reprojected": reprojected, "method": opts.method,
        "fill": (opts.checkpoint or opts.fill) if opts.method == "composite" else None, **info,
        "seconds": round(time.perf_counter() - t0, 2),
    })  # fmt: skip
    return summary


def _with_model(
    inputs: list[Dated], sources: list[Any], masks: list[Any], grid: Any, method: Any,
    target: date, out: str | os.PathLike[str], made_out: str | os.PathLike[str],
    opts: CompositeOptions, s1: str | None, model_method: Any,
) -> dict[str, Any]:  # fmt: skip
    """The statistic into a staging folder beside ``out``, then the model (``predict``) fills
    the pixels no date sees clear, keeping every other pixel bit for bit (``keep_clear`` with
    those pixels as the mask); ``made`` marks them filled."""
    import shutil

    import rasterio

    from cloudfree.io import atomic_path, new_part_dir, sweep_parts, to_cog
    from cloudfree.methods.temporal import FILLED, FROM_LEAST_CLOUDY
    from cloudfree.predict.scene import predict_scene
    from cloudfree.windows import windows

    final = Path(out).resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_parts(final.parent, final.name)  # a staging folder of a killed run
    staging = new_part_dir(final)
    try:
        tmp = str(staging)
        stat, made_tmp, holes = Path(tmp) / "statistic.tif", Path(tmp) / "made.tif", \
            Path(tmp) / "holes.tif"  # fmt: skip
        summary = _run(inputs, sources, masks, grid, method, target, stat, made_tmp, opts)
        with rasterio.open(made_tmp) as src:
            prof = dict(src.profile, dtype="uint8", nodata=None)
            with rasterio.open(holes, "w", **prof) as dst:
                for r, c, h, w in windows(src.height, src.width, opts.window):
                    win = rasterio.windows.Window(c, r, w, h)
                    dst.write((src.read(1, window=win) == FROM_LEAST_CLOUDY)[None]
                              .astype("uint8"), window=win)  # fmt: skip
        filled, std = Path(tmp) / "filled.tif", Path(tmp) / "std.tif"
        unc = std if opts.uncertainty_out is not None else None
        model = predict_scene(stat, filled, model_method, s1, mask=holes, keep_clear=True,
                              device=opts.device, progress=opts.progress,
                              uncertainty_out=unc)  # fmt: skip
        # (its COG layout is rebuilt by the copy below)
        with (
            rasterio.open(stat) as src,
            rasterio.open(filled, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst,
        ):
            dst.update_tags(**src.tags(), fill_model=str(model.get("method")))
        with atomic_path(out, finish=to_cog) as part:
            shutil.copyfile(filled, part)
        if opts.uncertainty_out is not None:
            with atomic_path(opts.uncertainty_out, finish=to_cog) as part:
                shutil.copyfile(std, part)
                with rasterio.open(part, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
                    dst.update_tags(software="cloudfree composite", source=str(final))
        with (
            rasterio.open(made_tmp) as src,
            atomic_path(made_out, finish=_made_to_cog) as mtmp,
            rasterio.open(mtmp, "w", **src.profile) as dst,
        ):
            for r, c, h, w in windows(src.height, src.width, opts.window):
                win = rasterio.windows.Window(c, r, w, h)
                m = src.read(1, window=win)
                dst.write(np.where(m == FROM_LEAST_CLOUDY, FILLED, m)[None], window=win)
            dst.update_tags(**src.tags())
            dst.set_band_description(1, src.descriptions[0])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    n = summary["least_cloudy_kept"]
    summary.update(out=str(out), made_out=str(made_out), filled=n, least_cloudy_kept=0.0,
                   model=model.get("method"), s1=s1)  # fmt: skip
    return summary


def _with_temporal_model(
    inputs: list[Dated], sources: list[Any], masks: list[Any], grid: Any, model: Any,
    target: date, out: str | os.PathLike[str], made_out: str | os.PathLike[str],
    opts: CompositeOptions, stack: contextlib.ExitStack,
) -> dict[str, Any]:  # fmt: skip
    """One pass: the median where some date is clear, the temporal network where none is."""
    from cloudfree.data.sentinel.scene import S1Source
    from cloudfree.methods.temporal_model import MIN_TILE, TemporalModelFill

    if min(grid.height, grid.width) < MIN_TILE:
        raise DataError(inputs[0].s2, f"is {grid.height} x {grid.width} px: a temporal model "
                        f"needs {MIN_TILE} x {MIN_TILE} or more", "a larger scene, or --fill")  # fmt: skip
    if opts.s1 is not None:
        raise ValueError("--s1 is the target date's S1 for a one-date model; a temporal model "
                         "reads every date's S1 from a series folder (s1/<YYYY-MM-DD>.tif)")  # fmt: skip
    days = [(d.day - target).days for d in inputs]
    fill = TemporalModelFill(model, days, target, variance=opts.uncertainty_out is not None)
    s1_sources = None
    if fill.include_sar:
        missing = [str(inputs[i].day) for i in fill.chosen if inputs[i].s1 is None]
        if missing:
            raise DataError(
                None, f"the temporal model reads S1 of every date it is given, and the dates "
                f"{', '.join(missing)} have none", "a series folder with s1/<YYYY-MM-DD>.tif "
                "for each of them, or a model without SAR",
            )  # fmt: skip
        s1_sources = {}
        for i in fill.chosen:
            src = S1Source(inputs[i].s1, grid, inputs[i].s2)  # type: ignore[arg-type]
            stack.callback(src.close)
            s1_sources[i] = src
    summary = _run(inputs, sources, masks, grid, fill, target, out, made_out, opts, s1_sources)
    summary.update(model=model.name, model_dates=[str(inputs[i].day) for i in fill.chosen])
    return summary


def _masks(
    inputs: list[Dated], sources: list[Any], opts: CompositeOptions, stack: contextlib.ExitStack
) -> tuple[list[Any], dict[str, Any]]:
    """Each date's mask: its mask file (on the composite's grid), else computed."""
    from cloudfree.data.sentinel.scene import MaskSource
    from cloudfree.masks.scene import file_mask_for, scene_mask_for

    masks: list[Any] = []
    info: dict[str, Any] = {}
    files = 0
    for d, src in zip(inputs, sources, strict=True):
        if d.mask is not None:
            source = MaskSource(d.mask, src.meta)
            stack.callback(source.close)
            masks.append(file_mask_for(source, src.meta, opts.dilate)[0])
            files += 1
            continue
        level = "l2a" if src.l2a else "l1c"
        m, info = scene_mask_for(opts.mask_backend, src.read_bands, src.meta, level, None,
                                 opts.dilate, src.path)  # fmt: skip
        masks.append(m)
    masker = info.get("masker")
    if files:
        given = f"mask files for {files} of {len(inputs)} dates"
        masker = given if masker is None else f"{given}, else {masker}"
    return masks, {"mask_backend": info.get("mask_backend"), "masker": masker}


def _run(
    inputs: list[Dated], sources: list[Any], masks: list[Any], grid: Any, method: Any,
    target: date, out: str | os.PathLike[str], made_out: str | os.PathLike[str],
    opts: CompositeOptions, s1_sources: dict[int, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    import rasterio
    from rasterio.windows import Window as RioWindow
    from tqdm.auto import tqdm

    from cloudfree.io import DEFLATE_LEVEL, atomic_path
    from cloudfree.overviews import OverviewLevels
    from cloudfree.windows import clip_window, grow, windows

    h, w = grid.height, grid.width
    dtype = np.dtype(grid.dtype)
    nodata = grid.nodata if grid.nodata is not None else 0
    days = np.array([(d.day - target).days for d in inputs])
    block = next(b for b in (512, 256, 128, 64, 32, 16) if opts.window % b == 0)
    tiling = {"tiled": True, "blockxsize": block, "blockysize": block, "compress": "deflate",
              "zlevel": DEFLATE_LEVEL, "BIGTIFF": "IF_SAFER"}  # fmt: skip
    profile = grid.profile(count=grid.count, dtype=dtype.name, nodata=nodata, **tiling,
                           predictor=2 if dtype.kind in "iu" else 3, interleave="pixel")  # fmt: skip
    made_profile = grid.profile(count=1, dtype="int16", nodata=MADE_NODATA, **tiling)
    std_profile = grid.profile(count=grid.count, dtype="float32", nodata=float("nan"), **tiling,
                               predictor=3, interleave="pixel")  # fmt: skip
    with_std = bool(getattr(method, "variance", False))
    counts: dict[int, int] = {}
    n_data = 0
    with (
        OverviewLevels(out, profile, opts.window) as levels,
        atomic_path(out, finish=levels.to_cog) as tmp,
        atomic_path(made_out, finish=_made_to_cog) as mtmp,
        rasterio.open(tmp, "w", **profile) as dst,
        rasterio.open(mtmp, "w", **made_profile) as mdst,
        contextlib.ExitStack() as extra,
    ):
        udst = None
        if with_std:
            from cloudfree.predict.scene import _open_output

            assert opts.uncertainty_out is not None
            udst = _open_output(extra, Path(opts.uncertainty_out), std_profile, opts.window)
        bar = tqdm(total=h * w, unit="px", unit_scale=True, disable=not opts.progress,
                   desc="composite")  # fmt: skip
        with bar:
            for win in windows(h, w, opts.window):
                region = clip_window(grow(win, opts.halo), h, w)
                img, made, std = _window(sources, masks, region, days, method, s1_sources,
                                         (h, w))  # fmt: skip
                r0, c0 = win[0] - region[0], win[1] - region[1]
                img = img[:, r0 : r0 + win[2], c0 : c0 + win[3]]
                made = made[r0 : r0 + win[2], c0 : c0 + win[3]]
                values = _to_dtype(img[_file_bands(sources[0])], dtype, made, nodata)
                rw = RioWindow(win[1], win[0], win[3], win[2])
                dst.write(values, window=rw)
                if udst is not None and std is not None:
                    std = std[_file_bands(sources[0]), r0 : r0 + win[2], c0 : c0 + win[3]]
                    udst.write(np.ascontiguousarray(std, np.float32), win)
                levels.add(values, win)
                mdst.write(np.where(made == NO_DATA, MADE_NODATA, made)[None].astype(np.int16),
                           window=rw)  # fmt: skip
                for code, n in zip(*np.unique(made, return_counts=True), strict=True):
                    counts[int(code)] = counts.get(int(code), 0) + int(n)
                n_data += int((made != NO_DATA).sum())
                bar.update(win[2] * win[3])
        if n_data == 0:
            raise DataError(None, "no input date has data anywhere on the grid",
                            "dates that overlap the first (or target) date's scene")  # fmt: skip
        for i, name in enumerate(sources[0].bands, start=1):
            dst.set_band_description(i, name)
        dst.update_tags(software="cloudfree composite", method=opts.method,
                        dates=",".join(str(d.day) for d in inputs), target_date=str(target))  # fmt: skip
        mdst.set_band_description(1, "clear observations used; 0 no clear date (the least "
                                     "cloudy date's value; mosaic: its neutral value), "
                                     "-1 filled, -2 no data")  # fmt: skip
        mdst.update_tags(software="cloudfree composite", source=str(Path(out).resolve()))
        if udst is not None:
            for i, name in enumerate(sources[0].bands, start=1):
                udst.ds.set_band_description(i, f"{name} std")
            udst.ds.update_tags(
                software="cloudfree composite", source=str(Path(out).resolve()),
                quantity="predicted standard deviation (sqrt of the variance) where the model "
                "filled; NaN elsewhere", units="reflectance (DN / 10000)",
            )  # fmt: skip
    share = {k: v / max(n_data, 1) for k, v in counts.items() if k != NO_DATA}
    return {
        "out": str(out), "made_out": str(made_out), "height": h, "width": w,
        "filled": share.get(-1, 0.0), "least_cloudy_kept": share.get(0, 0.0),
        "clear_observations": {str(k): v for k, v in sorted(share.items()) if k > 0},
        "no_data": counts.get(NO_DATA, 0) / (h * w),
    }  # fmt: skip


def _made_to_cog(tmp: Path, final: Path) -> None:
    """The ``made`` file as a COG, its overviews by nearest neighbour (codes, not values)."""
    from cloudfree.io import to_cog

    to_cog(tmp, final, resampling="NEAREST")


def _file_bands(src: Any) -> list[int]:
    """Indices of the file's own bands among the 13 read (L2A: B10 is left out again)."""
    from cloudfree.bands import S2_BANDS

    return [S2_BANDS.index(b) for b in src.bands]


def _window(
    sources: list[Any], masks: list[Any], region: tuple[int, int, int, int], days: np.ndarray,
    method: Any, s1_sources: dict[int, Any] | None = None, shape: tuple[int, int] = (0, 0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # fmt: skip
    """(13, h, w) DN, (h, w) made codes and the model's (13, h, w) std or None of ``region``,
    from every date (and the S1 of the
    dates in ``s1_sources``, (T, 2, h, w) dB with NaN elsewhere, for a temporal model; ``shape``
    is the scene's (height, width))."""
    from cloudfree.units import nodata_pixels

    dn, masked, holes = [], [], []
    for src, m in zip(sources, masks, strict=True):
        x, _ = src.read(region)
        hole = nodata_pixels(x, None)  # S2Source reads missing pixels as 0 in every band
        dn.append(x)
        holes.append(hole)
        masked.append((m.read(region) != 0) | hole)
    no_data = np.logical_and.reduce(holes)
    s1 = None
    if s1_sources:
        _, _, h, w = region
        s1 = np.full((len(sources), 2, h, w), np.nan, np.float32)
        for i, src in s1_sources.items():
            s1[i] = src.read(region, *shape)
    img, made, *std = method.combine(np.stack(dn), np.stack(masked).astype(np.uint8), days, s1)
    made = made.astype(np.int16)
    made[no_data] = NO_DATA
    if std:
        std[0][:, no_data] = np.nan
    return img, made, std[0] if std else None


def _to_dtype(img: np.ndarray, dtype: np.dtype, made: np.ndarray, nodata: float) -> np.ndarray:
    """DN in the output dtype (rounded and clipped for integers), nodata where no date has
    data."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        img = np.clip(np.rint(img), info.min, info.max)
    out = img.astype(dtype)
    out[:, made == NO_DATA] = nodata
    return out
