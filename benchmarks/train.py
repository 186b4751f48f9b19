"""Training throughput and peak memory: ``cloudfree.train.loop.train`` vs a plain loop.

For the full DSen2-CR (B16 F256, SAR, CARL, 128x128 crops) and the ``debug_tiny`` preset
(B2 F16, 32x32 crops, batch 4), in one run:

- plain:    the same model, CARL loss and Nadam optimiser (``build_model``, ``build_loss``,
            ``build_optimizer`` of the config) on random tensors of the batch's shapes already
            on the device: no data path, no logging, no checkpoints. The upper bound.
- per-file: ``train(cfg)`` reading synthetic GeoTIFF triplets through an index (``SEN12MSCR``),
            cloud masks precomputed into the index's mask cache.
- packed:   ``train(cfg)`` reading the same patches from ``cloudfree pack`` shards, the CARL
            mask computed on each crop as the original does (``data.mask=crop``, the default).
- packed-cached: the same with the pack's cached full-patch mask cropped instead
            (``data.mask=cached``): what the per-crop mask costs.

Each case runs in its own process (so the peak RSS is its own): "steady" is the median of
the per-step rates ``train`` logs to ``metrics.csv`` (``log_every=1``) without the first step
(warm-up), "whole" is ``train``'s own figure over the call (warm-up and the epoch-end
checkpoint included). No validation (the data has no val split) and no step checkpoints.
Peak memory: CUDA ``torch.cuda.max_memory_allocated``; CPU the process's peak RSS
(``ru_maxrss``; the interpreter with torch imported is ~0.3-0.4 GB of it).

On a GPU: bf16 autocast + channels_last (``train.precision=auto``, an opt-in: the presets
train in strict fp32 as the paper), and MFU against the
card's dense bf16 peak with the convolutions' analytic FLOPs (``DSen2CRConfig.conv_flops`` x3
per training sample, as ``benchmarks/model.py``).

    .venv/bin/python benchmarks/train.py            # CPU: tiny 30 steps, full 3 steps x batch 2
    .venv/bin/python benchmarks/train.py --quick    # skip the full model (~13 s/step on 2 cores)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from cloudfree.config import Config, load_config

#: Side of the synthetic patches (the full model trains on whole 128x128 patches).
PATCH = 128
DATA_KINDS = ("plain", "per-file", "packed", "packed-cached")


def _model_cfg(which: str, batch: int, workers: int, extra: list[str]) -> Config:
    common = [
        f"train.batch_size={batch}",
        "train.epochs=1",
        "train.log_every=1",
        "train.checkpoint_every=1000000",
        f"data.num_workers={workers}",
        "train.precision=auto",  # bf16 on a GPU (throughput), fp32 on the CPU
        *extra,
    ]
    if which == "tiny":
        return load_config("debug_tiny", common)
    return load_config(None, common)  # the paper's recipe: B16 F256, SAR, CARL, 128x128


def _peak_memory(device: torch.device) -> float:
    """MiB: CUDA max allocated, else this process's peak RSS (Linux ru_maxrss is KiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plain_loop(cfg: Config, steps: int, device: torch.device) -> dict[str, Any]:
    """Reference: model + loss + optimiser on in-memory random tensors, nothing else."""
    from cloudfree.losses import build_loss
    from cloudfree.models import build_model
    from cloudfree.train.optim import build_optimizer

    torch.manual_seed(0)
    model = build_model(
        cfg.model.name, num_layers=cfg.model.num_layers, feature_size=cfg.model.feature_size
    )
    cuda = device.type == "cuda"
    mf = torch.channels_last if cuda and cfg.train.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=mf).train()
    opt = build_optimizer(model.parameters(), cfg.optim)
    loss_fn = build_loss(cfg.loss.name, lambda_=cfg.loss.lambda_).to(device)
    b, c = cfg.train.batch_size, cfg.data.crop_size
    s2 = (torch.rand(b, 13, c, c, device=device) * 2).contiguous(memory_format=mf)
    s1 = (torch.rand(b, 2, c, c, device=device) * 2).contiguous(memory_format=mf)
    target = torch.rand(b, 13, c, c, device=device) * 2
    mask = (torch.rand(b, c, c, device=device) > 0.5).to(torch.uint8)
    sar = getattr(getattr(model, "config", None), "include_sar", True)
    bf16 = cuda and cfg.train.precision in ("auto", "bf16")
    rates = []
    t_all = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        ctx = torch.autocast("cuda", torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            pred = model(s2, s1) if sar else model(s2)
        loss = loss_fn(pred.float(), target, s2, mask)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # the loop syncs once per step too (its loss all-reduce)
        rates.append(b / (time.perf_counter() - t0))
    whole = steps * b / (time.perf_counter() - t_all)
    steady = statistics.median(rates[1:]) if len(rates) > 1 else rates[0]
    return {"steady": steady, "whole": whole, "steps": steps}


def loop_case(cfg: Config) -> dict[str, Any]:
    """``train(cfg)``; steady rate = median logged per-step rate without the first step."""
    from cloudfree.train.loop import train
    from cloudfree.train.run_log import read_metrics_csv

    summary = train(cfg, resume=None)
    rows = read_metrics_csv(Path(summary["run_dir"]) / "metrics.csv")
    rates = [v for _, split, name, v in rows if split == "train" and name == "patches_per_s"]
    steady = statistics.median(rates[1:]) if len(rates) > 1 else summary["patches_per_s"]
    return {"steady": steady, "whole": summary["patches_per_s"], "steps": summary["steps"]}


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One case, in this (fresh) process: the JSON line the parent reads."""
    extra = []
    if spec["data"] == "per-file":
        extra = [f"data.index={spec['index']}"]
    elif spec["data"] == "packed":
        extra = [f"data.packed={spec['packed']}"]
    elif spec["data"] == "packed-cached":
        extra = [f"data.packed={spec['packed']}", "data.mask=cached"]
    extra += [f"train.out_dir={spec['runs']}", f"train.run_name={spec['model']}-{spec['data']}"]
    cfg = _model_cfg(spec["model"], spec["batch"], spec["workers"], extra)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rss_start = _peak_memory(torch.device("cpu"))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out = plain_loop(cfg, spec["steps"], device) if spec["data"] == "plain" else loop_case(cfg)
    out.update(peak_mib=_peak_memory(device), rss_start_mib=rss_start, crop=cfg.data.crop_size)
    out["gflop_per_patch"] = _flops_per_patch(cfg) / 1e9
    return out


def _flops_per_patch(cfg: Config) -> float:
    """Analytic training FLOPs of one sample: 3x the forward convolutions."""
    from cloudfree.models import DSen2CRConfig

    mc = DSen2CRConfig(
        include_sar=cfg.model.name == "dsen2cr",
        num_layers=cfg.model.num_layers,
        feature_size=cfg.model.feature_size,
    )
    return 3.0 * mc.conv_flops(cfg.data.crop_size, cfg.data.crop_size)


def prepare_data(work: Path, rows_needed: dict[str, int]) -> dict[str, dict[str, str]]:
    """Synthetic triplets -> one index + mask cache + pack per model, all rows in "train"."""
    from cloudfree.data.packed.pack import pack
    from cloudfree.data.release.discover import build_index
    from cloudfree.data.release.index import write_index
    from cloudfree.data.release.mask_cache import MaskCache
    from cloudfree.data.synthetic.release import synthesize

    n = max(rows_needed.values())
    t = time.perf_counter()
    synthesize(work / "synth", n=n, seed=0, size=PATCH)
    full = build_index(work / "synth")
    print(f"synthesised {n} triplets of {PATCH}x{PATCH} in {time.perf_counter() - t:.1f} s")
    out = {}
    for model, k in rows_needed.items():
        # Every row in "train" so that one epoch is exactly k patches; no val split -> the loop
        # skips validation (warns), which keeps it out of the timing.
        rows = [dataclasses.replace(r, split="train") for r in sorted(full.rows)[:k]]
        index = write_index(dataclasses.replace(full, rows=rows), work / f"{model}.csv")
        MaskCache(index, patch_size=PATCH).precompute()
        packed = work / f"{model}_packed"
        pack(index, packed, workers=0)
        out[model] = {"index": str(index), "packed": str(packed)}
    return out


def _print_table(results: list[tuple[str, str, dict[str, Any]]], peak_tflops: float | None) -> None:
    gpu = peak_tflops is not None
    head = f"{'model':<6} {'data':<13} {'steps':>5} {'steady p/s':>11} {'whole p/s':>10}"
    head += f" {'vs plain':>8} {'peak MiB':>9}" + (f" {'MFU':>6}" if gpu else "")
    print(head)
    plain = {m: r["steady"] for m, d, r in results if d == "plain"}
    for model, data, r in results:
        rel = r["steady"] / plain[model] if plain.get(model) else float("nan")
        line = f"{model:<6} {data:<13} {r['steps']:>5} {r['steady']:>11.2f} {r['whole']:>10.2f}"
        line += f" {rel:>7.0%} {r['peak_mib']:>9.0f}"
        if gpu:
            line += f" {r['steady'] * r['gflop_per_patch'] / 1e3 / peak_tflops:>6.1%}"
        print(line)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="skip the full model")
    p.add_argument("--tiny-steps", type=int, default=30)
    p.add_argument("--full-steps", type=int, default=None, help="default: 3 on CPU, 30 on GPU")
    p.add_argument("--full-batch", type=int, default=None, help="default: 2 on CPU, 16 on GPU")
    p.add_argument("--workers", type=int, default=None, help="default: 0 on CPU, 4 on GPU")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case (JSON spec)
    args = p.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(run_one(json.loads(args.one))), flush=True)
        return

    cuda = torch.cuda.is_available()
    full_steps = args.full_steps or (30 if cuda else 3)
    full_batch = args.full_batch or (16 if cuda else 2)
    workers = args.workers if args.workers is not None else (4 if cuda else 0)
    tiny_batch = load_config("debug_tiny").train.batch_size
    models = {"tiny": (args.tiny_steps, tiny_batch)}
    if not args.quick:
        models["full"] = (full_steps, full_batch)
    peak = None
    if cuda:
        from model import gpu_bf16_peak  # benchmarks/model.py (this script's folder)

        name, peak_flops = gpu_bf16_peak(torch.device("cuda"))
        peak = None if peak_flops is None else peak_flops / 1e3
        print(f"device: {name}, bf16 peak {peak} TFLOP/s; bf16 autocast + channels_last")
    else:
        from model import cpu_name

        print(f"device: CPU {cpu_name()}, {torch.get_num_threads()} threads, fp32")
    print(f"torch {torch.__version__}; DataLoader workers {workers}")

    with tempfile.TemporaryDirectory(prefix="cloudfree-bench-train-") as tmp:
        work = Path(tmp)
        data = prepare_data(work, {m: s * b for m, (s, b) in models.items()})
        results = []
        for model, (steps, batch) in models.items():
            for kind in DATA_KINDS:
                spec = {"model": model, "data": kind, "steps": steps, "batch": batch,
                        "workers": workers, "runs": str(work / "runs"), **data[model]}  # fmt: skip
                t = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, __file__, "--one", json.dumps(spec)],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
                if proc.returncode != 0 or line is None:
                    print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                    raise SystemExit(f"case {model}/{kind} failed (exit {proc.returncode})")
                r = json.loads(line.removeprefix("RESULT "))
                print(f"  {model}/{kind}: {steps} steps x batch {batch}, crop {r['crop']}: "
                      f"{time.perf_counter() - t:.0f} s")  # fmt: skip
                results.append((model, kind, r))
    print()
    _print_table(results, peak)


if __name__ == "__main__":
    main()
