"""Quality, speed and memory of the cloud/shadow maskers of the whole-scene commands.

Every masker ``cloudfree mask`` / ``predict`` / ``inpaint`` offer (``--mask-backend``: the
default ``ukis``, the paper's ``dsen2cr``, ``s2cloudless``), run through ``mask_scene`` as a
user runs them, beside ukis-csmask alone (its own ``CSmask`` class on the image averaged to
30 m, as its README does) and the candidates that were measured and not taken (the 6-band
model, a geometric shadow step, the union with s2cloudless), on the real data of
``../shared/data``:

1. **labelled**: the two labelled quarters of ukis-csmask's test scene (``masks/``): per-class
   IoU, precision and recall of cloud and shadow, per quarter and pooled, for the patches as
   given (30 m pixels) and as a 10 m file (each pixel repeated 3 x 3, what a user holds).
   ukis-csmask's own models may have seen this scene in training: optimistic for all of them.
   The DSen2-CR mask and s2cloudless need bands these patches lack (B1, B10; B5, B8A, B9).
2. **scenes**: fraction masked on the clear real scenes (eo-learn 2-4, Sen1Floods11, the six
   BigEarthNet L2A patches), cloud fraction found on the fully cloudy ones (eo-learn 0-1); and
   the SEN12MS-CR "cloud-free" targets (some hazy: a known quirk of the dataset).
3. **rims**: how far the haze rim of a cloud and the penumbra of a shadow reach beyond the
   CNN's mask on the real cloudy patches: blue (B2) above, NIR (B8) below the ground 300-500 m
   away, ring by ring (the evidence for the default ``--dilate``).
4. **speed**: seconds per 1000 x 1000 px scene (real patches tiled) for each masker.
5. **memory**: peak RSS and time of ``cloudfree mask`` on a whole 10980 x 10980 tile against a
   4096 x 4096 scene (already larger than GDAL's block cache and with a block in its middle),
   each in a fresh process: flat memory.
6. **hybrids**: ``evaluate`` of the bundled no-SAR hybrid and the fills it starts from
   (``mask-fill``, ``push-pull``) on the 19 real pairs it never saw, given the paper's mask or
   the default one (grown or not); the metrics' areas stay the paper's mask's.

Run from the repository root: ``.venv/bin/python benchmarks/mask.py`` (``--parts`` to choose,
``--tile 10980``); needs the ``masks`` extra and ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.bands import S2_BANDS, S2_L2A_BANDS

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
UKIS_6 = ("B2", "B3", "B4", "B8", "B11", "B12")
_UKIS_NAMES = {"B2": "blue", "B3": "green", "B4": "red", "B8": "nir", "B11": "swir16",
               "B12": "swir22"}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# files and maskers


def write_tif(path: Path, dn: np.ndarray, names: tuple[str, ...], gsd: float) -> Path:
    """A georeferenced uint16 GeoTIFF of ``dn`` (bands, H, W) with band descriptions."""
    import rasterio
    from rasterio.transform import from_origin

    profile = dict(
        driver="GTiff", width=dn.shape[2], height=dn.shape[1], count=dn.shape[0],
        dtype="uint16", crs="EPSG:32633", transform=from_origin(500000, 5100000, gsd, gsd),
        tiled=True, blockxsize=256, blockysize=256,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.clip(np.rint(dn), 1, 65535).astype(np.uint16))
        for i, n in enumerate(names, 1):
            ds.set_band_description(i, n)
    return path


#: Where the masks are written (a temporary folder set by main; never beside the inputs).
OUT = Path(tempfile.gettempdir())


def run_mask(tif: Path, backend: str, dilate: str | None = None, **kw: Any) -> np.ndarray:
    """The mask ``cloudfree mask`` writes (uint8 (H, W))."""
    import rasterio

    from cloudfree.masks.scene import mask_scene

    out = OUT / f"{tif.stem}_{backend}_{dilate}.tif"
    mask_scene(tif, out, backend=backend, dilate=dilate, **kw)
    with rasterio.open(out) as ds:
        return ds.read(1)


def ukis_alone(refl: dict[str, np.ndarray], bands: int, level: str, factor: int) -> np.ndarray:
    """ukis-csmask's own CSmask on the image averaged to 30 m (``factor`` px per cell), as its
    README runs it, the classes repeated back to the image's pixels."""
    from ukis_csmask.mask import CSmask

    from cloudfree.masks.ukis import block_mean

    names = UKIS_6[:bands]
    x = np.stack([refl[b] for b in names]).astype(np.float32)
    h, w = x.shape[1:]
    if factor > 1:
        x = block_mean(x, factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "smaller than the internal tiling size"
        csm = CSmask(
            img=np.ascontiguousarray(np.moveaxis(x, 0, -1)), band_order=[_UKIS_NAMES[b] for b in names],
            product_level=level, providers=["CPUExecutionProvider"],
        ).csm[..., 0]  # fmt: skip
    return np.kron(csm, np.ones((factor, factor), np.uint8))[:h, :w] if factor > 1 else csm


def _shift(m: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(m)
    h, w = m.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = m[ys, xs]
    return out


def geometric_shadows(mask: np.ndarray, nir: np.ndarray, reach_px: int, mode: str) -> np.ndarray:
    """The shadow step of Fmask / Earth Engine's s2cloudless tutorial, with the sun direction
    found from the image (the direction in which the projected clouds are darkest in NIR):
    ``restrict`` keeps the mask's shadows only inside the projected clouds; ``add`` also calls
    dark NIR pixels (lowest decile of the clear ones) there shadow."""
    cloud = mask == 1

    def zone(theta: float, step: int) -> np.ndarray:
        z = np.zeros_like(cloud)
        for d in range(step, reach_px + 1, step):
            z |= _shift(cloud, round(d * np.sin(theta)), round(d * np.cos(theta)))
        return z & ~cloud

    best = min(
        (nir[z].mean(), deg)
        for deg in range(0, 360, 10)
        if (z := zone(np.deg2rad(deg), max(1, reach_px // 10))).sum() > 50
    )[1]
    z = zone(np.deg2rad(best), 3)
    out = mask.copy()
    if mode == "restrict":
        out[(mask == 2) & ~z] = 0
    else:
        out[(nir < np.percentile(nir[~cloud], 10)) & z & (mask == 0)] = 2
    return out


def scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    out = {}
    for k, name in ((1, "cloud"), (2, "shadow")):
        p, t = pred == k, truth == k
        tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
        out[f"{name}_iou"] = tp / max(tp + fp + fn, 1)
        out[f"{name}_precision"] = tp / max(tp + fp, 1)
        out[f"{name}_recall"] = tp / max(tp + fn, 1)
    return out


# ---------------------------------------------------------------------------------------------
# 1. labelled patches


def labelled() -> list[tuple[str, dict[str, np.ndarray], np.ndarray]]:
    out = []
    for q in ("q00", "q11"):
        z = np.load(DATA / "masks" / f"ukis_sentinel2_{q}.npz")
        img, m = z["img"], z["msk"][..., 0]
        refl = {b: img[..., i] for i, b in enumerate(UKIS_6)}
        truth = np.where(m == 4, 1, np.where(m == 0, 2, 0)).astype(np.uint8)  # 0 = shadow
        out.append((q, refl, truth))
    return out


def bench_labelled(tmp: Path) -> dict[str, Any]:
    print("\n[1] labelled patches (ukis-csmask's test scene, 2 quarters): IoU / precision / "
          "recall")  # fmt: skip
    results: dict[str, Any] = {}
    for res in ("30 m (as given)", "10 m (3x3 repeated)"):
        k = 1 if res.startswith("30") else 3
        gsd = 30.0 if k == 1 else 10.0
        rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for q, refl, truth in labelled():
            r = {b: np.kron(v, np.ones((k, k), np.float32)) for b, v in refl.items()}
            t = np.kron(truth, np.ones((k, k), np.uint8))
            tif = write_tif(tmp / f"lab_{q}_{k}.tif", np.stack([r[b] for b in UKIS_6]) * 1e4,
                            UKIS_6, gsd)  # fmt: skip
            default = run_mask(tif, "ukis", dilate="0")
            cands: dict[str, np.ndarray] = {
                "ukis (default, not grown)": default,
                "ukis (default, grown 60 m)": run_mask(tif, "ukis"),
                "ukis-csmask alone, 4 bands": ukis_alone(r, 4, "l1c", k),
                "ukis-csmask alone, 6 bands": ukis_alone(r, 6, "l1c", k),
                "default + geometric shadows, restrict": geometric_shadows(
                    default, r["B8"], 50 * k, "restrict"),
                "default + geometric shadows, add": geometric_shadows(
                    default, r["B8"], 50 * k, "add"),
            }  # fmt: skip
            for name, pred in cands.items():
                rows.setdefault(name, []).append((pred, t))
        print(f"  input at {res}")
        print(f"  {'masker':40s} {'cloud IoU (q00 q11 pooled)':28s} P     R     "
              f"{'shadow IoU (q00 q11 pooled)':28s} P     R")  # fmt: skip
        table = {}
        for name, pairs in rows.items():
            per = [scores(p, t) for p, t in pairs]
            pooled = scores(np.concatenate([p.ravel() for p, _ in pairs]),
                            np.concatenate([t.ravel() for _, t in pairs]))  # fmt: skip
            table[name] = {"per_quarter": per, "pooled": pooled}
            print(
                f"  {name:40s} {per[0]['cloud_iou']:.3f} {per[1]['cloud_iou']:.3f} "
                f"{pooled['cloud_iou']:.3f}            {pooled['cloud_precision']:.3f} "
                f"{pooled['cloud_recall']:.3f} {per[0]['shadow_iou']:.3f} "
                f"{per[1]['shadow_iou']:.3f} {pooled['shadow_iou']:.3f}            "
                f"{pooled['shadow_precision']:.3f} {pooled['shadow_recall']:.3f}"
            )
        results[res] = table
    print("  dsen2cr, s2cloudless: not computable (the patches hold B2, B3, B4, B8, B11, B12; "
          "they need B1 and B10, and s2cloudless also B5, B8A, B9)")  # fmt: skip
    return results


# ---------------------------------------------------------------------------------------------
# 2. real scenes


def scene_list() -> list[tuple[str, Path, str, str]]:
    out = []
    for i in range(5):
        kind = "cloudy" if i < 2 else "clear"
        out.append((f"eo-learn {i}", DATA / f"eolearn/reference_scene_{i}.tif", kind, "l1c"))
    out.append(("Sen1Floods11", DATA / "sen1floods11/Spain_7370579_S2Hand.tif", "clear", "l1c"))
    for p in sorted((DATA / "bigearthnet/s2_l2a").glob("*.tif")):
        date, tile = p.stem.split("_")[2][:8], "_".join(p.stem.split("_")[-2:])
        out.append((f"BigEarthNet {date} {tile}", p, "clear", "l2a"))
    return out


def _read(path: Path) -> dict[str, np.ndarray]:
    import rasterio

    with rasterio.open(path) as ds:
        a = ds.read().astype(np.float32)
    names = S2_BANDS if a.shape[0] == 13 else S2_L2A_BANDS
    return {n: a[i] for i, n in enumerate(names)}


def scene_maskers(path: Path, level: str) -> dict[str, np.ndarray | None]:
    """Every masker's mask of a real scene file (None where it cannot run: L2A)."""
    from cloudfree.masks.ukis import coarse_factor

    dn = _read(path)
    refl = {b: v / 1e4 for b, v in dn.items()}
    l1c = level == "l1c"
    out: dict[str, np.ndarray | None] = {
        "dsen2cr": run_mask(path, "dsen2cr") if l1c else None,
        "s2cloudless": run_mask(path, "s2cloudless") if l1c else None,
        "ukis default (not grown)": run_mask(path, "ukis", dilate="0"),
        "ukis default (grown 60 m)": run_mask(path, "ukis"),
        "ukis-csmask alone, 4 bands": ukis_alone(refl, 4, level, coarse_factor(10.0)),
        "ukis-csmask alone, 6 bands": ukis_alone(refl, 6, level, coarse_factor(10.0)),
    }
    u, s = out["ukis default (not grown)"], out["s2cloudless"]
    out["ukis or s2cloudless (not grown)"] = None if s is None or u is None else np.maximum(u, s)
    return out


def bench_scenes(tmp: Path) -> dict[str, Any]:
    print("\n[2] real scenes: clear ones, % masked (cloud or shadow); cloud-covered ones, "
          "% cloud found")  # fmt: skip
    results: dict[str, Any] = {}
    for name, path, kind, level in scene_list():
        masks = scene_maskers(path, level)
        results[name] = {"kind": kind, "level": level}
        for m, mask in masks.items():
            if mask is None:
                results[name][m] = None
                continue
            results[name][m] = float((mask > 0).mean() if kind == "clear" else (mask == 1).mean())
    names = list(next(iter(results.values())))[2:]
    print(f"  {'scene':24s} " + " ".join(f"{n[:16]:>16s}" for n in names))
    for scene, row in results.items():
        cells = " ".join(
            f"{'n/a (L2A)':>16s}" if row[n] is None else f"{100 * row[n]:15.1f}%" for n in names
        )
        print(f"  {scene + ' (' + row['kind'] + ')':24s} {cells}")
    for kind in ("clear", "cloudy"):
        agg = {n: [r[n] for r in results.values() if r["kind"] == kind and r[n] is not None]
               for n in names}  # fmt: skip
        worst = {n: (max(v) if kind == "clear" else min(v)) for n, v in agg.items() if v}
        label = "worst clear (max)" if kind == "clear" else "worst cloudy (min)"
        print(f"  {label:24s} " + " ".join(f"{100 * worst[n]:15.1f}%" for n in names))

    print("\n    SEN12MS-CR 'cloud-free' targets (41 patches of 256 px; some hazy or snowy): "
          "% masked, mean / max")  # fmt: skip
    fr: dict[str, list[float]] = {}
    for p in sorted((DATA / "sen12mscr").glob("*_s2/*/*.tif")):
        for m, mask in scene_maskers(p, "l1c").items():
            if mask is not None:
                fr.setdefault(m, []).append(float((mask > 0).mean()))
    for m, v in fr.items():
        print(f"    {m:34s} {100 * np.mean(v):5.1f} % / {100 * np.max(v):5.1f} %")
    results["sen12mscr_targets"] = {m: {"mean": float(np.mean(v)), "max": float(np.max(v))}
                                    for m, v in fr.items()}  # fmt: skip
    return results


# ---------------------------------------------------------------------------------------------
# 3. rims


RINGS = ((0, 10), (10, 20), (20, 30), (30, 40), (40, 60), (60, 80), (80, 100), (100, 150))


def bench_rims(tmp: Path) -> dict[str, Any]:
    from scipy.ndimage import distance_transform_edt

    print("\n[3] beyond the CNN's mask (not grown) on the real cloudy SEN12MS-CR patches and the "
          "labelled quarters: blue above / NIR below the ground 300-500 m away, median")  # fmt: skip
    rows: dict[str, list[list[float]]] = {"cloud: B2 excess": [], "shadow: B8 deficit": []}
    images = []
    for p in sorted((DATA / "sen12mscr").glob("*_s2_cloudy/*/*.tif")):
        images.append((write_tif(tmp / p.name, np.stack(list(_read(p).values())), S2_BANDS, 10.0),
                       _read(p), 10.0))  # fmt: skip
    for q, refl, _ in labelled():
        dn = {b: v * 1e4 for b, v in refl.items()}
        images.append((write_tif(tmp / f"rim_{q}.tif", np.stack(list(dn.values())), UKIS_6, 30.0),
                       dn, 30.0))  # fmt: skip
    for tif, dn, gsd in images:
        mask = run_mask(tif, "ukis", dilate="0")
        for cls, band, key in ((1, "B2", "cloud: B2 excess"), (2, "B8", "shadow: B8 deficit")):
            if (mask == cls).mean() < 0.01 or (mask == 0).mean() < 0.2:
                continue
            d = distance_transform_edt(mask != cls) * gsd  # metres from the class
            clear = mask == 0
            ground = clear & (d > 300) & (d <= 500)
            if ground.sum() < 100:
                continue
            ref = dn[band][ground].mean()
            rows[key].append([
                dn[band][ring].mean() / ref - 1 if (ring := clear & (d > lo) & (d <= hi)).sum() > 20
                else np.nan for lo, hi in RINGS
            ])  # fmt: skip
    out = {}
    for key, r in rows.items():
        med = np.nanmedian(np.array(r), axis=0)
        out[key] = {f"{lo}-{hi} m": float(v) for (lo, hi), v in zip(RINGS, med, strict=True)}
        print(f"  {key} (n={len(r)}): " + "  ".join(f"{k} {100 * v:+.1f}%" for k, v in
                                                    out[key].items()))  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# 4. speed and 5. memory


def mosaic(side: int, seed: int) -> np.ndarray:
    """(13, side, side) uint16 tiled from the real SEN12MS-CR patches (cloudy and clear),
    flipped and rotated at random."""
    import rasterio

    patches = []
    for p in sorted((DATA / "sen12mscr").glob("*_s2*/*/*.tif")):
        with rasterio.open(p) as ds:
            patches.append(ds.read())
    rng = np.random.default_rng(seed)
    k = -(-side // 256)
    rows = []
    for _ in range(k):
        row = []
        for _ in range(k):
            p = patches[rng.integers(len(patches))]
            p = p[:, :, ::-1] if rng.random() < 0.5 else p
            row.append(np.rot90(p, int(rng.integers(4)), axes=(1, 2)))
        rows.append(np.concatenate(row, axis=2))
    return np.ascontiguousarray(np.concatenate(rows, axis=1)[:, :side, :side])


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_speed(tmp: Path, repeats: int) -> dict[str, float]:
    print("\n[4] seconds per 1000 x 1000 px (13-band L1C GeoTIFF tiled from real patches; "
          f"best of {repeats})")  # fmt: skip
    tif = write_tif(tmp / "speed.tif", mosaic(1000, 0).astype(np.float32), S2_BANDS, 10.0)
    small = write_tif(tmp / "speed_small.tif", mosaic(512, 1).astype(np.float32), S2_BANDS, 10.0)
    out = {}
    runs = [("dsen2cr", tif, 1.0), ("s2cloudless", tif, 1.0), ("ukis (30 m)", tif, 1.0),
            ("ukis (10 m + 30 m: scenes < 768 px)", small, 1e6 / 512**2)]  # fmt: skip
    for name, path, scale in runs:
        backend = name.split()[0]
        run_mask(path, backend)  # warm: model loading is not what is measured
        out[name] = best_of(lambda p=path, b=backend: run_mask(p, b), repeats) * scale
        print(f"  {name:38s} {out[name]:6.2f} s")
    return out


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def memory_child(tif: str, out: str) -> None:
    """In a fresh process: time and peak RSS of ``cloudfree mask`` (the default masker)."""
    from cloudfree.masks.scene import mask_scene
    from cloudfree.masks.ukis import load_model

    load_model("l1c")
    rss0 = peak_rss()
    t0 = time.perf_counter()
    stats = mask_scene(tif, out)
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - t0,
                "rss0": rss0,
                "rss": peak_rss(),
                "cloud": stats["cloud_fraction"],
                "shadow": stats["shadow_fraction"],
            }
        )
    )


def write_big(path: Path, side: int) -> Path:
    """A (B2, B3, B4, B8) uint16 GeoTIFF of ``side`` px tiled from real patches, written in
    strips of 1024 rows (memory: one strip)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    idx = [S2_BANDS.index(b) for b in ("B2", "B3", "B4", "B8")]
    profile = dict(driver="GTiff", width=side, height=side, count=4, dtype="uint16",
                   crs="EPSG:32633", transform=from_origin(500000, 5100000, 10, 10),
                   tiled=True, blockxsize=512, blockysize=512, BIGTIFF="IF_SAFER")  # fmt: skip
    strip = mosaic(1024, 2)[idx]
    row_tiles = np.concatenate([strip] * (-(-side // 1024)), axis=2)[:, :, :side]
    with rasterio.open(path, "w", **profile) as ds:
        for i, name in enumerate(("B2", "B3", "B4", "B8"), 1):
            ds.set_band_description(i, name)
        for r in range(0, side, 1024):
            h = min(1024, side - r)
            ds.write(
                np.roll(row_tiles, 257 * (r // 1024), axis=2)[:, :h], window=Window(0, r, side, h)
            )
    return path


def bench_memory(tmp: Path, sides: list[int]) -> dict[str, Any]:
    print("\n[5] cloudfree mask (default masker) on whole scenes, each in a fresh process")
    out = {}
    for side in sides:
        tif = write_big(tmp / f"big_{side}.tif", side)
        cmd = [sys.executable, __file__, "--_child", str(tif), str(tmp / f"big_{side}_mask.tif")]
        res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                         .strip().splitlines()[-1])  # fmt: skip
        out[str(side)] = res
        print(f"  {side:5d} x {side:<5d}: {res['seconds']:7.1f} s ({res['seconds'] / side**2 * 1e6:.2f}"
              f" s/Mpx), peak RSS {res['rss'] / 2**20:6.0f} MiB (after loading the model "
              f"{res['rss0'] / 2**20:.0f} MiB)")  # fmt: skip
        tif.unlink()
    return out


# ---------------------------------------------------------------------------------------------
# 6. the bundled hybrids and their baselines given the new mask


#: The held-out real pairs of the bundled weights (fold A of scripts/train_bundled.sh).
HELD_OUT = (("ROIs1970_fall", 136), ("ROIs1868_summer", 101), ("ROIs1970_fall", 148))


def bench_hybrids(tmp: Path) -> dict[str, Any]:
    """``evaluate`` (protocol paper) of the bundled no-SAR hybrid and the fills it starts from
    on the 19 real pairs it never saw, given the paper's mask, the default mask, and the
    default mask not grown; the metrics' areas are the paper's mask's in every case."""
    import csv

    from cloudfree.evaluate.run import evaluate
    from cloudfree.methods.load import load_method
    from cloudfree.methods.masked import OtherMask

    print("\n[6] the no-SAR hybrid and its baselines on the 19 held-out real pairs, by the mask "
          "they are given (evaluate, protocol paper; areas: the paper's mask)")  # fmt: skip
    splits = tmp / "splits.csv"
    splits.write_text("roi_season,scene,split\n" + "".join(f"{r},{s},test\n" for r, s in HELD_OUT))
    index = tmp / "held_out.csv"
    subprocess.run([sys.executable, "-m", "cloudfree.cli", "index", str(DATA / "sen12mscr"),
                    "--out", str(index), "--splits", str(splits)], check=True,
                   capture_output=True)  # fmt: skip
    masks = {"dsen2cr (paper)": None, "ukis, grown 60 m (default)": None, "ukis, not grown": "0"}
    out: dict[str, Any] = {}
    print(f"  {'method':14s} {'mask':28s} {'MAE (19)':>9s} {'recon':>7s} | "
          f"{'MAE (7 partly clouded)':>22s} {'recon':>7s}")  # fmt: skip
    for name in ("identity", "mask-fill", "push-pull", "hybrid-nosar"):
        for label, dilate in masks.items():
            if name == "identity" and label != "dsen2cr (paper)":
                continue
            method = load_method(name, "cpu")
            if not label.startswith("dsen2cr"):
                method = OtherMask(method, "ukis", dilate=dilate)
            folder = tmp / "eval" / f"{name}_{len(out)}"
            s = evaluate(method, index, folder, split="test", report=False, device="cpu")
            with open(folder / "per_patch.csv", newline="") as f:
                rows = list(csv.DictReader(f))
            # Partly clouded: the paper's mask leaves at least 1 % of the patch clear.
            part = [r for r in rows if float(r["cloud_fraction"]) < 0.99]
            res = {
                "mae": s["metrics"]["mae"], "mae_recon": s["metrics"]["mae_recon"],
                "partly_n": len(part),
                "partly_mae": float(np.mean([float(r["mae"]) for r in part])),
                "partly_recon": float(np.nanmean([float(r["mae_recon"]) for r in part])),
            }  # fmt: skip
            out[f"{name} | {label}"] = res
            print(f"  {name:14s} {label:28s} {res['mae']:9.4f} {res['mae_recon']:7.4f} | "
                  f"{res['partly_mae']:22.4f} {res['partly_recon']:7.4f}")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="labelled,scenes,rims,speed,memory,hybrids",
                    help="comma-separated parts to run")  # fmt: skip
    ap.add_argument("--tile", type=int, default=10980, help="side of the large memory scene")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs (best kept)")
    ap.add_argument("--json", default=None, help="also write every figure here")
    ap.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args._child:
        memory_child(*args._child)
        return 0
    if not DATA.is_dir():
        print(f"needs the real samples at {DATA}")
        return 1
    from cloudfree.masks.ukis import load_model

    print(f"ukis-csmask model {load_model('l1c').version}; {os.cpu_count()} CPUs")
    parts = args.parts.split(",")
    figures: dict[str, Any] = {}
    global OUT
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        OUT = tmp / "masks"
        OUT.mkdir()
        if "labelled" in parts:
            figures["labelled"] = bench_labelled(tmp)
        if "scenes" in parts:
            figures["scenes"] = bench_scenes(tmp)
        if "rims" in parts:
            figures["rims"] = bench_rims(tmp)
        if "speed" in parts:
            figures["speed"] = bench_speed(tmp, args.repeats)
        if "memory" in parts:
            figures["memory"] = bench_memory(tmp, [4096, args.tile])
        if "hybrids" in parts:
            figures["hybrids"] = bench_hybrids(tmp)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
