"""Every GPU figure the project promises, in one run: one table, also written as JSON.

Run by ``benchmarks/gpu.sh`` (under 8 minutes on one H100/H200-class GPU, nothing downloaded):

1. **train step**: the full DSen2-CR (B16 F256, SAR), batch 16 at 128 x 128, CARL loss, the
   paper's NAdam, bf16 autocast + channels_last, torch.compile off and on: step time,
   patches/s, TFLOP/s (3x the forward convolution FLOPs) and MFU against the card's nominal
   dense bf16 peak; the same steps with the loop's per-step host sync (the loss read back
   for the NaN check) to show what that sync costs; and the host-to-device copy of one batch
   as the loop sends it (float32) against int16 (half the bytes).
2. **train loop**: ``cloudfree.train.train`` itself on packed synthetic patches with the GPU
   settings (DataLoader workers, pinned memory): its patches/s against the bare step's.
3. **loader**: the packed DataLoader alone with those settings: batches/s and patches/s.
4. **evaluate**: ``cloudfree.evaluate.evaluate`` of the full model on synthetic 256 px patches.
5. **predict**: ``predict_scene`` on a synthetic 10980 x 10980 scene with its default plan,
   fp32 and bf16: seconds, Mpx/s, peak GPU memory and the output difference between the two.
6. **uncrtaints** (issue 14): the published UnCRtainTS beside the full DSen2-CR on the same
   256 px patches, batch 16: forward patches/s in fp32 (channels_last, TF32 as the library's
   default) and bf16 with the output difference; UnCRtainTS's published training step (Gaussian
   NLL, Adam 1e-3, batch 4 at 256 px); and ``predict_scene`` with it on the 10980 x 10980
   scene (its 256-px tiles), with the predicted standard deviation written too.

``--dry-run`` runs every case with tiny sizes on the CPU in seconds (``tests/test_benchmarks``
keeps it working). Figures go in ``benchmarks/README.md`` with the card's name.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from model import gpu_bf16_peak  # noqa: E402  (benchmarks/model.py: nominal peaks per card)
from predict import make_scene  # noqa: E402

FULL = {"num_layers": 16, "feature_size": 256}
TINY = {"num_layers": 1, "feature_size": 8}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], n: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``n`` calls (synchronised at both ends only)."""
    _sync(device)
    t = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return (time.perf_counter() - t) / n


def train_step(cfg: dict, batch: int, size: int, steps: int, device: torch.device,
               compile_: bool, peak: float | None) -> dict[str, Any]:  # fmt: skip
    """The bare training step (bf16 autocast, channels_last, NAdam), with and without the
    loop's per-step host sync."""
    from cloudfree.config import OptimConfig
    from cloudfree.losses import build_loss
    from cloudfree.models import build_model
    from cloudfree.models.dsen2cr import DSen2CRConfig
    from cloudfree.train.optim import build_optimizer

    torch.manual_seed(0)
    cuda = device.type == "cuda"
    mf = torch.channels_last if cuda else torch.contiguous_format
    model = build_model("dsen2cr", **cfg).to(device, memory_format=mf)
    opt = build_optimizer(model.parameters(), OptimConfig())
    loss_fn = build_loss("carl").to(device)
    net = torch.compile(model) if compile_ else model
    s2 = (torch.rand(batch, 13, size, size, device=device) * 2).to(memory_format=mf)
    s1 = (torch.rand(batch, 2, size, size, device=device) * 2).to(memory_format=mf)
    target = torch.rand(batch, 13, size, size, device=device) * 2
    mask = (torch.rand(batch, size, size, device=device) > 0.5).float()

    def step(sync: bool = False) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            pred = net(s2, s1)
        loss = loss_fn(pred.float(), target, s2.float(), mask)
        loss.backward()
        if sync:
            loss.detach().to(torch.float64).tolist()  # the loop reads the loss every step
        opt.step()
        opt.zero_grad(set_to_none=True)

    t = time.perf_counter()
    for _ in range(3):  # warm-up (cuDNN autotune, compilation)
        step()
    _sync(device)
    warm = time.perf_counter() - t
    sec = _timed(step, steps, device)
    sec_sync = _timed(lambda: step(sync=True), steps, device)
    flops = 3 * DSen2CRConfig(**cfg).conv_flops(size, size) * batch
    tflops = flops / sec / 1e12
    host = {k: v.cpu() for k, v in {"s2": s2, "s1": s1, "s2t": target}.items()}
    if cuda:
        host = {k: v.pin_memory() for k, v in host.items()}
    f32 = _timed(lambda: [v.to(device, non_blocking=True) for v in host.values()], 5, device)
    i16 = {k: (v * 2000).to(torch.int16) for k, v in host.items()}
    if cuda:
        i16 = {k: v.pin_memory() for k, v in i16.items()}
    h2d16 = _timed(lambda: [v.to(device, non_blocking=True) for v in i16.values()], 5, device)
    return {
        "step_s": sec,
        "patches_per_s": batch / sec,
        "tflops": tflops,
        "mfu_pct": None if peak is None else 100 * tflops * 1e12 / (peak * 1e9),
        "step_s_with_host_sync": sec_sync,
        "host_sync_cost_pct": 100 * (sec_sync / sec - 1),
        "warmup_s": warm,
        "h2d_float32_ms": 1e3 * f32,
        "h2d_int16_ms": 1e3 * h2d16,
        "h2d_float32_share_pct": 100 * f32 / sec,
    }


def make_pack(work: Path, n: int, size: int) -> Path:
    """``n`` synthetic ``size`` px triplets, indexed and packed (the GPU run's input)."""
    from cloudfree.data.packed.pack import pack
    from cloudfree.data.release.discover import build_index
    from cloudfree.data.release.index import write_index
    from cloudfree.data.synthetic.release import synthesize

    synthesize(work / "root", n=n, seed=0, size=size)
    write_index(build_index(work / "root"), work / "index.csv")
    pack(work / "index.csv", work / "packed", workers=min(8, os.cpu_count() or 1))
    return work / "packed"


def loader_rate(packed: Path, batch: int, crop: int, workers: int, device: torch.device,
                batches: int) -> dict[str, Any]:  # fmt: skip
    """The training DataLoader (``cloudfree.train.data``) over the pack, with GPU settings."""
    from cloudfree.config import load_config
    from cloudfree.train.data import build_datasets, build_loader
    from cloudfree.train.sampler import ResumableDistributedSampler

    cfg = load_config(None, [f"data.packed={packed}", f"data.crop_size={crop}",
                             f"data.num_workers={workers}"])  # fmt: skip
    train_ds, _ = build_datasets(cfg, True, packed.parent)
    sampler = ResumableDistributedSampler(len(train_ds), shuffle=True, seed=0)
    loader = build_loader(train_ds, sampler, batch, workers, device)
    it = iter(loader)
    next(it)  # worker start-up is not timed
    t, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:  # the sampler is not advanced: each pass is the same epoch
            it = iter(loader)
            b = next(it)
        if b is not None:
            b["s2_cloudy"].to(device, non_blocking=True)
            n += len(b["s2_cloudy"])
    _sync(device)
    sec = time.perf_counter() - t
    return {"patches_per_s": n / sec, "batches_per_s": batches / sec, "workers": workers}


def train_loop(packed: Path, work: Path, model_cfg: dict, batch: int, crop: int, workers: int,
               device: torch.device) -> dict[str, Any]:  # fmt: skip
    """``cloudfree.train.train`` for one epoch over the pack (the real loop's patches/s)."""
    from cloudfree.config import load_config
    from cloudfree.train.loop import train

    cfg = load_config(None, [
        f"data.packed={packed}", f"data.crop_size={crop}", f"data.num_workers={workers}",
        f"model.num_layers={model_cfg['num_layers']}",
        f"model.feature_size={model_cfg['feature_size']}", f"train.batch_size={batch}",
        "train.epochs=1", "train.checkpoint_every=100000", "train.log_every=1",
        f"train.out_dir={work / 'runs'}", "train.run_name=gpu", f"train.device={device}",
    ])  # fmt: skip
    summary = train(cfg)
    return {"patches_per_s": summary["patches_per_s"], "steps": summary["steps"]}


def evaluate_rate(packed: Path, work: Path, model_cfg: dict, device: torch.device,
                  limit: int) -> dict[str, Any]:  # fmt: skip
    from cloudfree.evaluate.run import evaluate
    from cloudfree.models import build_model, save_weights

    torch.manual_seed(0)
    weights = save_weights(build_model("dsen2cr", **model_cfg), work / "eval.safetensors")
    t = time.perf_counter()
    s = evaluate(str(weights), packed, work / "eval", split=None, device=str(device),
                 limit=limit, report=False)  # fmt: skip
    sec = time.perf_counter() - t
    return {"patches": s["count"], "seconds": sec, "patches_per_s": s["count"] / sec}


def predict_rate(work: Path, model_cfg: dict, size: int, device: torch.device) -> dict[str, Any]:
    from cloudfree.io import read_raster
    from cloudfree.models import build_model, save_weights
    from cloudfree.predict.scene import predict_scene

    torch.manual_seed(0)
    weights = save_weights(build_model("dsen2cr-nosar", **model_cfg), work / "pred.safetensors")
    t = time.perf_counter()
    scene = make_scene(work / "scene.tif", size)
    out: dict[str, Any] = {"scene_px": size, "scene_gen_s": time.perf_counter() - t}
    for precision in ("fp32", "bf16"):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t = time.perf_counter()
        res = predict_scene(scene, work / f"{precision}.tif", str(weights), device=str(device),
                            precision=precision, progress=False)  # fmt: skip
        sec = time.perf_counter() - t
        out[precision] = {
            "seconds": sec,
            "mpx_per_s": size * size / 1e6 / sec,
            "peak_gpu_gib": torch.cuda.max_memory_allocated(device) / 2**30
            if device.type == "cuda"
            else None,
            "tile": res["tile"],
            "overlap": res["overlap"],
            "batch": res["batch_size"],
        }
    diffs, means = [], []
    for r in range(0, size, 2048):  # windowed: the outputs are never read whole
        win = (r, 0, min(2048, size - r), size)
        a = read_raster(work / "fp32.tif", window=win)[0].astype(np.float32)
        b = read_raster(work / "bf16.tif", window=win)[0].astype(np.float32)
        d = np.abs(a - b) / 10000
        diffs.append(float(d.max()))
        means.append(float(d.mean()))
    out["bf16_vs_fp32_max_refl"] = max(diffs)
    out["bf16_vs_fp32_mean_refl"] = float(np.mean(means))
    return out


def _s1_for(scene: Path, path: Path) -> Path:
    """An S1 scene (VV, VH in dB, -25..-5) on the grid of ``scene``, written once."""
    import numpy as np
    import rasterio

    if path.exists():
        return path
    with rasterio.open(scene) as src:
        profile = src.profile | {"count": 2, "dtype": "float32", "nodata": None}
        h, w = src.height, src.width
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write((rng.random((2, h, w), dtype=np.float32) * 20 - 25).astype(np.float32))
    return path


def uncrtaints_rate(work: Path, dsen_cfg: dict, size: int, scene_px: int, dry: bool,
                    device: torch.device) -> dict[str, Any]:  # fmt: skip
    """UnCRtainTS next to DSen2-CR on the GPU (see the module docstring, case 6)."""
    from cloudfree.losses.nll import GaussianNLLLoss
    from cloudfree.models import build_model, save_weights
    from cloudfree.models.runtime import inference_context, prepare_for_inference
    from cloudfree.predict.scene import predict_scene

    torch.manual_seed(0)
    unc_cfg = {"encoder_widths": [16], "decoder_widths": [16]} if dry else {}
    batch, reps = (2, 2) if dry else (16, 10)
    refl = torch.rand(batch, 13, size, size, device=device) * 0.4
    s1 = torch.rand(batch, 2, size, size, device=device)
    out: dict[str, Any] = {"patch_px": size, "batch": batch}
    models = {"uncrtaints": (build_model("uncrtaints", **unc_cfg), 1.0, 1.0),
              "dsen2cr": (build_model("dsen2cr", **dsen_cfg), 5.0, 2.0)}  # fmt: skip
    for name, (model, s2_scale, s1_scale) in models.items():
        model = prepare_for_inference(model, device, "fp32")
        x, y = refl * s2_scale, s1 * s1_scale
        res: dict[str, Any] = {}
        outs = {}
        for precision in ("fp32", "bf16"):
            with inference_context(device, precision):
                outs[precision] = model(x, y).float()
                sec = _timed(functools.partial(model, x, y), reps, device)
            res[f"{precision}_patches_per_s"] = batch / sec
        res["bf16_vs_fp32_max_refl"] = float((outs["bf16"] - outs["fp32"]).abs().max()) / s2_scale
        out[name] = res
    # The published recipe's step: Gaussian NLL on mean + variance, Adam 1e-3, batch 4.
    model = build_model("uncrtaints", **unc_cfg).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = GaussianNLLLoss()
    nb = 2 if dry else 4
    xt, yt, tt = refl[:nb], s1[:nb], torch.rand(nb, 13, size, size, device=device) * 0.4

    def step() -> None:
        loss = loss_fn(model(xt, yt, return_variance=True), tt)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    sec = _timed(step, reps, device)
    out["train_step"] = {"batch": nb, "step_s": sec, "patches_per_s": nb / sec}
    weights = save_weights(build_model("uncrtaints", **unc_cfg), work / "unc.safetensors")
    scene = work / "scene.tif"
    if not scene.exists():  # made by the predict case unless it was skipped
        scene = make_scene(scene, scene_px)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    s1 = _s1_for(scene, work / "scene_s1.tif")  # the SAR model is measured with its S1
    t = time.perf_counter()
    res = predict_scene(scene, work / "unc.tif", str(weights), s1=s1, device=str(device),
                        uncertainty_out=work / "unc_std.tif", progress=False)  # fmt: skip
    sec = time.perf_counter() - t
    out["predict"] = {
        "scene_px": scene_px, "seconds": sec, "mpx_per_s": scene_px**2 / 1e6 / sec,
        "tile": res["tile"], "overlap": res["overlap"], "batch": res["batch_size"],
        "peak_gpu_gib": torch.cuda.max_memory_allocated(device) / 2**30
        if device.type == "cuda" else None,
    }  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (a test)")
    p.add_argument("--out", default="gpu_results.json", help="JSON file to write")
    p.add_argument("--skip", nargs="*", default=[], help="cases to skip (train_step, ...)")
    args = p.parse_args(argv)
    dry = args.dry_run
    device = torch.device("cpu" if dry or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not dry:
        print("no CUDA device: run with --dry-run on a CPU", file=sys.stderr)
        return 2
    model_cfg = TINY if dry else FULL
    cpu = f"CPU {platform.machine()}, {os.cpu_count()} cores"
    name, peak = gpu_bf16_peak(device) if device.type == "cuda" else (cpu, None)
    workers = 0 if dry else min(8, os.cpu_count() or 1)
    results: dict[str, Any] = {
        "device": name, "torch": torch.__version__, "dry_run": dry, "model": model_cfg,
        "bf16_peak_tflops": None if peak is None else peak / 1e3,
    }  # fmt: skip
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cloudfree-gpu-") as tmp:
        work = Path(tmp)
        cases: dict[str, Callable[[], Any]] = {
            "train_step": lambda: train_step(model_cfg, 2 if dry else 16, 32 if dry else 128,
                                             2 if dry else 20, device, False, peak),
            "train_step_compiled": lambda: train_step(model_cfg, 2 if dry else 16,
                                                      32 if dry else 128, 2 if dry else 20,
                                                      device, True, peak),
        }  # fmt: skip
        packed: list[Path] = []

        def pack_once() -> Path:
            if not packed:
                packed.append(make_pack(work, 8 if dry else 128, 64 if dry else 256))
            return packed[0]

        cases["loader"] = lambda: loader_rate(pack_once(), 2 if dry else 16, 32 if dry else 128,
                                              workers, device, 3 if dry else 60)  # fmt: skip
        cases["train_loop"] = lambda: train_loop(pack_once(), work, model_cfg, 2 if dry else 16,
                                                 32 if dry else 128, workers, device)  # fmt: skip
        cases["evaluate"] = lambda: evaluate_rate(pack_once(), work, model_cfg, device,
                                                  4 if dry else 128)  # fmt: skip
        cases["predict"] = lambda: predict_rate(work, model_cfg, 300 if dry else 10980, device)
        cases["uncrtaints"] = lambda: uncrtaints_rate(work, model_cfg, 32 if dry else 256,
                                                      300 if dry else 10980, dry, device)  # fmt: skip
        for key, fn in cases.items():
            if key in args.skip:
                continue
            t = time.perf_counter()
            try:
                results[key] = fn()
            except Exception as e:  # one failing case must not lose the others' figures
                results[key] = {"error": f"{type(e).__name__}: {e}"}
            results[key]["case_s"] = time.perf_counter() - t
            print(f"{key}: {json.dumps(results[key], default=float)}", flush=True)
    results["total_s"] = time.perf_counter() - t0
    print_table(results)
    Path(args.out).write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    return 1 if failed else 0


def print_table(r: dict[str, Any]) -> None:
    """One line per figure: case, figure, value."""
    print(f"\n{r['device']}, torch {r['torch']}, model {r['model']}"
          f"{' (DRY RUN: tiny sizes on CPU)' if r['dry_run'] else ''}")  # fmt: skip
    print(f"{'case':22s} {'figure':28s} {'value':>12s}")
    for case, vals in r.items():
        if not isinstance(vals, dict) or case == "model":
            continue
        for k, v in vals.items():
            if isinstance(v, dict):
                for k2, v2 in v.items():
                    print(f"{case:22s} {f'{k}.{k2}':28s} {_fmt(v2):>12s}")
            else:
                print(f"{case:22s} {k:28s} {_fmt(v):>12s}")
    print(f"total {r['total_s']:.0f} s")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


if __name__ == "__main__":
    sys.exit(main())
