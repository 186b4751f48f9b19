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
    summary = predict_scene(
        args.child,
        args.out,
        str(weights),
        tile=TILE,
        overlap=OVERLAP,
        batch_size=BATCH,
        device=args.device,
        precision=args.precision,
        progress=False,
    )
    summary["rss_before_mib"] = rss0
    summary["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(summary))


def run_child(scene: Path, out: Path, cfg: dict, device: str, precision: str) -> dict:
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
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed:\n{proc.stdout}\n{proc.stderr}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def tile_pixels(size: int) -> int:
    """Tile pixels the predictor computes for a ``size``-square scene (its own plan)."""
    from cloudfree.predict.scene import choose_window
    from cloudfree.predict.tiling import axis_positions, fit_tile, windows

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
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cfg", default=json.dumps(SMALL), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import torch

    from cloudfree.evaluate.methods import resolve_device

    device = str(resolve_device(args.device))
    default = [1000, 4000] if args.quick else [1000, 4000, 10980]
    sizes = default if args.sizes is None else args.sizes  # `--sizes` alone: full model only
    print(
        f"torch {torch.__version__}, device {device}, {os.cpu_count()} CPU cores, "
        f"tile {TILE}, overlap {OVERLAP}, batch {BATCH}, precision {args.precision}"
    )
    print(f"small model: DSen2-CR no-SAR {SMALL}; peak memory = peak RSS of a child process")
    print(
        f"model alone = batches of {BATCH}x{TILE}x{TILE} in memory, timed just before each scene; "
        "tiles x = tile pixels computed / scene pixels; I/O+blend = share of the time not spent "
        "in the model (time - tile pixels / model throughput)"
    )
    print(
        f"{'scene':>7} {'gen s':>6} {'predict s':>9} {'Mpx/s':>7} {'model Mpx/s':>11} "
        f"{'overhead':>8} {'tiles x':>7} {'I/O+blend':>9} {'RSS before':>10} {'peak RSS':>9}"
    )
    with tempfile.TemporaryDirectory(prefix="cloudfree-bench-") as tmp:
        for size in sizes:
            t = time.perf_counter()
            scene = make_scene(Path(tmp) / f"scene_{size}.tif", size)
            gen = time.perf_counter() - t
            model_mpx = model_throughput(SMALL, device, TILE, BATCH, 3 if device == "cpu" else 20)
            res = run_child(scene, Path(tmp) / f"out_{size}.tif", SMALL, device, args.precision)
            overhead = 1 - res["mpx_per_s"] / model_mpx
            redundancy = res["tile_pixels"] / (size * size)
            not_model = 1 - res["tile_pixels"] / 1e6 / model_mpx / res["seconds"]
            print(
                f"{size:>7} {gen:6.1f} {res['seconds']:9.1f} {res['mpx_per_s']:7.3f} "
                f"{model_mpx:11.3f} {100 * overhead:7.1f}% {redundancy:7.3f} "
                f"{100 * not_model:8.1f}% {res['rss_before_mib']:6.0f} MiB "
                f"{res['peak_rss_mib']:5.0f} MiB",
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
