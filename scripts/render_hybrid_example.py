"""Draw the README's example of the hybrid pipeline (docs/hybrid.png).

Two rows, each cloudy input | cloud/shadow mask | inpainted (mask-fill) | hybrid output |
target, on patches the bundled weights never saw (scripts/train_bundled.sh, fold A):

1. Sen1Floods11 (Valencia) with simulated clouds over its real clear image and real S1:
   the bundled ``hybrid-sar``;
2. a real SEN12MS-CR cloudy/clear pair of a held-out scene: the bundled ``hybrid-nosar``.

    .venv/bin/python scripts/render_hybrid_example.py [--out docs/hybrid.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
REAL = "ROIs1868_summer_s2_cloudy/s2_cloudy_101/ROIs1868_summer_s2_cloudy_101_p505.tif"


def _row(method, cloudy: np.ndarray, target: np.ndarray, s1: np.ndarray | None, label: str):  # noqa: ANN001, ANN202
    from cloudfree import render
    from cloudfree.bands import DSEN2CR
    from cloudfree.data.preprocess import normalize_s1, normalize_s2
    from cloudfree.masks import cloud_shadow_mask

    mask = cloud_shadow_mask(cloudy)
    batch = {"s2_cloudy": torch.from_numpy(normalize_s2(cloudy, DSEN2CR))[None],
             "mask": torch.from_numpy(mask)[None]}  # fmt: skip
    if s1 is not None:
        batch["s1"] = torch.from_numpy(normalize_s1(s1, DSEN2CR))[None]
    inputs = method.inputs(batch)
    pred = method.predict(batch)[0].numpy() * DSEN2CR.s2_scale
    inpainted = inputs["s2_inpainted"][0].numpy() * DSEN2CR.s2_scale
    images = [render.true_colour(a) for a in (cloudy, inpainted, pred, target)]
    images.insert(1, render.mask_rgb(mask))
    titles = ["cloudy input", "cloud / shadow mask", "inpainted (mask-fill)", label, "target"]
    return render.panel(images, titles)


def main() -> None:
    from cloudfree import render
    from cloudfree.data.synthetic.clouds import simulate_clouds
    from cloudfree.io import read_raster
    from cloudfree.methods.load import load_method

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "hybrid.png")
    args = ap.parse_args()
    s2 = np.clip(read_raster(SHARED / "sen1floods11" / "Spain_7370579_S2Hand.tif")[0], 0, None)
    s1 = read_raster(SHARED / "sen1floods11" / "Spain_7370579_S1Hand.tif")[0]
    clear = s2[:, 256:, :256].astype(np.uint16)
    cloudy, _ = simulate_clouds(clear, np.random.default_rng(4), cover_fraction=0.45)
    rows = [_row(load_method("hybrid-sar", device="cpu"), cloudy, clear, s1[:, 256:, :256],
                 "hybrid-sar (SAR fusion)")]  # fmt: skip
    real = read_raster(SHARED / "sen12mscr" / REAL)[0]
    target = read_raster(SHARED / "sen12mscr" / REAL.replace("s2_cloudy", "s2"))[0]
    rows.append(_row(load_method("hybrid-nosar", device="cpu"), real, target, None,
                     "hybrid-nosar"))  # fmt: skip
    render.write_png(args.out, render.stack_rows(rows))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
