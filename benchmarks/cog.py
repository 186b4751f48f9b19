"""Cost of writing outputs as cloud-optimised GeoTIFFs with overviews (issue 30): overviews
averaged while each window is in memory (:mod:`cloudfree.overviews`, what ``predict`` and
``stack`` do) beside the same write with the overviews left to GDAL's COG driver
(``OVERVIEWS=AUTO``, what ``gdal_translate -of COG`` does), in the same run.

A 13-band uint16 scene is written in 1024-px windows as ``predict`` writes its output (512-px
blocks, pixel-interleaved, deflate 1, GDAL's cache capped at 128 MiB), then rewritten as a
COG before the rename. Each way runs in a child process, whose peak RSS is reported; the
scene's values are made per window by the same generator in both (its time is in both).

Run: ``.venv/bin/python benchmarks/cog.py [--sizes 2048 4096 8192 10980] [--gdal-max 8192]``
(``--gdal-max``: largest scene for the GDAL way, minutes above it; ~4 GB of /tmp for 10980).
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
from rasterio.transform import from_origin
from rasterio.windows import Window

from cloudfree.io import DEFLATE_LEVEL, atomic_path, gdal_cache_env, to_cog
from cloudfree.overviews import OverviewLevels
from cloudfree.windows import windows

way, path, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
prof = dict(driver="GTiff", width=n, height=n, count=13, dtype="uint16", nodata=0, tiled=True,
            blockxsize=512, blockysize=512, compress="deflate", zlevel=DEFLATE_LEVEL,
            predictor=2, interleave="pixel", BIGTIFF="IF_SAFER", crs="EPSG:32633",
            transform=from_origin(500000, 5000000, 10, 10))
rng = np.random.default_rng(0)
gain = (1 + 0.05 * np.arange(13))[:, None, None]
t = time.perf_counter()
stamps = {}


def gdal_cog(tmp, final):
    stamps["written"] = time.perf_counter()
    to_cog(tmp, final, resampling="AVERAGE")


def inpass_cog(tmp, final):
    stamps["written"] = time.perf_counter()
    levels.to_cog(tmp, final)


with rasterio.Env(**gdal_cache_env()), OverviewLevels(path, prof, 1024) as levels:
    finish = inpass_cog if way == "inpass" else gdal_cog
    with atomic_path(path, finish=finish) as tmp, rasterio.open(tmp, "w", **prof) as ds:
        for r, c, h, w in windows(n, n, 1024):
            y, x = np.mgrid[r:r + h, c:c + w]
            base = 1500 + 400 * np.sin(x / 37.0) + 300 * np.cos(y / 23.0)
            arr = (base[None] * gain + rng.normal(0, 60, (13, h, w))).clip(1, 65535)
            values = arr.astype("uint16")
            ds.write(values, window=Window(c, r, w, h))
            if way == "inpass":
                levels.add(values, (r, c, h, w))
end = time.perf_counter()
with rasterio.open(path) as ds:
    assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    ovr = ds.overviews(1)
print(json.dumps({"write": stamps["written"] - t, "cog": end - stamps["written"],
                  "total": end - t, "overviews": ovr,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "mib": path.stat().st_size / 2**20}))
"""


def _run(way: str, path: Path, n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, way, str(path), str(n)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    p.add_argument("--gdal-max", type=int, default=8192, help="largest scene for GDAL's way")
    args = p.parse_args()
    print(f"{'scene':>6} {'way':>8} {'write s':>8} {'COG s':>7} {'total s':>8} {'peak MiB':>9} "
          f"{'MiB':>6}  overviews")  # fmt: skip
    for n in args.sizes:
        for way in ("inpass", "gdal"):
            if way == "gdal" and n > args.gdal_max:
                print(f"{n:>6} {way:>8}  (not run: over --gdal-max)")
                continue
            with tempfile.TemporaryDirectory(prefix="cloudfree-cog-") as tmp:
                r = _run(way, Path(tmp) / "scene.tif", n)
            print(f"{n:>6} {way:>8} {r['write']:>8.1f} {r['cog']:>7.1f} {r['total']:>8.1f} "
                  f"{r['peak_mib']:>9.0f} {r['mib']:>6.0f}  {r['overviews']}")  # fmt: skip


if __name__ == "__main__":
    main()
