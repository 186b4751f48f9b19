"""Cost of the S2 units check (issue 30): the distribution rules against the extremes-only rule
they replaced, side by side in one run.

- patch: ``cloudfree.units.check_patch`` on a real SEN12MS-CR triplet (two 13 x 256 x 256
  uint16 S2 arrays and S1), as every training and evaluation read calls it; the baseline is the
  rule before issue 30 (the maximum of each S2 array, the minimum and maximum of S1).
- scene: ``cloudfree.units.check_scene`` on a real 13-band scene (the largest S2 GeoTIFF of
  the samples), as ``predict`` and ``mask`` call it once per scene.

Run: ``.venv/bin/python benchmarks/units.py [--reps 300]``. Needs ``../shared/data``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _old_rule(raw: dict[str, np.ndarray]) -> None:
    """What check_patch did before issue 30: extremes only."""
    for key, v in raw.items():
        v = v.ravel()
        if key.startswith("s2"):
            hi = float(v.max())
            if 0 < hi <= 2.0:
                raise ValueError(key)
        else:
            v = v[np.isfinite(v)]
            if float(v.min()) >= 0 and float(v.max()) > 0:
                raise ValueError(key)


def _time(fn, reps: int) -> float:  # noqa: ANN001
    for _ in range(5):
        fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main() -> None:
    import rasterio

    from cloudfree.units import check_patch, check_scene

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=300)
    args = p.parse_args()
    patch = next((DATA / "sen12mscr").glob("ROIs2017_winter_s2_cloudy/*/*.tif"))
    with rasterio.open(patch) as ds:
        s2 = ds.read()
    s1_file = next((DATA / "sen12mscr").glob("ROIs2017_winter_s1/*/*.tif"))
    with rasterio.open(s1_file) as ds:
        s1 = ds.read()
    raw = {"s2_cloudy": s2, "s2": s2.copy(), "s1": s1}
    new = _time(lambda: check_patch(raw, "p"), args.reps)
    old = _time(lambda: _old_rule(raw), args.reps)
    print(f"patch (2 x 13x256x256 uint16 + S1): distribution rules {new * 1e3:.2f} ms, "
          f"extremes only {old * 1e3:.2f} ms")  # fmt: skip

    def bands(f: Path) -> int:
        with rasterio.open(f) as ds:
            return ds.count

    by_size = sorted(DATA.rglob("*.tif"), key=lambda f: f.stat().st_size, reverse=True)
    scene = next(f for f in by_size if bands(f) == 13)
    with rasterio.open(scene) as ds:
        t = _time(lambda: check_scene(ds, "s2", scene), max(1, args.reps // 10))
        print(f"scene {scene.name} ({ds.width}x{ds.height}): check_scene {t * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
