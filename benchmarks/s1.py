"""``cloudfree s1`` time and peak memory against the area (10 km and 50 km squares at 10 m),
beside sarsen's own terrain correction (``sarsen.apps.terrain_correction``, its GTC beta0 on
the same grid, reading the product through xarray-sentinel: the whole swath's lazy arrays, the
calibration LUT interpolated over them) on the same product, each case in a fresh process.

The product is sarsen's test GRD (``../shared/data/s1grd``: real annotation, calibration,
noise, orbit) with random DN written (sparse GeoTIFF) over the rows and columns under the
largest area, around geolocation grid point (5, 10); the DEM is flat at that point's height
(ellipsoidal). Reported: wall seconds, peak resident memory of the process (``VmHWM``),
lines of the 16,705 that were read (``cloudfree s1``).

    .venv/bin/python benchmarks/s1.py [--sides-km 10 50] [--sarsen-max-km 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def _hwm_mb() -> float:
    """This process's peak resident memory, MiB (VmHWM: unlike ru_maxrss, not inherited from
    the parent across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _case(kind: str, safe: str, like: str, dem: str, out: str) -> dict:
    """Run one case in this process; returns its figures."""
    t = time.perf_counter()
    info: dict = {}
    if kind == "cloudfree":
        from cloudfree.data.s1grd.product import open_grd
        from cloudfree.data.s1grd.terrain import correct

        info = correct(open_grd(safe), like, out, dem, dem_heights="ellipsoid", progress=False)
    else:
        import sarsen

        product = sarsen.Sentinel1SarProduct(safe, measurement_group="IW/VV")
        sarsen.apps.terrain_correction(product, dem, output_urlpath=out, interp_method="linear")
    return {"s": time.perf_counter() - t,
            "peak_mb": _hwm_mb(),
            "lines_read": info.get("lines_read")}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sides-km", type=float, nargs="+", default=[10, 50])
    ap.add_argument("--sarsen-max-km", type=float, default=10,
                    help="run sarsen only up to this side (its run grows with the swath)")  # fmt: skip
    ap.add_argument("--case", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(_case(*args.case)))
        return

    import numpy as np
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import from_origin
    from tests.data.s1grd import product as tp

    from cloudfree.data.s1grd.geocode import Geometry
    from cloudfree.data.s1grd.product import open_grd

    g = Geometry.of(open_grd(tp.source(SHARED))).gcp
    lat, lon, h = (float(g[v][5, 10]) for v in ("latitude", "longitude", "height"))
    line, pixel = int(g.line[5]), int(g.pixel[10])
    half = int(max(args.sides_km) * 100 * 0.75) + 200  # GRD px around the point (rotation)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        block = rng.integers(30, 600, (2 * half, 2 * half), dtype=np.uint16)
        l0, p0 = max(0, line - half), max(0, pixel - half)
        block = block[: tp.LINES - l0, : tp.SAMPLES - p0]
        safe = tp.make(SHARED, tmp, {"vv": [(l0, p0, block)], "vh": [(l0, p0, block // 4)]})
        crs = f"EPSG:{32600 + int((lon + 180) // 6) + 1}"
        x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
        print(
            "| area | tool | s | peak MiB | GRD lines read (sum over windows) |\n|---|---|---|---|---|"
        )
        for km in args.sides_km:
            side = int(km * 100)
            like = tmp / f"like_{km:g}.tif"
            t = from_origin(x - side * 5, y + side * 5, 10, 10)
            prof = {"driver": "GTiff", "width": side, "height": side, "count": 1,
                    "dtype": "float32", "crs": crs, "transform": t, "tiled": True,
                    "compress": "deflate"}  # fmt: skip
            with rasterio.open(like, "w", **prof) as ds:  # the DEM on the grid (sarsen's grid)
                ds.write(np.full((1, side, side), h, np.float32))
            for kind in ("cloudfree", "sarsen"):
                if kind == "sarsen" and km > args.sarsen_max_km:
                    print(f"| {km:g} km ({side} px) | sarsen | not run (--sarsen-max-km) | | |")
                    continue
                out = tmp / f"{kind}_{km:g}.tif"
                r = subprocess.run([sys.executable, __file__, "--case", kind, str(safe),
                                    str(like), str(like), str(out)], capture_output=True,
                                   text=True, check=False)  # fmt: skip
                if r.returncode != 0:
                    print(f"| {km:g} km | {kind} | failed: {r.stderr.strip()[-300:]} | | |")
                    continue
                f = json.loads(r.stdout.strip().splitlines()[-1])
                print(
                    f"| {km:g} km ({side} px) | {kind} | {f['s']:.1f} | {f['peak_mb']:.0f} | "
                    f"{f['lines_read'] if f['lines_read'] is not None else 'swath (lazy)'} |"
                )


if __name__ == "__main__":
    main()
