"""Cost of writing outputs as cloud-optimised GeoTIFFs (issue 30): the COG copy that
``cloudfree.io.to_cog`` makes of a finished output, beside the windowed write it follows, in
the same run.

A 13-band uint16 scene is written window by window as ``predict`` writes its output (512-px
blocks, pixel-interleaved, deflate 1, 128 MiB GDAL cache), with overviews up to 4096 x 4096 px
as ``predict`` builds them; then ``to_cog`` rewrites it in the COG layout (existing overviews
copied, never recomputed). Each phase runs in a child process, whose peak RSS is reported.

Run: ``.venv/bin/python benchmarks/cog.py [--sizes 2048 4096 8192]`` (needs ~3 GB of /tmp for
8192).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np, rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import Window

phase, path, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
t = time.perf_counter()
if phase == "write":
    from cloudfree.io import DEFLATE_LEVEL, gdal_cache_env
    from cloudfree.predict.scene import _overview_factors

    prof = dict(driver="GTiff", width=n, height=n, count=13, dtype="uint16", tiled=True,
                blockxsize=512, blockysize=512, compress="deflate", zlevel=DEFLATE_LEVEL,
                predictor=2, interleave="pixel", BIGTIFF="IF_SAFER", crs="EPSG:32633",
                transform=from_origin(500000, 5000000, 10, 10))
    rng = np.random.default_rng(0)
    with rasterio.Env(**gdal_cache_env()), rasterio.open(path, "w", **prof) as ds:
        for r in range(0, n, 1024):
            h = min(1024, n - r)
            y, x = np.mgrid[r:r + h, 0:n]
            base = 1500 + 400 * np.sin(x / 37.0) + 300 * np.cos(y / 23.0)
            noise = rng.normal(0, 60, (13, h, n))
            arr = base[None] * (1 + 0.05 * np.arange(13))[:, None, None] + noise
            ds.write(arr.clip(0, 65535).astype("uint16"), window=Window(0, r, n, h))
        factors = _overview_factors(n, n)
        if factors:
            ds.build_overviews(factors, Resampling.average)
else:
    from cloudfree.io import to_cog

    to_cog(path, path)
    with rasterio.open(path) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "mib": path.stat().st_size / 2**20}))
"""


def _run(phase: str, path: Path, n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, phase, str(path), str(n)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    args = p.parse_args()
    print(f"{'scene':>6} {'write s':>8} {'overviews':>9} {'peak MiB':>9} {'COG s':>6} "
          f"{'peak MiB':>9} {'MiB':>11}")  # fmt: skip
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="cloudfree-cog-") as tmp:
            path = Path(tmp) / "scene.tif"
            w = _run("write", path, n)
            c = _run("cog", path, n)
            ovr = "yes" if n * n <= 4096 * 4096 else "no"
            print(f"{n:>6} {w['seconds']:>8.1f} {ovr:>9} {w['peak_mib']:>9.0f} "
                  f"{c['seconds']:>6.1f} {c['peak_mib']:>9.0f} {w['mib']:>5.0f}->{c['mib']:<5.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
