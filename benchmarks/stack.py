"""``cloudfree stack`` (a Sentinel-2 .SAFE -> one 13-band GeoTIFF) with GDAL's block cache as
``stack`` set it before issue 16 (128 *bytes*: rasterio passes an integer to GDALSetCacheMax64)
and as now (``cloudfree.io.gdal_cache_env``: 128 MiB), on the same synthetic L1C product.

Each case runs in its own process (its peak RSS is its own), interleaved, twice. The product is
written once (lossless JPEG 2000, random DN, one granule) under ``--work``.

    .venv/bin/python benchmarks/stack.py --side 4080     # 10 m pixels a side; a multiple of 6
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CASE = r"""
import json, resource, sys, time
import cloudfree.data.sentinel.safe as safe
if sys.argv[2] == "128-byte cache":
    safe.gdal_cache_env = lambda: {"GDAL_CACHEMAX": 128}  # what stack passed before issue 16
t = time.perf_counter()
safe.stack_safe(sys.argv[1], sys.argv[3])
print(json.dumps({"s": time.perf_counter() - t,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
TILE = "T33UVP_20200101T100031"
#: Product metadata without radiometric offsets (processing baseline before 04.00).
MTD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<n1:Level-1C_User_Product xmlns:n1='
    '"https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd"><n1:General_Info>'
    "<Product_Image_Characteristics><Radiometric_Offset_List/></Product_Image_Characteristics>"
    "</n1:General_Info></n1:Level-1C_User_Product>\n"
)


def make_safe(root: Path, side: int) -> Path:
    """A one-granule L1C .SAFE of ``side`` x ``side`` 10 m pixels, random DN in [1000, 4000)."""
    import numpy as np
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from cloudfree.bands import S2_BANDS, S2_NATIVE_GSD_M

    safe = root / "S2A_MSIL1C_20200101T100031_N0208_R122_T33UVP_20200101T120000.SAFE"
    if safe.is_dir():
        return safe
    img = safe / "GRANULE" / "L1C_T33UVP_A023000_20200101T100031" / "IMG_DATA"
    img.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for band in S2_BANDS:
        gsd = S2_NATIVE_GSD_M[band]
        n = side * 10 // gsd
        token = "8A" if band == "B8A" else f"{int(band[1:]):02d}"
        with rasterio.open(img / f"{TILE}_B{token}.jp2", "w", driver="JP2OpenJPEG", width=n,
                           height=n, count=1, dtype="uint16", crs=CRS.from_epsg(32633),
                           transform=from_origin(300000.0, 5000000.0, gsd, gsd), QUALITY=100,
                           REVERSIBLE="YES") as ds:  # fmt: skip
            ds.write((1000 + rng.integers(0, 3000, (n, n)))[None].astype(np.uint16))
    (safe / "MTD_MSIL1C.xml").write_text(MTD)
    return safe


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--side", type=int, default=4080, help="10 m pixels a side (multiple of 6)")
    p.add_argument("--work", default="/tmp/cloudfree-bench-stack", help="where the SAFE goes")
    args = p.parse_args(argv)
    if args.side % 6:
        raise SystemExit("--side must be a multiple of 6 (the 60 m bands must tile it exactly)")
    work = Path(args.work)
    t = time.perf_counter()
    safe = make_safe(work / f"side{args.side}", args.side)
    print(f"SAFE {args.side} x {args.side} px (10 m) ready in {time.perf_counter() - t:.0f} s")
    print(f"{'round':>5} {'GDAL cache':<16} {'seconds':>8} {'peak RSS MiB':>13}")
    for rnd in range(2):
        for mode in ("128-byte cache", "128 MiB (now)"):
            r = subprocess.run(
                [sys.executable, "-c", CASE, str(safe), mode, str(work / "out.tif")],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if r.returncode:
                raise SystemExit(f"{mode}: stack failed\n{r.stderr[-2000:]}")
            res = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"{rnd:>5} {mode:<16} {res['s']:>8.1f} {res['rss_mib']:>13.0f}")


if __name__ == "__main__":
    main()
