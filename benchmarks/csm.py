"""Benchmark of the DSen2-CR cloud/shadow mask: vectorised vs the plain scipy reference.

Measures, on this machine:
1. a batch of 256 x 256 patches (real SEN12MS-CR patches when ../shared/data is present,
   flipped and rotated to fill the batch; synthetic smooth fields otherwise);
2. one in-memory 4096 x 4096 scene tiled from the same patches;
3. the windowed GeoTIFF path (``mask_scene``) on that scene, in a fresh process per window size,
   with its peak memory (numpy allocations by tracemalloc, and peak RSS) against the scene size.
Every fast result is checked against the reference in the same run ("identical: True").

Run from the repository root: ``.venv/bin/python benchmarks/csm.py`` (``--help`` for sizes).
The quality of every masker (this one, ukis-csmask's CNN, s2cloudless) is ``benchmarks/mask.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.bands import s2_index
from cloudfree.masks.csm import cloud_shadow_mask
from cloudfree.masks.reference import _fsum, reference_csm

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sen12mscr"


def load_patches() -> tuple[list[np.ndarray], str]:
    """Real 13 x 256 x 256 patches (cloudy and clear), or synthetic ones if the data is absent."""
    paths = sorted(SHARED.glob("*_s2*/s2*/*.tif"))
    if paths:
        import rasterio

        patches = []
        for p in paths:
            with rasterio.open(p) as ds:
                if ds.count == 13:
                    patches.append(ds.read())
        return patches, f"{len(patches)} real SEN12MS-CR patches"
    import scipy.ndimage

    rng = np.random.default_rng(0)
    level = np.array([1300, 1000, 900, 800, 1200, 2000, 2300, 2500, 2600, 600, 20, 1800, 1000])
    patches = []
    for _ in range(16):
        land = scipy.ndimage.gaussian_filter(rng.standard_normal((256, 256)), 6)
        cloud = scipy.ndimage.gaussian_filter(rng.standard_normal((256, 256)), 12)
        cloud = np.clip(cloud / cloud.std() - 0.5, 0, None)
        dn = level[:, None, None] * (1 + 0.35 * land / land.std()) + 3000 * cloud
        patches.append(np.clip(dn, 0, 65535).astype(np.uint16))
    return patches, "16 synthetic patches (../shared/data absent)"


def augmented(patches: list[np.ndarray], n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    order = np.concatenate([rng.permutation(len(patches)) for _ in range(n // len(patches) + 1)])
    for i in order[:n]:
        p = patches[i]
        if rng.random() < 0.5:
            p = p[:, :, ::-1]
        out.append(np.rot90(p, int(rng.integers(4)), axes=(1, 2)))
    return out


def make_scene(patches: list[np.ndarray], size: int) -> np.ndarray:
    k = size // 256
    tiles = augmented(patches, k * k, seed=1)
    rows = [np.concatenate(tiles[r * k : (r + 1) * k], axis=2) for r in range(k)]
    return np.ascontiguousarray(np.concatenate(rows, axis=1))


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def peak_rss() -> int:
    """Peak resident memory of this process image, bytes: VmHWM (Linux), which, unlike
    ru_maxrss, is not inherited from the parent across fork + exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def windowed_child(tif: str, out: str, window: int) -> None:
    """Run in a fresh process: time and peak memory of mask_scene alone."""
    import rasterio  # noqa: F401  (imports and first calls are not what is measured)
    import scipy.signal  # noqa: F401

    from cloudfree.masks.scene import mask_scene

    cloud_shadow_mask(np.full((13, 16, 16), 1000, np.uint16))
    rss0 = peak_rss()
    tracemalloc.start()
    t0 = time.perf_counter()
    stats = mask_scene(tif, out, backend="dsen2cr", window=window)
    seconds = time.perf_counter() - t0
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps(dict(seconds=seconds, traced=traced, rss0=rss0, rss=peak_rss(), **stats)))


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def bench_batch(patches: list[np.ndarray], source: str, n: int, repeats: int) -> None:
    batch = np.stack(augmented(patches, n, seed=0))
    print(f"\n[batch] {n} x 13 x 256 x 256 uint16 from {source}")
    t_ref, ref = best_of(lambda: np.stack([reference_csm(x)[1] for x in batch]), 1)
    t_fast, fast = best_of(lambda: cloud_shadow_mask(batch), repeats)
    print(f"  reference (scipy, per image): {t_ref:8.3f} s  ({1e3 * t_ref / n:.1f} ms/patch)")
    print(f"  vectorised (one batch call):  {t_fast:8.3f} s  ({1e3 * t_fast / n:.1f} ms/patch)")
    print(f"  identical: {bool(np.array_equal(ref, fast))}   speedup: {t_ref / t_fast:.1f}x")
    frac = np.bincount(fast.ravel(), minlength=3) / fast.size
    print(f"  classes: clear {frac[0]:.3f} cloud {frac[1]:.3f} shadow {frac[2]:.3f}")


def bench_scene(scene: np.ndarray, repeats: int) -> np.ndarray:
    side = scene.shape[-1]
    print(f"\n[scene] 13 x {side} x {side} uint16 in memory ({scene.nbytes / 2**20:.0f} MiB)")
    t_ref, (_, ref) = best_of(lambda: reference_csm(scene), 1)
    dn = scene.astype(np.float32)
    i2, i8, i11 = s2_index("B2"), s2_index("B8"), s2_index("B11")
    t_means, _ = best_of(lambda: (_fsum(dn[i2]), _fsum(dn[i8], dn[i11])), 1)
    t_fast, fast = best_of(lambda: cloud_shadow_mask(scene), repeats)
    print(f"  reference (scipy):  {t_ref:8.3f} s  (of which exact means by fsum: {t_means:.2f} s)")
    print(f"  vectorised:         {t_fast:8.3f} s")
    print(
        f"  identical: {bool(np.array_equal(ref, fast))}   speedup: {t_ref / t_fast:.1f}x "
        f"({(t_ref - t_means) / t_fast:.1f}x without the reference's fsum means)"
    )
    return fast


def bench_windowed(scene: np.ndarray, expected: np.ndarray, windows: list[int]) -> None:
    """mask_scene on the scene written as a GeoTIFF, each window size in a fresh process."""
    import rasterio
    from rasterio.transform import from_origin

    side = scene.shape[-1]
    with tempfile.TemporaryDirectory() as tmp:
        tif = Path(tmp) / "scene.tif"
        profile = dict(
            driver="GTiff", width=side, height=side, count=13, dtype="uint16",
            crs="EPSG:32633", transform=from_origin(500000, 5100000, 10, 10),
            tiled=True, blockxsize=512, blockysize=512,
        )  # fmt: skip
        with rasterio.open(tif, "w", **profile) as ds:
            ds.write(scene)
        size = tif.stat().st_size / 2**20
        print(f"\n[windowed] mask_scene on the same scene as a GeoTIFF ({size:.0f} MiB)")
        runs = [(w, c) for w in windows for c in (None, "64")]
        for window, cachemax in runs:
            out = Path(tmp) / f"mask_{window}.tif"
            cmd = [sys.executable, __file__, "--_child", str(tif), str(out), str(window)]
            env = dict(os.environ, **({"GDAL_CACHEMAX": cachemax} if cachemax else {}))
            res = json.loads(
                subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
            )
            with rasterio.open(out) as ds:
                same = bool(np.array_equal(ds.read(1), expected))
            cache = f"GDAL_CACHEMAX={cachemax} MB" if cachemax else "default GDAL cache"
            print(
                f"  window {window:5d} ({cache}): {res['seconds']:6.2f} s, peak numpy memory "
                f"{res['traced'] / 2**20:6.1f} MiB, peak RSS {res['rss'] / 2**20:5.0f} MiB "
                f"(after imports {res['rss0'] / 2**20:.0f} MiB); identical: {same}"
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32, help="patches in the 256 x 256 batch")
    ap.add_argument("--scene", type=int, default=4096, help="side of the scene (multiple of 256)")
    ap.add_argument("--windows", default="512,1024,2048", help="window sizes for mask_scene")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the fast path (best kept)")
    ap.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        windowed_child(args._child[0], args._child[1], int(args._child[2]))
        return 0

    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; numpy {np.__version__}")
    patches, source = load_patches()
    cloud_shadow_mask(patches[0][:, :32, :32])  # imports are not what is measured
    reference_csm(patches[0][:, :32, :32])

    bench_batch(patches, source, args.batch, args.repeats)
    scene = make_scene(patches, args.scene)
    fast = bench_scene(scene, args.repeats)
    bench_windowed(scene, fast, [int(w) for w in args.windows.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
