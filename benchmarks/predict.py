"""Whole-scene prediction: throughput and peak memory of ``predict_scene`` against the model alone.

For a small DSen2-CR (B2 F16, no SAR, random He weights) on synthetic 13-band uint16 scenes of
1000, 4000 and 10980 px a side (generated here as tiled, deflate-compressed GeoTIFFs, window by
window, in a temporary folder), it prints:

- the full ``predict_scene`` throughput (scene megapixels / wall time: reading, tiling with
  overlap, the model, blending, writing the compressed output and its overviews);
- the model's own throughput on the same pixels without I/O and tiling: batches of
  ``tile x tile`` random inputs already in memory, the same batch size, timed on its own;
- the overhead, ``1 - predict / model``, and how much of it the tile overlap alone explains
  (``tile pixels computed / scene pixels``, counted by the predictor);
- the peak memory of each scene's prediction: the peak RSS (``resource.getrusage``
  ``ru_maxrss``) of a fresh child process that only loads the model and predicts that scene,
  next to its RSS before predicting (interpreter + torch + model).

Then the full DSen2-CR (B16 F256, 18.9M parameters) is timed on a few tiles and its time for a
10980 x 10980 L1C tile projected (tile pixels the predictor computes for that scene / measured
model throughput, I/O excluded: it is noise at that speed). On CUDA the full model is also
run on a real 10980 scene, fp32 and bf16.

    .venv/bin/python benchmarks/predict.py --quick   # 1k and 4k, ~2 min on 2 cores
    .venv/bin/python benchmarks/predict.py           # 1k, 4k and 10980
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SMALL = {"num_layers": 2, "feature_size": 16}
FULL = {"num_layers": 16, "feature_size": 256}
TILE, OVERLAP, BATCH = 256, 32, 8


def make_scene(path: Path, size: int, seed: int = 0) -> Path:
    """A ``size x size`` 13-band uint16 L1C-like scene, tiled 512, written 1024 px at a time."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    prof = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=13,
        dtype="uint16",
        crs="EPSG:32633",
        transform=from_origin(300000.0, 5000000.0, 10.0, 10.0),
        nodata=0,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        zlevel=1,
        BIGTIFF="IF_SAFER",
    )
    rng = np.random.default_rng(seed)
    gain = (1 + 0.05 * np.arange(13, dtype=np.float32))[:, None, None]
    with rasterio.open(path, "w", **prof) as ds:
        for r in range(0, size, 1024):
            for c in range(0, size, 1024):
                h, w = min(1024, size - r), min(1024, size - c)
                y, x = np.mgrid[r : r + h, c : c + w].astype(np.float32)
                base = 1200 + 400 * np.sin(x / 37.0) * np.cos(y / 53.0)
                noise = rng.integers(0, 200, (13, h, w), dtype=np.uint16)
                ds.write((base[None] * gain).astype(np.uint16) + noise, window=Window(c, r, w, h))
    return path


def model_throughput(cfg: dict, device: str, tile: int, batch: int, repeats: int) -> float:
    """Mpx/s of the model alone: ``repeats`` timed forward passes of (batch, 13, tile, tile)."""
    import torch

    from cloudfree.models import build_model
    from cloudfree.models.runtime import inference_context, prepare_for_inference

    torch.manual_seed(0)
    dev = torch.device(device)
    model = prepare_for_inference(build_model("dsen2cr-nosar", **cfg), dev)
    x = torch.rand(batch, 13, tile, tile, device=dev) * 2
    with inference_context(dev):
        model(x)  # warm-up (NNPACK / cuDNN initialisation)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(repeats):
            model(x).cpu()
        if dev.type == "cuda":
            torch.cuda.synchronize()
    return repeats * batch * tile * tile / 1e6 / (time.perf_counter() - t)


def child(args: argparse.Namespace) -> None:
    """Run in a fresh process: load the model, predict one scene, print JSON with peak RSS."""
    import resource

    import torch

    from cloudfree.models import build_model, save_weights
    from cloudfree.predict.scene import predict_scene

    torch.manual_seed(0)
    weights = Path(args.out).with_suffix(".safetensors")
    save_weights(build_model("dsen2cr-nosar", **json.loads(args.cfg)), weights)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fixed = {} if args.auto else {"tile": TILE, "overlap": OVERLAP, "batch_size": BATCH}
    summary = predict_scene(
        args.child,
        args.out,
        str(weights),
        **fixed,
        device=args.device,
        precision=args.precision,
        progress=False,
    )
    summary["rss_before_mib"] = rss0
    summary["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(summary))


def run_child(
    scene: Path, out: Path, cfg: dict, device: str, precision: str, auto: bool = False
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(scene),
        "--out",
        str(out),
        "--cfg",
        json.dumps(cfg),
        "--device",
        device,
        "--precision",
        precision,
        *(["--auto"] if auto else []),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed:\n{proc.stdout}\n{proc.stderr}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def tile_pixels(size: int) -> int:
    """Tile pixels the predictor computes for a ``size``-square scene (its own plan)."""
    from cloudfree.predict.scene import choose_window
    from cloudfree.predict.tiling import axis_positions, fit_tile
    from cloudfree.windows import windows

    halo = OVERLAP // 2
    win = choose_window(TILE, OVERLAP, halo)
    total = 0
    for _, _, h, w in windows(size, size, win):
        th, tw = fit_tile(h + 2 * halo, TILE, OVERLAP), fit_tile(w + 2 * halo, TILE, OVERLAP)
        n = len(axis_positions(h + 2 * halo, th, OVERLAP)) * len(
            axis_positions(w + 2 * halo, tw, OVERLAP)
        )
        total += n * th * tw
    return total


REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sen1floods11"


def real_scene(device: str, precision: str) -> None:
    """The full DSen2-CR (B16 F256, SAR, random He weights, seed 0) on the real 512 x 512
    Sen1Floods11 scene with simulated clouds: ``predict_scene`` with its default plan against
    the model alone on the scene's pixels, and its output against the whole image's."""
    import resource

    import torch

    from cloudfree.bands import DSEN2CR
    from cloudfree.data.preprocess import normalize_s1, normalize_s2
    from cloudfree.data.synthetic.clouds import simulate_clouds
    from cloudfree.io import read_raster, write_raster
    from cloudfree.models import build_model, save_weights
    from cloudfree.models.runtime import inference_context, prepare_for_inference
    from cloudfree.predict.plan import plan_tiles
    from cloudfree.predict.scene import predict_scene
    from cloudfree.predict.tiling import blend_margin
    from cloudfree.windows import pad_reflect

    s2_path, s1_path = REAL / "Spain_7370579_S2Hand.tif", REAL / "Spain_7370579_S1Hand.tif"
    if not s2_path.is_file():
        print(f"skipped: {s2_path} not found")
        return
    clear, meta = read_raster(s2_path)
    cloudy, _ = simulate_clouds(clear.astype(np.float32), np.random.default_rng(0), 0.4)
    cloudy = np.clip(cloudy, 1, 10000).astype(clear.dtype)  # 0 is the file's nodata
    s1 = np.clip(np.nan_to_num(read_raster(s1_path)[0], nan=-25.0), -40.0, 10.0)
    torch.manual_seed(0)
    dev = torch.device(device)
    model = build_model("dsen2cr", **FULL)
    with tempfile.TemporaryDirectory(prefix="cloudfree-bench-") as tmp:
        scene = write_raster(Path(tmp) / "cloudy.tif", cloudy, meta)
        s1_meta = dataclasses.replace(meta, nodata=None)  # 0 dB is a backscatter, not nodata
        s1_file = write_raster(Path(tmp) / "s1.tif", s1.astype(np.float32), s1_meta)
        weights = save_weights(model, Path(tmp) / "full.safetensors")
        net = prepare_for_inference(model, dev)
        h, w = cloudy.shape[1:]
        print(f"full DSen2-CR {FULL} with SAR on {device}; real scene {s2_path.name} {h}x{w} "
              "(Sen1Floods11, simulated clouds 40 %)")  # fmt: skip

        def forward(x2: np.ndarray, x1: np.ndarray) -> tuple[np.ndarray, float]:
            a = torch.from_numpy(normalize_s2(x2, DSEN2CR))[None].to(dev)
            b = torch.from_numpy(normalize_s1(x1, DSEN2CR))[None].to(dev)
            with inference_context(dev, precision):
                t = time.perf_counter()
                out = net(a, b).float().cpu().numpy()[0]
            return out * DSEN2CR.s2_scale, time.perf_counter() - t

        _, t_model = forward(cloudy, s1)
        print(f"  model alone on the scene's {h}x{w} pixels, one forward: {t_model:.1f} s")
        runs = {}
        for label, kw in (("defaults, first run (edge measured)", {}),
                          ("defaults (plan cached)", {}), ("tile 256, planned overlap",
                                                           {"tile": 256})):  # fmt: skip
            t = time.perf_counter()
            res = predict_scene(scene, Path(tmp) / f"out{len(runs)}.tif", str(weights), s1_file,
                                device=device, precision=precision, progress=False, **kw)  # fmt: skip
            res["wall"] = time.perf_counter() - t
            runs[label] = res
        # The reflect pad predict gives the scene border (its window halo: margin + 1).
        halo = blend_margin(runs["defaults (plan cached)"]["overlap"]) + 1
        padded2 = pad_reflect(cloudy.astype(np.float32), halo, halo, halo, halo)
        padded1 = pad_reflect(s1.astype(np.float32), halo, halo, halo, halo)
        ref, _ = forward(padded2, padded1)
        info = np.iinfo(clear.dtype)  # predict rounds and clips to the input's dtype
        ref = np.clip(np.rint(ref[:, halo : halo + h, halo : halo + w]), info.min, info.max)
        nodata = np.all(clear == 0, axis=0)
        for label, res in runs.items():
            out = read_raster(res["out"])[0].astype(np.float64)
            diff = np.abs(out - ref)[:, ~nodata]
            print(f"  predict, {label}: {res['wall']:.1f} s (overhead {res['wall'] / t_model - 1:+.1%}"
                  f"); tile {res['tile']}, overlap {res['overlap']}, batch {res['batch_size']}, "
                  f"{res['tiles']} tiles, {res['tile_pixels'] / (h * w):.3f}x the pixels; "
                  f"vs whole image: max {diff.max():.0f} DN, {np.mean(diff > 0):.2%} of "
                  "values differ")  # fmt: skip
        plan = plan_tiles(load_for_plan(weights, device), dev)
        print(f"  plan: {plan.reason}")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def load_for_plan(weights: Path, device: str):  # noqa: ANN201
    from cloudfree.methods.load import load_method

    return load_method(str(weights), device=device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 4k scenes only")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=None,
        help="scene sides to run (none: only the full-model projection)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--no-full", action="store_true", help="skip the full-model projection")
    parser.add_argument(
        "--real",
        action="store_true",
        help="only the full model on the real 512 x 512 scene of ../shared/data (defaults "
        "against the model alone; tiled vs whole-image output)",
    )
    parser.add_argument(
        "--fixed",
        action="store_true",
        help="the old fixed tiling (tile 256, overlap 32, batch 8) instead of the default plan",
    )
    parser.add_argument("--auto", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cfg", default=json.dumps(SMALL), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import torch

    from cloudfree.models.runtime import resolve_device

    device = str(resolve_device(args.device))
    if args.real:
        real_scene(device, args.precision)
        return
    default = [1000, 4000] if args.quick else [1000, 4000, 10980]
    sizes = default if args.sizes is None else args.sizes  # `--sizes` alone: full model only
    tiling = (f"tile {TILE}, overlap {OVERLAP}, batch {BATCH}" if args.fixed
              else "default plan (cloudfree.predict.plan)")  # fmt: skip
    print(
        f"torch {torch.__version__}, device {device}, {os.cpu_count()} CPU cores, "
        f"{tiling}, precision {args.precision}"
    )
    print(f"small model: DSen2-CR no-SAR {SMALL}; peak memory = peak RSS of a child process")
    print(
        "model alone = the model on inputs in memory of the predictor's tile side (<= 1024), "
        "timed right after each scene; "
        "tiles x = tile pixels computed / scene pixels; I/O+blend = share of the time not spent "
        "in the model (time - tile pixels / model throughput)"
    )
    print(
        f"{'scene':>7} {'gen s':>6} {'predict s':>9} {'Mpx/s':>7} {'model Mpx/s':>11} "
        f"{'overhead':>8} {'tiles x':>7} {'I/O+blend':>9} {'RSS before':>10} {'peak RSS':>9} "
        "tile/overlap"
    )
    with tempfile.TemporaryDirectory(prefix="cloudfree-bench-") as tmp:
        for size in sizes:
            t = time.perf_counter()
            scene = make_scene(Path(tmp) / f"scene_{size}.tif", size)
            gen = time.perf_counter() - t
            res = run_child(scene, Path(tmp) / f"out_{size}.tif", SMALL, device, args.precision,
                            auto=not args.fixed)  # fmt: skip
            # The model alone on the tiles the predictor used (its plan, or the fixed ones).
            side = min(res["tile"], 1024)
            model_mpx = model_throughput(SMALL, device, side, res["batch_size"] if side == 256
                                         else 1, 3 if device == "cpu" else 20)  # fmt: skip
            overhead = 1 - res["mpx_per_s"] / model_mpx
            redundancy = res["tile_pixels"] / (size * size)
            not_model = 1 - res["tile_pixels"] / 1e6 / model_mpx / res["seconds"]
            print(
                f"{size:>7} {gen:6.1f} {res['seconds']:9.1f} {res['mpx_per_s']:7.3f} "
                f"{model_mpx:11.3f} {100 * overhead:7.1f}% {redundancy:7.3f} "
                f"{100 * not_model:8.1f}% {res['rss_before_mib']:6.0f} MiB "
                f"{res['peak_rss_mib']:5.0f} MiB {res['tile']}/{res['overlap']}",
                flush=True,
            )
            for f in Path(tmp).glob(f"*_{size}.*"):
                f.unlink()
    if args.no_full:
        return
    full_tile = 256
    full_mpx = model_throughput(
        FULL,
        device,
        full_tile,
        1 if device == "cpu" else BATCH,
        repeats=2 if device == "cpu" else 10,
    )
    px = tile_pixels(10980)
    print(
        f"full DSen2-CR {FULL} on {device}: {full_mpx:.4f} Mpx/s on {full_tile}x{full_tile} "
        f"tiles; a 10980 x 10980 scene computes {px / 1e6:.1f} Mpx of tiles "
        f"({px / 10980**2:.3f}x the scene): projected {px / 1e6 / full_mpx / 3600:.2f} h "
        "(model only, I/O excluded)"
    )
    if device.startswith("cuda"):
        with tempfile.TemporaryDirectory(prefix="cloudfree-bench-") as tmp:
            scene = make_scene(Path(tmp) / "scene_10980.tif", 10980)
            for precision in ("fp32", "bf16"):
                res = run_child(scene, Path(tmp) / f"out_{precision}.tif", FULL, device, precision)
                print(
                    f"full DSen2-CR, measured on a 10980 scene, {precision}: "
                    f"{res['seconds']:.1f} s ({res['mpx_per_s']:.2f} Mpx/s)"
                )


if __name__ == "__main__":
    main()
