"""Draw the README's example of ``cloudfree composite`` (docs/composite.png).

The 5 real L1C dates of one 1 km site (``../shared/data/eolearn``, named 5 days apart): dates
1 and 2 as they are (fully cloudy), dates 4 and 5 under simulated clouds (seeded), date 3 held
out as the reference. First row: the four input dates, the composite (median + push-pull),
how each pixel was made (green: 1, 2, 3 clear dates; magenta: filled), and the held-out date;
second row: the mask of each date the composite was given (``--masks``: white cloud, blue
shadow): the simulated clouds' own truth, the real cloudy dates all masked. (With the default
masker instead, ``--masker``, ukis-csmask calls large parts of these simulated clouds clear:
see benchmarks/README.md, "Temporal methods".)

    .venv/bin/python scripts/render_composite_example.py [--out docs/composite.png]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EOLEARN = REPO.parent / "shared" / "data" / "eolearn"
#: made code -> colour: filled, least cloudy kept, 1, 2, 3+ clear observations
MADE_COLOURS = {-1: (214, 39, 140), 0: (150, 150, 150), 1: (199, 233, 192), 2: (116, 196, 118),
                3: (35, 139, 69)}  # fmt: skip


def _made_rgb(made: np.ndarray) -> np.ndarray:
    out = np.full((*made.shape, 3), 255, np.uint8)
    for code, colour in MADE_COLOURS.items():
        out[np.minimum(made, 3) == code] = colour
    return out


def _big(rgb: np.ndarray, k: int = 3) -> np.ndarray:
    """Enlarged k times, in a grey frame (an all-cloud mask is white on the white page)."""
    big = rgb.repeat(k, axis=0).repeat(k, axis=1)
    return np.pad(big, ((1, 1), (1, 1), (0, 0)), constant_values=128)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=str(REPO / "docs" / "composite.png"))
    p.add_argument("--masker", action="store_true", help="the default masker, not the truth")
    args = p.parse_args()
    import rasterio

    from cloudfree import render
    from cloudfree.data.synthetic.clouds import simulate_clouds
    from cloudfree.masks.scene import mask_array
    from cloudfree.predict.composite import CompositeOptions, composite_scene
    from cloudfree.predict.series import resolve_series

    rng = np.random.default_rng(7)
    dates = []
    for i in range(5):
        with rasterio.open(EOLEARN / f"reference_scene_{i}.tif") as ds:
            dates.append((ds.read(), ds.profile))
    with tempfile.TemporaryDirectory() as tmp:
        files, masks, tiles = [], [], []
        for i in (0, 1, 3, 4):
            dn, prof = dates[i]
            truth = np.ones(dn.shape[1:], np.uint8)  # the real cloudy dates: all cloud
            if i >= 3:
                dn, truth = simulate_clouds(dn, rng, cover_fraction=0.55)
            path = Path(tmp) / f"S2_2020-06-{1 + 5 * i:02d}.tif"
            with rasterio.open(path, "w", **prof) as ds:
                ds.write(dn)
            mask = mask_array(dn) if args.masker else truth
            (Path(tmp) / "masks").mkdir(exist_ok=True)
            with rasterio.open(Path(tmp) / "masks" / path.name, "w", **dict(
                    prof, count=1, dtype="uint8", nodata=None)) as ds:  # fmt: skip
                ds.write(mask[None])
            files.append(path)
            masks.append(_big(render.mask_rgb(mask)))
            tiles.append(_big(render.true_colour(dn)))
        out = Path(tmp) / "composite.tif"
        opts = CompositeOptions(progress=False)
        series = resolve_series([str(f) for f in files], masks=str(Path(tmp) / "masks"))
        composite_scene(series, out, Path(tmp) / "made.tif", opts)
        with rasterio.open(out) as ds:
            comp = ds.read()
        with rasterio.open(Path(tmp) / "made.tif") as ds:
            made = ds.read(1)
        titles = ["JUN 01", "JUN 06", "JUN 16", "JUN 21", "COMPOSITE", "HOW MADE", "JUN 11 (REF)"]
        images = [*tiles, _big(render.true_colour(comp)), _big(_made_rgb(made)),
                  _big(render.true_colour(dates[2][0]))]  # fmt: skip
        row2 = render.panel(masks, ["MASK"] * len(masks))
        render.write_png(args.out, render.stack_rows([render.panel(images, titles), row2]))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
