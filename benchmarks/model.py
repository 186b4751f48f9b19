"""Throughput of the full DSen2-CR (18.9M parameters): inference and training steps.

Every variant runs the same weights on the same inputs, interleaved with the plain fp32 eager
reference (round-robin, best time of the timed rounds: fair on a machine shared with other
jobs), and reports patches/s, speed-up over the reference, achieved GFLOP/s (convolution FLOPs
counted analytically, 2*k*k*Cin*Cout*H*W per conv, x3 for a training step) against the
machine's measured matmul peak, and the output's max abs difference to fp32 in reflectance
(network value x 2000 / 10000). On CUDA it also reports MFU against the card's bf16 peak.

    .venv/bin/python benchmarks/model.py            # ~5 min on a 2-core CPU
    .venv/bin/python benchmarks/model.py --quick    # 128x128 only, fewer rounds
    .venv/bin/python benchmarks/model.py --compile  # add torch.compile (inference)
    .venv/bin/python benchmarks/model.py --uncrtaints  # UnCRtainTS beside DSen2-CR (issue 14)

Variants: fp32 eager (reference), fp32 channels_last, bf16 autocast, bf16 autocast +
channels_last, and the library's default inference path (``cloudfree.models.runtime``:
NNPACK convolutions on CPU). On a CPU without native bf16 (no AVX512-BF16/AMX), the bf16
timings are replaced by a one-layer probe (they would take many minutes) unless --force-bf16.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cloudfree.bands import DSEN2CR, S2_DN_PER_REFLECTANCE
from cloudfree.models import DSen2CR, DSen2CRConfig
from cloudfree.models.runtime import (
    NNPACKConv2d,
    cpu_has_native_bf16,
    nnpack_available,
    prepare_for_inference,
    use_nnpack,
)

#: Network value -> reflectance: x 2000 (DN) / 10000.
TO_REFLECTANCE = DSEN2CR.s2_scale / S2_DN_PER_REFLECTANCE
#: Goal of issue 3 on the CPU: >= 2x the reference at inference, within 0.002 reflectance.
GOAL_SPEEDUP, GOAL_DIFF = 2.0, 0.002
#: Nominal dense bf16 tensor-core peaks, TFLOP/s (vendor data sheets), for MFU on CUDA.
#: More specific names first ("H100 PCIe" before "H100").
GPU_BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("GH200", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("RTX 4090", 165.2),
    ("RTX 3090", 71.0),
)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, reps: int = 3) -> float:
    """Best GFLOP/s of an n x n x n matmul (2 n^3 FLOPs)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up
    best = min(timed(lambda: a @ b, device) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def gpu_bf16_peak(device: torch.device) -> tuple[str, float | None]:
    name = torch.cuda.get_device_name(device)
    for key, tflops in GPU_BF16_PEAK_TFLOPS:
        if key in name:
            return name, tflops * 1e3
    return name, None


@dataclass
class Variant:
    """One way of running the model."""

    name: str
    model: nn.Module
    bf16: bool = False
    channels_last: bool = False
    optimizer: torch.optim.Optimizer | None = None
    note: str = ""
    #: Run once untimed at every size (torch.compile recompiles for a new shape).
    warm_every_size: bool = False

    def context(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.bf16:
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def inputs(self, *xs: torch.Tensor) -> list[torch.Tensor]:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return [x.contiguous(memory_format=fmt) for x in xs]


def make_variants(
    base: DSen2CR, device: torch.device, train: bool, bf16: bool, compile_: bool
) -> list[Variant]:
    """The variants, reference first; each owns a copy of the same weights."""

    def clone(channels_last: bool = False) -> nn.Module:
        m = copy.deepcopy(base).to(device).train(train)
        return m.to(memory_format=torch.channels_last) if channels_last else m

    out = [
        Variant("fp32 eager (reference)", clone()),
        Variant("fp32 channels_last", clone(True), channels_last=True),
    ]
    if bf16:
        out += [
            Variant("bf16 autocast", clone(), bf16=True),
            Variant("bf16 autocast + channels_last", clone(True), bf16=True, channels_last=True),
        ]
    if device.type == "cpu" and nnpack_available():
        if train:
            out.append(Variant("fp32 NNPACK forward", use_nnpack(clone())))
        else:
            fast = prepare_for_inference(copy.deepcopy(base), device, "auto")
            out.append(Variant("runtime default: fp32 NNPACK", fast))
    if compile_ and not train:
        try:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True  # constant-fold weights, fuse conv + ReLU
            out.append(
                Variant(
                    "torch.compile fp32 channels_last",
                    torch.compile(clone(True)),
                    channels_last=True,
                    note="compiled in an untimed call at each size",
                    warm_every_size=True,
                )
            )
        except Exception as e:  # noqa: BLE001 - any failure only skips this variant
            print(f"  torch.compile skipped: {type(e).__name__}: {e}")
    if train:
        for v in out:
            v.optimizer = torch.optim.NAdam(
                v.model.parameters(), lr=7e-5, betas=(0.9, 0.999), eps=1e-8, momentum_decay=4e-3
            )
    return out


def run_variant(
    v: Variant,
    device: torch.device,
    train: bool,
    s2: torch.Tensor,
    s1: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor | None:
    x2, x1 = v.inputs(s2, s1)
    if not train:
        with torch.inference_mode(), v.context(device):
            return v.model(x2, x1)
    assert v.optimizer is not None
    v.optimizer.zero_grad(set_to_none=True)
    with v.context(device):
        pred = v.model(x2, x1)
    loss = (pred.float() - target).abs().mean()  # L1 (L_T); CARL costs the same order
    loss.backward()
    v.optimizer.step()
    return None


@dataclass
class Settings:
    """What one run measures."""

    device: torch.device
    batch: int
    bf16: bool  # time the bf16 variants
    compile: bool
    peaks: dict[str, float]  # measured matmul GFLOP/s by precision
    gpu_peak: float | None  # nominal bf16 GFLOP/s of the card, for MFU


def bench(
    cfg: DSen2CRConfig,
    base: DSen2CR,
    st: Settings,
    size: int,
    train: bool,
    rounds: int,
    warmup: int,
    skip: dict[str, str],
) -> list[dict]:
    """Time every variant (except those in ``skip``) at one size; one row per variant."""
    dev, batch = st.device, st.batch
    g = torch.Generator().manual_seed(size)
    s2 = (torch.rand(batch, 13, size, size, generator=g) * 1.0).to(dev)  # DN 0-2000
    s1 = (torch.rand(batch, 2, size, size, generator=g) * 2.0).to(dev)
    target = (torch.rand(batch, 13, size, size, generator=g) * 1.0).to(dev)
    variants = [
        v for v in make_variants(base, dev, train, st.bf16, st.compile) if v.name not in skip
    ]
    for name, why in skip.items():
        print(f"    skipped {name}: {why}")

    def call(v: Variant) -> torch.Tensor | None:
        return run_variant(v, dev, train, s2, s1, target)

    for v in [v for v in variants if v.warm_every_size]:
        try:
            print(f"    untimed warm-up {v.name}: {timed(lambda v=v: call(v), dev):.1f} s")
        except Exception as e:  # noqa: BLE001 - a failed compile only drops this variant
            print(f"    {v.name} skipped: {type(e).__name__}: {str(e)[:200]}")
            variants.remove(v)
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    outputs: dict[str, torch.Tensor] = {}
    for r in range(warmup + rounds):
        for v in variants:  # interleaved: every variant sees the same machine load
            result: list[torch.Tensor | None] = []
            dt = timed(lambda v=v, result=result: result.append(call(v)), dev)
            if r >= warmup:
                times[v.name].append(dt)
            if result[0] is not None:
                outputs[v.name] = result[0].float()
            print(f"    round {r + 1}/{warmup + rounds} {v.name}: {dt:.3f} s", flush=True)

    flops = cfg.conv_flops(size, size) * batch * (3 if train else 1)
    ref_name = variants[0].name
    ref_t = min(times[ref_name])
    rows = []
    for v in variants:
        t = min(times[v.name])
        diff = None
        if v.name in outputs:
            diff = float((outputs[v.name] - outputs[ref_name]).abs().max()) * TO_REFLECTANCE
        gflops = flops / t / 1e9
        rows.append(
            {
                "variant": v.name,
                "s_per_iter": t,
                "patches_per_s": batch / t,
                "speedup": ref_t / t,
                "gflops": gflops,
                "pct_peak": 100 * gflops / st.peaks["bf16" if v.bf16 else "fp32"],
                "mfu": None if st.gpu_peak is None else 100 * gflops / st.gpu_peak,
                "diff": diff,
                "note": v.note,
            }
        )
    return rows


def print_table(title: str, rows: list[dict], gpu: bool) -> None:
    print(f"\n{title}")
    head = f"  {'variant':34s} {'s/iter':>8s} {'patch/s':>8s} {'speedup':>8s} {'GFLOP/s':>8s}"
    head += f" {'%peak':>6s}" + (f" {'MFU%':>6s}" if gpu else "") + f" {'max|diff| refl':>15s}"
    print(head)
    for r in rows:
        line = f"  {r['variant']:34s} {r['s_per_iter']:8.3f} {r['patches_per_s']:8.3f}"
        line += f" {r['speedup']:7.2f}x {r['gflops']:8.1f} {r['pct_peak']:6.1f}"
        if gpu:
            line += f" {r['mfu']:6.1f}" if r["mfu"] is not None else f" {'n/a':>6s}"
        line += f" {r['diff']:15.2e}" if r["diff"] is not None else f" {'-':>15s}"
        print(line + (f"  ({r['note']})" if r["note"] else ""))


def bf16_probe(base: DSen2CR) -> None:
    """On CPUs without native bf16: one 256->256 conv at 16x16, and the full model's bf16
    output difference at 32x32 (timing the full model in bf16 would take many minutes)."""
    dev = torch.device("cpu")
    conv = nn.Conv2d(256, 256, 3, padding=1).eval()
    x = torch.rand(1, 256, 16, 16)
    conv_cl = copy.deepcopy(conv).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        conv(x)
        t32 = min(timed(lambda: conv(x), dev) for _ in range(5))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            conv_cl(x_cl)
            t_cl = min(timed(lambda: conv_cl(x_cl), dev) for _ in range(3))
            t_nchw = timed(lambda: conv(x), dev)
    print(
        f"  bf16 probe, one 256->256 3x3 conv at 16x16: fp32 {t32 * 1e3:.1f} ms, "
        f"bf16 channels_last {t_cl * 1e3:.1f} ms ({t_cl / t32:.1f}x slower), "
        f"bf16 NCHW {t_nchw * 1e3:.0f} ms ({t_nchw / t32:.0f}x slower)"
    )
    g = torch.Generator().manual_seed(32)
    s2, s1 = torch.rand(1, 13, 32, 32, generator=g), torch.rand(1, 2, 32, 32, generator=g) * 2
    m = copy.deepcopy(base).eval()
    m_cl = copy.deepcopy(base).eval().to(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref = m(s2, s1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m_cl(s2, s1).float()
    diff = float((out - ref).abs().max()) * TO_REFLECTANCE
    print(f"  bf16 autocast + channels_last, full model at 32x32: max|diff| {diff:.2e} reflectance")


def exported_runners(
    model: nn.Module, example: tuple[torch.Tensor, torch.Tensor], workdir: str
) -> tuple[dict[str, Callable[[torch.Tensor, torch.Tensor], np.ndarray]], list[str]]:
    """OpenVINO (the library's backend, :func:`cloudfree.models.openvino.compile_openvino`) and
    ONNX Runtime runners of a SAR ``model`` (fp32, dynamic batch and size), those installed; a
    note per backend (version and one-off export time, or why it is missing)."""
    runners: dict[str, Callable[[torch.Tensor, torch.Tensor], np.ndarray]] = {}
    notes = []
    try:
        import openvino as ov

        from cloudfree.models.openvino import compile_openvino

        t = time.perf_counter()
        compiled = compile_openvino(model, include_sar=True, cache=Path(workdir) / "openvino")
        notes.append(f"OpenVINO {ov.__version__}: converted + compiled in "
                     f"{time.perf_counter() - t:.1f} s")  # fmt: skip

        def run_ov(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
            return compiled(a, b).numpy()

        runners["OpenVINO fp32"] = run_ov
    except ImportError:
        notes.append("OpenVINO not installed (pip install openvino)")
    try:
        import onnxruntime as ort

        path = f"{workdir}/model.onnx"
        t = time.perf_counter()
        torch.onnx.export(model, example, path, input_names=["s2", "s1"],
                          output_names=["out"], dynamo=False, dynamic_axes={
                              "s2": {0: "b", 2: "h", 3: "w"}, "s1": {0: "b", 2: "h", 3: "w"}})  # fmt: skip
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        notes.append(f"ONNX Runtime {ort.__version__}: exported + loaded in "
                     f"{time.perf_counter() - t:.1f} s")  # fmt: skip

        def run_ort(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
            return sess.run(None, {"s2": a.numpy(), "s1": b.numpy()})[0]

        runners["ONNX Runtime fp32"] = run_ort
    except ImportError:
        notes.append("ONNX Runtime not installed (pip install onnxruntime)")
    except Exception as e:  # an export failure is a result too
        notes.append(f"ONNX Runtime: export failed: {type(e).__name__}: {e}")
    return runners, notes


def cpu_backends(sizes: list[int], rounds: int) -> None:
    """The full model's forward on the CPU through each installed backend: same weights, same
    inputs, interleaved rounds, best time; output difference to PyTorch fp32 eager, in
    reflectance. Exports (OpenVINO's converter, ONNX) are timed apart: a one-off cost."""
    import tempfile

    torch.manual_seed(0)
    ref_model = DSen2CR.from_config(DSen2CRConfig()).eval()
    runners: dict[str, Callable[[torch.Tensor, torch.Tensor], np.ndarray]] = {}
    nn_model = prepare_for_inference(copy.deepcopy(ref_model), "cpu")

    def run_torch(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return nn_model(a, b).numpy()

    runners["pytorch NNPACK (default)"] = run_torch
    example = (torch.rand(1, 13, 64, 64) * 2, torch.rand(1, 2, 64, 64) * 2)
    tmp = tempfile.TemporaryDirectory(prefix="cloudfree-backends-")
    exported, notes = exported_runners(ref_model, example, tmp.name)
    runners.update(exported)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; full DSen2-CR, batch 1, fp32")  # fmt: skip
    for n in notes:
        print("  " + n)
    for size in sizes:
        a, b = torch.rand(1, 13, size, size) * 2, torch.rand(1, 2, size, size) * 2
        with torch.inference_mode():
            ref = ref_model(a, b).numpy()
        best = {k: float("inf") for k in runners}
        outs = {}
        for name, fn in runners.items():  # warm-up, outputs
            outs[name] = fn(a, b)
        for _ in range(rounds):
            for name, fn in runners.items():
                t = time.perf_counter()
                fn(a, b)
                best[name] = min(best[name], time.perf_counter() - t)
        base = best["pytorch NNPACK (default)"]
        print(f"\n{size}x{size}: {'backend':28s} {'s/forward':>9s} {'Mpx/s':>7s} "
              f"{'vs default':>10s} {'max|diff| refl':>14s}")  # fmt: skip
        for name in runners:
            diff = float(np.abs(outs[name] - ref).max()) * TO_REFLECTANCE
            print(f"{'':9s}{name:28s} {best[name]:9.2f} {size * size / 1e6 / best[name]:7.4f} "
                  f"{base / best[name]:9.2f}x {diff:14.2e}")  # fmt: skip
    tmp.cleanup()


def uncrtaints_vs_dsen2cr(sizes: list[int], rounds: int) -> None:
    """UnCRtainTS (published size) next to the full DSen2-CR on the same patches, CPU.

    Every CPU path of each model, interleaved, best of ``rounds``: plain fp32 eager (NCHW), the
    library's default (``prepare_for_inference``: NNPACK for DSen2-CR, channels_last for
    UnCRtainTS), the other PyTorch layout (channels_last / NNPACK), and OpenVINO and ONNX
    Runtime where installed; the output difference to eager is in reflectance. The 10980 x
    10980 projection multiplies the default path's time per pixel by the pixels ``predict``
    computes there with its default tiling (UnCRtainTS: 256-px tiles, overlap 64, because its
    group norms and squeeze-excitation see the whole tile; DSen2-CR: 1024-px tiles with its
    measured overlap, 44 px for the full model, ``benchmarks/README.md`` "Predict").
    """
    import tempfile

    from cloudfree.models.runtime import inference_context, use_nnpack
    from cloudfree.models.uncrtaints import UnCRtainTS
    from cloudfree.predict.tiling import axis_positions

    def tiled_pixels(length: int, tile: int, overlap: int) -> int:
        return (len(axis_positions(length, tile, overlap)) * tile) ** 2

    side = 10980
    torch.manual_seed(0)
    models = {
        "dsen2cr": (DSen2CR(), 2000.0, 2.0, tiled_pixels(side, 1024, 44)),
        "uncrtaints": (UnCRtainTS(), 10000.0, 1.0, tiled_pixels(side, 256, 64)),
    }
    cpu = torch.device("cpu")
    tmp = tempfile.TemporaryDirectory(prefix="cloudfree-unc-")
    paths: dict[str, dict[str, Callable[[torch.Tensor, torch.Tensor], np.ndarray]]] = {}
    for name, (model, _, _, _) in models.items():
        model.eval()

        def torch_runner(m: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], np.ndarray]:
            def run(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
                with inference_context(cpu, "fp32"):
                    return m(a, b).numpy()

            return run

        default = prepare_for_inference(copy.deepcopy(model), cpu, "auto")
        nnpack = any(isinstance(m, NNPACKConv2d) for m in default.modules())
        other = (
            copy.deepcopy(model).to(memory_format=torch.channels_last)
            if nnpack
            else use_nnpack(copy.deepcopy(model))
        )
        paths[name] = {
            "eager NCHW": torch_runner(model),
            f"default ({'NNPACK' if nnpack else 'channels_last'})": torch_runner(default),
            "channels_last" if nnpack else "NNPACK": torch_runner(other),
        }
        example = (torch.rand(1, 13, 64, 64), torch.rand(1, 2, 64, 64))
        exported, notes = exported_runners(model, example, f"{tmp.name}")
        paths[name].update(exported)
        for n in notes:
            print(f"  {name}: {n}")
    print(f"CPU: {cpu_name()}, threads {torch.get_num_threads()}, batch 1, fp32")
    print("| model | params | GMAC / 256 px patch | size | path | s / forward | vs eager | "
          "max diff (refl.) | 10980 tile, projected h |")  # fmt: skip
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for size in sizes:
        refl = torch.rand(1, 13, size, size) * 0.4
        s1 = torch.rand(1, 2, size, size)
        for name, (model, scale, s1_scale, pixels) in models.items():
            x, s1n = refl * (10000.0 / scale), s1 * s1_scale
            runners = paths[name]
            outs = {k: fn(x, s1n) for k, fn in runners.items()}  # warm-up and outputs
            best = {k: float("inf") for k in runners}
            for _ in range(rounds):
                for k, fn in runners.items():
                    t = time.perf_counter()
                    fn(x, s1n)
                    best[k] = min(best[k], time.perf_counter() - t)
            macs = (
                model.config.conv_flops(256, 256) / 2
                if name == "dsen2cr"
                else model.config.macs(256, 256)
            )
            params = sum(p.numel() for p in model.parameters())
            ref = outs["eager NCHW"]
            for k in runners:
                diff = float(np.abs(outs[k] - ref).max()) * scale / 10000.0
                hours = (
                    f"{best[k] / (size * size) * pixels / 3600:.2f}"
                    if k.startswith("default")
                    else ""
                )
                print(f"| {name} | {params / 1e6:.2f} M | {macs / 1e9:.1f} | {size} | {k} | "
                      f"{best[k]:.3f} | {best['eager NCHW'] / best[k]:.2f}x | {diff:.1e} | "
                      f"{hours} |")  # fmt: skip
    tmp.cleanup()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="128x128 only, one timed round")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="default 128 256")
    p.add_argument(
        "--batch", type=int, default=None, help="default 1 on CPU; on CUDA 16 at 128x128, 4 at 256"
    )
    p.add_argument("--rounds", type=int, default=None, help="timed forward rounds (CPU: 2)")
    p.add_argument("--train-rounds", type=int, default=None, help="timed train rounds (CPU: 1)")
    p.add_argument("--no-train", action="store_true", help="skip the training-step benchmark")
    p.add_argument("--compile", action="store_true", help="add a torch.compile variant")
    p.add_argument("--force-bf16", action="store_true", help="time bf16 even if emulated")
    p.add_argument(
        "--all",
        action="store_true",
        help="on CPU, also time at larger sizes the variants that were slower than 0.8x the "
        "reference at the first size (dropped by default to keep the run near 5 minutes)",
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument(
        "--backends",
        action="store_true",
        help="only the CPU inference backends side by side: NNPACK (the default), OpenVINO, "
        "ONNX Runtime (those installed), full model, fp32, at --sizes (default 256 512)",
    )
    p.add_argument(
        "--uncrtaints",
        action="store_true",
        help="only UnCRtainTS (published size) next to the full DSen2-CR, CPU, at --sizes "
        "(default 256): time, MACs, the default path's output difference, 10980 projection",
    )
    args = p.parse_args(argv)
    if args.uncrtaints:
        uncrtaints_vs_dsen2cr(args.sizes or [256], args.rounds or 2)
        return
    if args.backends:
        cpu_backends(args.sizes or [256, 512], args.rounds or 2)
        return

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = device.type == "cuda"
    sizes = args.sizes or ([128] if args.quick else [128, 256])

    def batch_at(size: int) -> int:
        # CUDA: 16 patches of 128x128 (the paper's batch), the same pixel count at other sizes
        # (a 256x256 training batch of 16 would need ~40 GB of fp32 activations).
        return args.batch or (max(1, 16 * 128 * 128 // (size * size)) if gpu else 1)

    rounds = args.rounds or (10 if gpu else 1 if args.quick else 2)
    train_rounds = args.train_rounds or (10 if gpu else 1)
    t_start = time.perf_counter()

    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    print(f"CPU: {cpu_name()} ({platform.machine()})")
    native_bf16 = (gpu and torch.cuda.is_bf16_supported()) or (not gpu and cpu_has_native_bf16())
    gpu_peak = None
    if gpu:
        torch.backends.cudnn.benchmark = True
        name, gpu_peak = gpu_bf16_peak(device)
        peak_txt = f"{gpu_peak / 1e3:.0f} TFLOP/s" if gpu_peak else "unknown (MFU n/a)"
        print(f"GPU: {name}; nominal dense bf16 peak: {peak_txt}")
        print(f"TF32 for cuDNN convs (torch default): {torch.backends.cudnn.allow_tf32}")
    n = 8192 if gpu else 2048
    # Emulated bf16 matmul runs at ~1 GFLOP/s: measure it on a small size.
    n_bf16 = n if native_bf16 else 256
    peaks = {
        "fp32": matmul_peak(device, torch.float32, n),
        "bf16": matmul_peak(device, torch.bfloat16, n_bf16, 3 if native_bf16 else 1),
    }
    print(
        f"matmul peak: fp32 {peaks['fp32']:.1f} GFLOP/s ({n}^3), bf16 {peaks['bf16']:.1f} "
        f"GFLOP/s ({n_bf16}^3); native bf16: {native_bf16}; NNPACK: {nnpack_available()}"
    )
    st = Settings(device, 1, native_bf16 or args.force_bf16, args.compile, peaks, gpu_peak)

    cfg = DSen2CRConfig()
    torch.manual_seed(0)
    base = DSen2CR.from_config(cfg)
    print(f"model: DSen2-CR {cfg}, {cfg.num_parameters:,} parameters")
    if not st.bf16 and not gpu:
        bf16_probe(base)

    summary = []
    for train in [False] if args.no_train else [False, True]:
        skip: dict[str, str] = {}
        for i, size in enumerate(sizes):
            # On CPU, one warm-up round at the first size of inference only: later calls reuse
            # the primed kernels and allocator, and a step takes seconds against first-call
            # overheads of milliseconds. torch.compile variants warm up at every size.
            warmup = 3 if gpu else (1 if i == 0 and not train else 0)
            r = train_rounds if train else rounds
            kind = "training step (fwd + bwd + NAdam)" if train else "inference forward"
            batch = batch_at(size)
            flops = cfg.conv_flops(size, size) * batch * (3 if train else 1)
            print(f"\n{kind}, {size}x{size}, batch {batch}: {flops / 1e9:.0f} GFLOP/iteration")
            rows = bench(cfg, base, replace(st, batch=batch), size, train, r, warmup, skip)
            title = f"{kind}, {size}x{size}, batch {batch}, best of {r} interleaved round(s)"
            print_table(title, rows, gpu)
            summary.append((train, size, rows))
            if not gpu and not args.all:
                skip.update(
                    {
                        row["variant"]: f"{row['speedup']:.2f}x the reference at {size}x{size}"
                        for row in rows
                        if row["speedup"] < 0.8
                    }
                )

    print("\nsummary (inference):")
    for train, size, rows in summary:
        if train or len(rows) < 2:
            continue
        ok = [
            r["variant"]
            for r in rows[1:]
            if r["speedup"] >= GOAL_SPEEDUP and r["diff"] is not None and r["diff"] <= GOAL_DIFF
        ]
        best = max(rows[1:], key=lambda r: r["speedup"])
        line = (
            f"  {size}x{size}: fastest {best['variant']} {best['speedup']:.2f}x "
            f"(max|diff| {best['diff']:.1e} refl)"
        )
        if not gpu:
            line += f"; CPU goal >= {GOAL_SPEEDUP}x within {GOAL_DIFF} refl: "
            line += "met by " + ", ".join(ok) if ok else "not met"
        print(line)
    print(f"total time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
