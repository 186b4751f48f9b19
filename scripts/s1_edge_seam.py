"""How visible is the edge of the S1 coverage in a prediction? Blended vs a hard switch.

A real scene (Sen1Floods11, Valencia: 13-band L1C, 512 x 512) is predicted with a SAR model
whose S1 covers only the left half (the right half set to NaN, S1's nodata), so ``predict``
takes the no-SAR model on the right. Printed per band group: the mean absolute step between
neighbouring columns across the coverage edge against the median step elsewhere, for the
blend of ``cloudfree.predict.tiling.coverage_weights`` and, in the same run, the hard switch
that predict used before (the SAR weight being the coverage itself). Writes PNGs of both.

    .venv/bin/python scripts/s1_edge_seam.py [--data ../shared/data] [--out /tmp/seam]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    import rasterio

    import cloudfree.predict.window as window
    from cloudfree import render
    from cloudfree.predict.scene import predict_scene

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", default="/tmp/seam")
    p.add_argument("--checkpoint", default="hybrid-sar")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(args.data) / "sen1floods11"
    s2 = base / "Spain_7370579_S2Hand.tif"
    with rasterio.open(base / "Spain_7370579_S1Hand.tif") as ds:
        s1, profile = ds.read(), ds.profile
    edge = s1.shape[2] // 2
    s1[:, :, edge:] = np.nan
    half = out / "s1_left_half.tif"
    with rasterio.open(half, "w", **profile) as ds:
        ds.write(s1)

    blended = window.coverage_weights
    results = {}
    for name, weights in (
        ("hard switch (before)", lambda cov, overlap: cov.astype(np.float32)),
        ("blended (now)", blended),
    ):
        window.coverage_weights = weights
        try:
            target = out / f"{name.split()[0]}.tif"
            summary = predict_scene(s2, target, args.checkpoint, half, progress=False)
        finally:
            window.coverage_weights = blended
        with rasterio.open(target) as ds:
            pred = ds.read().astype(np.float64)
        results[name] = pred
        print(f"{name}: overlap {summary['overlap']} px, {summary['seconds']:.1f} s")

    print(
        f"\nmean |column step| (DN) across the S1 edge (columns {edge - 1}|{edge}) and the median"
    )
    print("step elsewhere, per band group; the edge rows of the scene excluded")
    groups = {"visible B2-B4": [1, 2, 3], "NIR B8": [7], "SWIR B11-B12": [11, 12]}
    print(f"{'':22}" + "".join(f"{g:>22}" for g in groups))
    for name, pred in results.items():
        step = np.abs(np.diff(pred[:, 8:-8], axis=2)).mean(axis=1)  # (bands, cols - 1)
        cells = []
        for bands in groups.values():
            s = step[bands].mean(axis=0)
            cells.append(f"{s[edge - 1]:8.1f} vs {np.median(s):6.1f}")
        print(f"{name:22}" + "".join(f"{c:>22}" for c in cells))
        rgb = render.true_colour(pred[:, :, edge - 96 : edge + 96])
        render.write_png(out / f"{name.split()[0]}.png", render.panel([rgb], [name]))
    print(f"\nPNGs in {out}")


if __name__ == "__main__":
    main()
