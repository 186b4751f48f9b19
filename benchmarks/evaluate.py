"""Memory of ``cloudfree evaluate`` as the patch count grows: does it stream? (issue 5)

``cloudfree.evaluate.run.evaluate`` is meant to keep memory flat however many patches it
evaluates (rows go to disk as they are computed, only running sums stay in memory). This
script runs it on growing patch counts with two models and prints, per run: seconds,
patches/s, the process's resident memory before the evaluation and at its peak, the peak of
traced Python allocations, the RSS drift inside the run and the growth per 100 patches
against the smallest count of the same model.

- **full**: DSen2-CR at the paper's size (``build_model("dsen2cr")``: B = 16, F = 256, with SAR,
  18,947,341 parameters), random weights (seeded: memory does not depend on the values);
- **tiny**: the same architecture with B = 2, F = 16, so that 1000 patches run in minutes on a
  CPU (the per-patch work outside the network, reading, cloud mask, metrics, CSV, is the same).

How memory is measured. Each (model, count) runs in a **fresh subprocess** (``ru_maxrss`` and
``VmHWM`` only ever grow within a process, so one process per run keeps them apart). In that
process the model is built and wrapped as a ``ModelMethod``, then ``VmHWM`` (peak resident set,
``/proc/self/status``) is reset to the current RSS by writing ``5`` to ``/proc/self/clear_refs``
(Linux), ``tracemalloc`` is started, and ``evaluate(..., report=False)`` runs. Columns:

- "RSS before": VmRSS just before ``evaluate`` (interpreter, torch, the model's weights);
- "peak RSS": VmHWM after ``evaluate``, the highest resident set during it;
- "traced pk": ``tracemalloc``'s peak, the most Python-level memory (numpy buffers included;
  torch tensors are not traced) alive at once during ``evaluate``;
- "gr/100": (peak of this run - peak of the model's smallest count) / extra patches x 100;
- "drift/100": inside the run, VmRSS and the traced total are sampled after every forward
  pass (a batch boundary: the previous batch's temporaries are freed, so the traced total is
  what ``evaluate`` keeps from patch to patch); their least-squares trend over the last 75 %
  of the run, per 100 patches ("n/a": too few batches).

With ``tracemalloc`` on (one frame per trace), Python allocations are slower, so the timings
are pessimistic, and its own tables are part of the RSS figures. On CUDA the table also gives ``torch.cuda.max_memory_allocated`` during
``evaluate``.

Data: ``--distinct`` (default 50) synthetic 256x256 triplets (``cloudfree.data.synthetic.release``, about
0.25 s each here), and an index CSV of as many rows as the largest count, all in split
``test``, that cycles through those files under distinct patch numbers (row i is patch
``i + 1`` of its source's scene): 1000 patch rows, 50 distinct sets of files, a warm page
cache. ``read_raster`` opens and closes the file at every read, and GDAL drops a dataset's
cached blocks when it is closed, so reusing files hides no cache growth;
``--distinct 1000`` synthesizes every patch (about 4 minutes and 4 GB more).

The report pass (``report=True``) re-predicts up to 9 example patches and draws figures after
the streamed pass; it is measured separately at one count per model (``--no-report-check``
skips it; ``--quick`` checks the tiny model only).

    .venv/bin/python benchmarks/evaluate.py --quick   # tiny 10/100, full 2/4 (3-5 min, 2 cores)
    .venv/bin/python benchmarks/evaluate.py           # tiny 10/100/1000, full 4/8/16 (~30 min)
    .venv/bin/python benchmarks/evaluate.py --full-counts 4 8 16 32
    .venv/bin/python benchmarks/evaluate.py --tiny-counts 10 1000 --full-counts --no-trace
        # RSS and time without tracemalloc's overhead (no traced columns, no report check)

On CUDA (``torch.cuda.is_available()``), the default full-model counts are 10/100/1000.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import torch

# The sibling benchmark script (run as `python benchmarks/evaluate.py`, its folder is on sys.path).
from model import cpu_name

#: Model sizes: build_model("dsen2cr", **kwargs).
MODELS: dict[str, dict[str, int]] = {
    "full": {},  # the paper's B = 16, F = 256
    "tiny": {"num_layers": 2, "feature_size": 16},
}
#: Verdict thresholds. Keeping one prediction per patch (13 x 256 x 256 float32, 3.4 MB)
#: would exceed both after 10 patches; keeping a metrics row per patch (~1-2 KB as a dict)
#: would exceed the traced one by 1000 patches.
FLAT_TRACED_MB = 1.0  # Python allocations: 1000 patches keeping 1 KB each would exceed it
FLAT_DRIFT_MB_PER_100 = 2.0  # resident set, inside the largest run: a linear trend above it
#: Shortest run whose in-run RSS trend is trusted (the RSS moves by tens of MB per batch).
MIN_TREND_PATCHES = 500
RESULT_TAG = "RESULT "


def proc_status() -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` of this process, MB (1 MB = 2**20 bytes)."""
    out: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1]) / 1024.0  # kB
    return out


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs`` 5); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Sampled:
    """A method that records ``(patches so far, VmRSS MB, traced MB)`` after every forward pass.

    "traced" is ``tracemalloc``'s current total: at a batch boundary the previous batch's
    temporaries are gone, so its trend is what ``evaluate`` keeps from patch to patch.
    """

    def __init__(self, inner: Any, streamed_batches: int) -> None:
        self.inner = inner
        self.streamed_batches = streamed_batches  # later calls: the report's re-predictions
        self.name = inner.name
        self.include_sar = inner.include_sar
        self.scaling = inner.scaling
        self.seen = 0
        self.samples: list[tuple[int, float, float]] = []
        self.batches = 0

    def predict(self, batch: Any) -> torch.Tensor:
        pred = self.inner.predict(batch)
        self.batches += 1
        if self.batches <= self.streamed_batches:
            self.seen += int(pred.shape[0])
            traced = tracemalloc.get_traced_memory()[0] / 2**20
            self.samples.append((self.seen, proc_status()["VmRSS"], traced))
        return pred


def drift_per_100(samples: list[tuple[int, float, float]], count: int) -> tuple[float, float]:
    """RSS and traced trend per 100 patches inside the run, MB; NaN with too few batches.

    Least-squares slope of the samples from the first one past both 25 % of ``count`` and the
    third batch (allocator and caches warm: the first batches' metrics temporaries are not
    resident yet at the first samples) to the last; NaN with fewer than 6 samples there.
    The resident set moves by tens of MB from batch to batch (allocator reuse), so only a run
    of several hundred patches resolves a trend of a few MB per 100 patches.
    """
    later = [x for i, x in enumerate(samples) if i >= 2 and x[0] >= 0.25 * count]
    if len(later) < 6:
        return math.nan, math.nan
    n = [x[0] for x in later]
    mean_n = sum(n) / len(n)
    var = sum((v - mean_n) ** 2 for v in n)

    def slope(ys: list[float]) -> float:
        mean_y = sum(ys) / len(ys)
        return sum((a - mean_n) * (y - mean_y) for a, y in zip(n, ys, strict=True)) / var * 100

    return slope([x[1] for x in later]), slope([x[2] for x in later])


def worker(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints one ``RESULT {json}`` line."""
    from cloudfree.evaluate.run import evaluate
    from cloudfree.methods.model import ModelMethod
    from cloudfree.models import build_model

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model("dsen2cr", **MODELS[args.model])
    params = sum(p.numel() for p in model.parameters())
    method = Sampled(
        ModelMethod(model, f"dsen2cr-{args.model}", device),
        streamed_batches=math.ceil(args.count / args.batch_size),
    )
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = proc_status()["VmRSS"]
    hwm_reset = reset_peak_rss()
    if args.trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    summary = evaluate(
        method,
        args.data,
        args.out,
        split="test",
        batch_size=args.batch_size,
        device=str(device),
        limit=args.count,
        report=args.report,
    )
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20 if args.trace else None
    tracemalloc.stop()
    status = proc_status()
    rss_drift, traced_drift = drift_per_100(method.samples, args.count)
    result = {
        "model": args.model,
        "params": params,
        "count": int(summary["count"]),
        "report": bool(args.report),
        "seconds": seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": status["VmHWM"],
        "hwm_reset": hwm_reset,
        # ru_maxrss (kB on Linux) covers the whole process, model building included.
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "traced_peak_mb": traced_peak,
        "drift_mb_per_100": None if math.isnan(rss_drift) else rss_drift,
        "traced_drift_mb_per_100": None
        if math.isnan(traced_drift) or not args.trace
        else traced_drift,
        "cuda_peak_mb": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
        # About 10 (patches, VmRSS MB) points spread over the run, for the printed curve.
        "curve": [
            x[:2]
            for i, x in enumerate(method.samples)
            if i % max(1, len(method.samples) // 10) == 0 or i == len(method.samples) - 1
        ],
    }
    print(RESULT_TAG + json.dumps(result), flush=True)


def make_data(folder: Path, rows: int, distinct: int, size: int = 256, seed: int = 0) -> Path:
    """Synthesize ``distinct`` triplets and write an index of ``rows`` test rows cycling them.

    Returns:
        The index CSV (its sidecar records ``folder / "synth"`` as the root).
    """
    from cloudfree.data.release.discover import build_index
    from cloudfree.data.release.index import write_index
    from cloudfree.data.synthetic.release import synthesize

    root = folder / "synth"
    synthesize(root, distinct, seed=seed, size=size)
    result = build_index(root)
    sources = [r for r in result.rows if r.complete]
    if not sources:
        raise RuntimeError(f"no complete triplet was synthesized under {root}")
    cycled = [
        dataclasses.replace(sources[i % len(sources)], patch=i + 1, split="test")
        for i in range(rows)
    ]
    return write_index(dataclasses.replace(result, rows=cycled), folder / "index.csv")


def run_case(
    model: str,
    count: int,
    report: bool,
    index: Path,
    out: Path,
    batch: int,
    device: str,
    trace: bool = True,
) -> dict[str, Any]:
    """Run :func:`worker` in a fresh Python process and return its result."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--model",
        model,
        "--count",
        str(count),
        "--data",
        str(index),
        "--out",
        str(out),
        "--batch-size",
        str(batch),
        "--device",
        device,
    ]
    if report:
        cmd.append("--report")
    if not trace:
        cmd.append("--no-trace")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    raise RuntimeError(
        f"worker {model} x {count} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    )


def _f(v: float | None, spec: str, width: int) -> str:
    return f"{v:{width}{spec}}" if v is not None else f"{'n/a':>{width}s}"


def print_table(results: list[dict[str, Any]], cuda: bool) -> None:
    """Every run; "gr/100": peak growth per 100 patches against the model's smallest count."""
    cols = [
        ("model", 5, "s"),
        ("batch", 5, "d"),
        ("patches", 7, "d"),
        ("seconds", 8, ".1f"),
        ("patch/s", 8, ".3f"),
        ("RSS before", 10, ".1f"),
        ("peak RSS", 9, ".1f"),
        ("RSS gr/100", 10, ".2f"),
        ("RSS drift/100", 13, ".2f"),
        ("traced pk", 9, ".2f"),
        ("traced gr/100", 13, ".4f"),
        ("traced drift/100", 16, ".4f"),
    ]
    if cuda:
        cols.append(("CUDA peak", 9, ".1f"))
    print("  " + " ".join(f"{name:>{w}s}" for name, w, _ in cols))
    print("  " + " ".join(f"{'' if i < 5 else 'MB':>{w}s}" for i, (_, w, _) in enumerate(cols)))
    for r in results:
        base = min((x for x in results if x["model"] == r["model"]), key=lambda x: x["count"])
        dn = r["count"] - base["count"]
        values = [
            r["model"],
            r["batch"],
            r["count"],
            r["seconds"],
            r["count"] / r["seconds"],
            r["rss_before_mb"],
            r["peak_rss_mb"],
            (r["peak_rss_mb"] - base["peak_rss_mb"]) / dn * 100 if dn else None,
            r["drift_mb_per_100"],
            r["traced_peak_mb"],
            (r["traced_peak_mb"] - base["traced_peak_mb"]) / dn * 100
            if dn and r["traced_peak_mb"] is not None
            else None,
            r["traced_drift_mb_per_100"],
        ]
        if cuda:
            values.append(r["cuda_peak_mb"])
        print(
            "  " + " ".join(_f(v, spec, w) for v, (_, w, spec) in zip(values, cols, strict=True)),
            flush=True,
        )


def verdict(results: list[dict[str, Any]]) -> list[str]:
    """One line per model: flat or not.

    Flat: the tracemalloc peak grows by at most :data:`FLAT_TRACED_MB` from the smallest to
    the largest count, and the resident set shows no trend inside the largest run (drift at
    most :data:`FLAT_DRIFT_MB_PER_100`), which needs at least :data:`MIN_TREND_PATCHES`
    patches ("too short to tell" otherwise). The peak itself is not the test: the high-water
    mark of a resident set that moves by tens of MB from batch to batch (allocator reuse)
    rises with the number of batches without any trend.
    """
    lines = []
    for model in MODELS:
        runs = sorted((r for r in results if r["model"] == model), key=lambda r: r["count"])
        if len(runs) < 2:
            continue
        lo, hi = runs[0], runs[-1]
        d_rss = hi["peak_rss_mb"] - lo["peak_rss_mb"]
        pct = d_rss / lo["peak_rss_mb"] * 100
        traced = hi["traced_peak_mb"] is not None
        d_tr = hi["traced_peak_mb"] - lo["traced_peak_mb"] if traced else 0.0
        drift = hi["drift_mb_per_100"]
        if d_tr > FLAT_TRACED_MB:
            word = "NOT FLAT (Python allocations grow)"
        elif drift is None or hi["count"] < MIN_TREND_PATCHES:
            word = f"no Python growth; RSS trend: too short to tell (< {MIN_TREND_PATCHES} patches)"
        elif drift > FLAT_DRIFT_MB_PER_100:
            word = "NOT FLAT (RSS trend)"
        else:
            word = "FLAT"
        trend = "n/a" if drift is None else f"{drift:+.2f} MB per 100 patches"
        lines.append(
            f"  {model}: {lo['count']} -> {hi['count']} patches: peak RSS {d_rss:+.1f} MB "
            f"({pct:+.1f} %), tracemalloc peak "
            + (f"{d_tr:+.3f} MB" if traced else "not traced")
            + ", RSS trend inside the "
            f"{hi['count']}-patch run {trend}: {word}"
        )
    lines.append(
        f"  (flat: tracemalloc peak +{FLAT_TRACED_MB:.0f} MB at most from the smallest to the "
        f"largest count, and an RSS trend inside the largest run (>= {MIN_TREND_PATCHES} "
        f"patches) of at most {FLAT_DRIFT_MB_PER_100} MB per 100 patches)"
    )
    return lines


def print_curves(results: list[dict[str, Any]]) -> None:
    """VmRSS through the largest run of each model."""
    for model in MODELS:
        runs = [r for r in results if r["model"] == model]
        if not runs:
            continue
        hi = max(runs, key=lambda r: r["count"])
        points = ", ".join(f"{n}: {mb:.0f}" for n, mb in hi["curve"])
        print(f"  {model} x {hi['count']} (patches: VmRSS MB): {points}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny 10/100, full 2/4")
    p.add_argument("--tiny-counts", type=int, nargs="+", default=None)
    p.add_argument(
        "--full-counts", type=int, nargs="*", default=None, help="no value: skip the full model"
    )
    p.add_argument("--distinct", type=int, default=50, help="distinct synthetic triplets")
    p.add_argument("--batch-size", type=int, default=4, help="evaluate's batch size")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument(
        "--no-report-check",
        action="store_true",
        help="skip the report=True runs (largest tiny count <= 100; without --quick also "
        "the smallest full count)",
    )
    p.add_argument("--keep", default=None, help="write data and outputs here (kept)")
    p.add_argument(
        "--no-trace",
        dest="trace",
        action="store_false",
        help="without tracemalloc (RSS and timings free of its overhead; no traced columns)",
    )
    # Internal: one measurement in a fresh process.
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", choices=sorted(MODELS), help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--report", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.worker:
        worker(args)
        return

    cuda = args.device.startswith("cuda")
    if args.quick:
        tiny, full = [10, 100], [2, 4]
    else:
        tiny, full = [10, 100, 1000], ([10, 100, 1000] if cuda else [4, 8, 16])
    tiny = args.tiny_counts or tiny
    full = full if args.full_counts is None else args.full_counts
    cases = [("tiny", n, False) for n in tiny] + [("full", n, False) for n in full]
    if not args.no_report_check and args.trace:
        small_tiny = [n for n in tiny if n <= 100]
        cases.append(("tiny", max(small_tiny or tiny[:1]), True))
        if full and not args.quick:
            cases.append(("full", min(full), True))
    rows = max(n for _, n, _ in cases)
    distinct = min(args.distinct, rows)

    t_start = time.perf_counter()
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, {mem_gb:.0f} GB RAM")
    if cuda:
        print(f"GPU: {torch.cuda.get_device_name(torch.device(args.device))}")
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        index = make_data(folder, rows, distinct)
        print(
            f"data: {distinct} distinct synthetic 256x256 triplets, index of {rows} test rows "
            f"cycling through them ({time.perf_counter() - t0:.0f} s to synthesize); "
            f"protocol 'paper'"
        )
        # One batch size per model, at most its smallest count: every run of a model holds the
        # same batch in memory (full 2 vs 4 at batch 4 would compare batch sizes, not counts).
        batch = {m: min([args.batch_size, *(n for mm, n, _ in cases if mm == m)]) for m in MODELS}
        results: list[dict[str, Any]] = []
        for model, n, report in cases:
            out = folder / f"eval_{model}_{n}{'_report' if report else ''}"
            r = run_case(model, n, report, index, out, batch[model], args.device, args.trace)
            r["batch"] = batch[model]
            if not r["hwm_reset"]:
                print("  note: /proc/self/clear_refs not writable: peak RSS includes model build")
            results.append(r)
            print(
                f"  done {model} x {n} (report={report}, {r['params']:,} parameters): "
                f"{r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.1f} MB, "
                f"tracemalloc peak {_f(r['traced_peak_mb'], '.2f', 0)} MB",
                flush=True,
            )

    streamed = [r for r in results if not r["report"]]
    print("\nevaluate(report=False) memory by patch count (each row a fresh process):")
    print_table(streamed, cuda)
    with_report = [r for r in results if r["report"]]
    if with_report:
        print(
            "\nreport=True (re-predicts up to 9 example patches, draws the figures), same counts:"
        )
        for r in with_report:
            line = (
                f"  {r['model']} x {r['count']}: {r['seconds']:.1f} s, peak RSS "
                f"{r['peak_rss_mb']:.1f} MB, tracemalloc peak {r['traced_peak_mb']:.2f} MB"
            )
            for x in streamed:
                if x["model"] == r["model"] and x["count"] == r["count"]:
                    line += (
                        f"; vs report=False: {r['seconds'] - x['seconds']:+.1f} s, peak RSS "
                        f"{r['peak_rss_mb'] - x['peak_rss_mb']:+.1f} MB, tracemalloc peak "
                        f"{r['traced_peak_mb'] - x['traced_peak_mb']:+.2f} MB"
                    )
            print(line)
    print("\nVmRSS after the forward pass of each sampled batch, largest run of each model:")
    print_curves(streamed)
    print("\nverdict (report=False):")
    for line in verdict(streamed):
        print(line)
    print(f"total time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
