"""``cloudfree render``: PNG panels of a patch, a whole scene, or every patch of an index.

- ``cloudfree render FILE.tif --out FILE.png``: one GeoTIFF (13/12-band Sentinel-2 in true or
  false colour, or 2-band Sentinel-1 in dB as a VV/VH/ratio composite), optionally with
  ``--mask`` (cloud/shadow overlay), ``--prediction P.tif`` and ``--target T.tif`` (drawn beside
  it, with the error map of the prediction against the target). A raster larger than
  ``--max-size`` is drawn as a decimated overview read with rasterio's ``out_shape``: the full
  array is never loaded.
- ``cloudfree render ROOT_OR_INDEX.csv --out DIR``: one ``<patch id>.png`` per patch of the
  index (``--split``, ``--limit``): cloudy input, target, S1, mask, and each method's
  prediction and error map from ``--predictions`` (layout: :mod:`cloudfree.viewer.catalog`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from cloudfree import render
from cloudfree.argtypes import positive_int
from cloudfree.bands import NUM_S2_BANDS, SPLITS
from cloudfree.errors import CloudfreeError, DataError
from cloudfree.viewer.layers import (
    COMPOSITES,
    Style,
    any_rgb,
    output_kind,
    output_tags,
    raster_size,
    read_display,
)

#: Default longest side of a drawn raster (larger ones are decimated while reading).
DEFAULT_MAX_SIZE = 1024
_PLACEHOLDER = 96  # grey shade of a panel whose file is missing or unreadable
_NO_FILE = "MISSING: no such file in the index"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``cloudfree render``."""
    p = sub.add_parser(
        "render",
        help="draw PNG panels of a patch, a scene or a whole index",
        description=(
            "Draw PNG quicklooks. SOURCE is a GeoTIFF (-> one PNG at --out) or a dataset folder / "
            "index CSV (-> one PNG per patch in the folder --out). Sentinel-2 in true colour "
            "(B4,B3,B2) or false colour (B8,B4,B3) with a gain or percentile stretch; Sentinel-1 "
            "as R=VV, G=VH, B=VV-VH in dB; the cloud/shadow mask as an overlay; predictions and "
            "their error maps. Large scenes are drawn as overviews, never read whole."
        ),
    )
    p.add_argument("source", help="a GeoTIFF, a dataset folder, or an index CSV")
    p.add_argument("--out", required=True, help="PNG file (GeoTIFF source) or folder (index)")
    p.add_argument("--composite", choices=COMPOSITES, default="true", help="S2 composite")
    p.add_argument("--stretch", choices=render.STRETCHES, default="gain", help="S2 stretch")
    p.add_argument("--gain", type=float, default=render.DEFAULT_GAIN, help="gain stretch factor")
    p.add_argument(
        "--percentiles",
        type=float,
        nargs=2,
        default=render.DEFAULT_PERCENTILES,
        metavar=("LOW", "HIGH"),
        help="percentile stretch limits (default 2 98)",
    )
    p.add_argument("--mask", action="store_true", help="overlay the cloud/shadow mask (13 bands)")
    p.add_argument("--prediction", default=None, help="a predicted GeoTIFF to draw beside SOURCE")
    p.add_argument(
        "--target", default=None, help="the cloud-free target (error map with --prediction)"
    )
    p.add_argument(
        "--max-size",
        type=positive_int,
        default=DEFAULT_MAX_SIZE,
        help=f"longest side in pixels of each drawn raster (default {DEFAULT_MAX_SIZE})",
    )
    p.add_argument("--predictions", default=None, help="index mode: predictions folder")
    p.add_argument("--split", choices=SPLITS, default=None, help="index mode")
    p.add_argument("--limit", type=positive_int, default=None, help="index mode: at most N patches")
    p.set_defaults(func=run)


def _mask_of(arr: np.ndarray) -> np.ndarray:
    from cloudfree.masks.patch import patch_mask

    return patch_mask(arr)


def _role(path: str | Path) -> str:
    """A panel title for a GeoTIFF, from the tags cloudfree writes (:func:`output_kind`)."""
    tags = output_tags(path)
    kind = output_kind(tags)
    if kind == "mask":
        return f"mask ({tags.get('backend', '?')})"
    if kind in ("prediction", "std"):
        what = "prediction" if kind == "prediction" else "standard deviation"
        return f"{what} ({tags.get('method', '?')})"
    return "input"


def render_file(
    source: str | Path,
    out: str | Path,
    style: Style | None = None,
    mask: bool = False,
    prediction: str | Path | None = None,
    target: str | Path | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> Path:
    """Draw one GeoTIFF (with an optional prediction, target and error map) as a PNG panel.

    Every raster is read decimated to the same size (the source's, shrunk to ``max_size``).

    Raises:
        DataError: unreadable files, or a prediction/target on another grid size than SOURCE.
    """
    style = style or Style()
    h, w, count = raster_size(source)
    role = _role(source)
    # A mask is decimated by picking classes, not by averaging them.
    arr, _ = read_display(source, max_size=max_size, categorical=role.startswith("mask"))
    size = arr.shape[1:]
    if mask and count != NUM_S2_BANDS:
        raise DataError(source, f"has {count} bands", "13 Sentinel-2 L1C bands for --mask")
    rgb = any_rgb(arr, style)
    if mask:
        rgb = render.mask_overlay(rgb, _mask_of(arr))
    images, titles = [rgb], [role + (" + mask" if mask else "")]
    others: dict[str, np.ndarray] = {}
    for name, path in (("prediction", prediction), ("target", target)):
        if path is None:
            continue
        if raster_size(path)[:2] != (h, w):
            raise DataError(
                path, f"is {raster_size(path)[:2]} pixels", f"the size of {source}, {(h, w)}"
            )
        others[name], _ = read_display(path, out_size=size)
        images.append(any_rgb(others[name], style))
        titles.append(name)
    if len(others) == 2:
        images.append(render.error_map(others["prediction"], others["target"]))
        titles.append("error 0-0.2")
    return render.write_png(out, render.panel(images, titles))


def _load(get_path: Callable[[], Path], max_size: int) -> tuple[np.ndarray | None, str]:
    """Read one layer: ``(array, "")``, or ``(None, "MISSING: why")`` / ``"UNREADABLE: why"``."""
    from cloudfree.viewer.catalog import NotFound

    try:
        arr, _ = read_display(get_path(), max_size=max_size)
        return arr, ""
    except NotFound as e:
        return None, f"MISSING: {e}"
    except CloudfreeError as e:  # unreadable, truncated, outside the allowed folders
        return None, f"UNREADABLE: {e}"


def _placeholder(size: tuple[int, int]) -> np.ndarray:
    return np.full((*size, 3), _PLACEHOLDER, np.uint8)


def render_index(
    source: str | Path,
    out: str | Path,
    style: Style | None = None,
    mask: bool = False,
    predictions: str | Path | None = None,
    split: str | None = None,
    limit: int | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> tuple[list[Path], list[str]]:
    """One PNG per patch: cloudy, target, S1, mask, then each prediction and its error map.

    A missing or unreadable file gets a grey panel titled MISSING / UNREADABLE; the problem is
    returned and the other patches are still drawn.

    Returns:
        ``(PNG paths written, problems as "patch id: message")``.
    """
    from cloudfree.viewer.catalog import Catalog

    style = style or Style()
    cat = Catalog(source, predictions)
    rows = [n for n, r in enumerate(cat.rows) if split is None or r.split == split]
    rows = rows[:limit] if limit is not None else rows
    written: list[Path] = []
    problems: list[str] = []
    for n in rows:
        row = cat.rows[n]
        arrays: dict[str, np.ndarray | None] = {}
        status: dict[str, str] = {}
        for key, kind in (("cloudy", "s2_cloudy"), ("target", "s2"), ("s1", "s1")):
            if row.has(kind):
                arrays[key], status[key] = _load(partial(cat.file, row, kind), max_size)
            else:
                arrays[key], status[key] = None, _NO_FILE
        methods = [m for m in sorted(cat.methods) if row.id in cat.methods[m].files]
        for m in methods:
            f = cat.methods[m].files[row.id]
            arrays[m], status[m] = _load(partial(cat.checked, f), max_size)
        problems += [f"{row.id}: {k}: {v}" for k, v in status.items() if v and v != _NO_FILE]
        status = {k: v.split(":")[0] for k, v in status.items()}
        size = next((a.shape[1:] for a in arrays.values() if a is not None), (256, 256))

        layers: list[tuple[str, np.ndarray | None, str]] = []  # title, image, problem
        for key in ("cloudy", "target", "s1"):
            a = arrays[key]
            rgb = None if a is None else any_rgb(a, style)
            if (
                a is not None
                and rgb is not None
                and key == "cloudy"
                and mask
                and a.shape[0] == NUM_S2_BANDS
            ):
                rgb = render.mask_overlay(rgb, _mask_of(a))
            layers.append((key, rgb, status[key]))
        cloudy = arrays["cloudy"]
        if cloudy is not None and cloudy.shape[0] == NUM_S2_BANDS:
            layers.append(("mask", render.mask_rgb(_mask_of(cloudy)), ""))
        target = arrays["target"]
        for m in methods:
            a = arrays[m]
            layers.append((m, None if a is None else any_rgb(a, style), status[m]))
            if a is not None and target is not None and target.shape == a.shape:
                layers.append((f"{m} error", render.error_map(a, target), ""))
        images, titles = [], []
        for title, rgb, problem in layers:
            if rgb is None or rgb.shape[:2] != tuple(size):
                rgb, problem = _placeholder(tuple(size)), problem or "OTHER SIZE"
            images.append(rgb)
            titles.append(f"{title} {problem}".strip())
        written.append(render.write_png(Path(out) / f"{row.id}.png", render.panel(images, titles)))
    return written, problems


def run(args: argparse.Namespace) -> int:
    """Render a GeoTIFF or an index; prints what was written and any problem."""
    from cloudfree.outputs import check_output_dir, check_outputs

    style = Style(args.composite, args.stretch, args.gain, tuple(args.percentiles))
    src = Path(args.source)
    if src.is_dir() or src.suffix.lower() == ".csv":
        if args.prediction or args.target:
            raise CloudfreeError(
                "--prediction/--target go with a GeoTIFF SOURCE; use --predictions for an index"
            )
        check_output_dir(args.out, "--out (a folder of PNGs for a dataset SOURCE)", [src])
        written, problems = render_index(
            src, args.out, style, args.mask, args.predictions, args.split, args.limit, args.max_size
        )
        for p in problems:
            print(f"warning: {p}")
        print(f"wrote {len(written)} PNG(s) to {args.out}")
        return 0
    if args.predictions or args.split or args.limit is not None:
        raise CloudfreeError("--predictions/--split/--limit need a dataset folder or index CSV")
    check_outputs({"--out": args.out}, [src, args.prediction, args.target], example="panel.png")
    out = render_file(src, args.out, style, args.mask, args.prediction, args.target, args.max_size)
    print(f"wrote {out}")
    return 0
