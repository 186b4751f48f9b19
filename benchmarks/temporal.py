"""Temporal methods beside the best one-date methods, on the same inputs, in one run (issue 31).

Data: the 5 real L1C dates of one 1 km site (``../shared/data/eolearn``: dates 0 and 1 fully
cloudy, 2-4 clear; acquisition dates unknown, taken 5 days apart in file order). Each clear
date in turn is the target; the inputs are the four other dates, the clear ones under
simulated clouds (:func:`cloudfree.data.synthetic.clouds.simulate_clouds`, a new draw per
seed), the real cloudy ones as they are. Clear means clear by the default scene masker
(``mask_array``, ``auto``: ukis-csmask where installed) run on every input, as on real scenes;
``--perfect-masks`` uses the simulated truth instead (real cloudy dates: all masked). The
surface changes between the real dates (days of growth, sun angle): a temporal method pays for
it, a one-date method on the least cloudy input does not.

Methods: ``least-cloudy`` (the least cloudy input as it is), ``push-pull`` and ``mask-fill`` on
that date (the strongest one-date classical methods), ``mosaic``, ``median``,
``nearest-clear``, ``composite`` (median + push-pull, the default) and ``composite`` with the
nearest clear date. Quality: MAE, PSNR, SAM on the whole target, and MAE on the pixels the
least cloudy input has masked ("recon"), reflectance, mean over targets x seeds; time per
series (4 dates of 101 x 100 px; the masker's time not counted). Then the time of each method
on 3 dates of a 256 x 256 patch and of a 1000 x 1000 scene window (the real dates tiled, the
simulated masks of seed 0 tiled with them; median of 3 runs), as ``composite`` runs them, and
of the networks (multi-temporal UnCRtainTS on the 3 dates, as ``composite --checkpoint`` runs
it, beside the mono-temporal one on one date; published sizes, random weights: time only).

    .venv/bin/python benchmarks/temporal.py [--seeds 10] [--perfect-masks] [--no-timing]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
EOLEARN = ROOT.parent / "shared" / "data" / "eolearn"
DAYS_APART = 5


def _dates() -> list[np.ndarray]:
    import rasterio

    out = []
    for i in range(5):
        with rasterio.open(EOLEARN / f"reference_scene_{i}.tif") as ds:
            out.append(ds.read())
    return out


def _series(dates: list[np.ndarray], target: int, seed: int, perfect: bool):  # noqa: ANN202
    from cloudfree.data.synthetic.clouds import simulate_clouds
    from cloudfree.masks.scene import mask_array

    rng = np.random.default_rng(1000 * target + seed)
    s2, masks, days = [], [], []
    for i, dn in enumerate(dates):
        if i == target:
            continue
        if i >= 2:  # clear: simulated clouds
            cloudy, truth = simulate_clouds(dn, rng, cover_fraction=rng.uniform(0.2, 0.8))
        else:
            cloudy, truth = dn, np.ones(dn.shape[1:], dtype=np.uint8)
        s2.append(cloudy)
        masks.append(truth if perfect else mask_array(cloudy))
        days.append((i - target) * DAYS_APART)
    return np.stack(s2), np.stack(masks), np.array(days)


def _metrics(pred_dn: np.ndarray, target_dn: np.ndarray, recon: np.ndarray) -> dict[str, float]:
    from cloudfree.metrics.patch import psnr_of_rmse, spectral_angle

    p, t = pred_dn.astype(np.float64) / 1e4, target_dn.astype(np.float64) / 1e4
    err = p - t
    return {
        "mae": float(np.abs(err).mean()),
        "psnr": psnr_of_rmse(float(np.sqrt((err**2).mean()))),
        "sam": float(spectral_angle(t, p).mean()),
        "mae_recon": float(np.abs(err[:, recon]).mean()) if recon.any() else float("nan"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--perfect-masks", action="store_true")
    p.add_argument("--no-timing", action="store_true", help="skip the 256 / 1000 px timings")
    args = p.parse_args()
    if not EOLEARN.is_dir():
        sys.exit(f"needs {EOLEARN}")
    from cloudfree.inpaint.registry import get_inpainter
    from cloudfree.methods.temporal import TemporalMethod, least_cloudy_index

    dates = _dates()
    temporal = {
        "mosaic": TemporalMethod("mosaic"),
        "median": TemporalMethod("median"),
        "nearest-clear": TemporalMethod("nearest-clear"),
        "composite (median + push-pull)": TemporalMethod("composite"),
        "composite (nearest + push-pull)": TemporalMethod("composite", statistic="nearest-clear"),
    }
    one_date = {"push-pull": get_inpainter("push-pull"), "mask-fill": get_inpainter("mask-fill")}
    rows: dict[str, list[dict[str, float]]] = {}
    times: dict[str, list[float]] = {}
    unseen = []
    for target in (2, 3, 4):
        for seed in range(args.seeds):
            s2, masks, days = _series(dates, target, seed, args.perfect_masks)
            least = least_cloudy_index(masks)
            recon = masks[least] != 0
            unseen.append(float((masks != 0).all(axis=0).mean()))
            results = {"least-cloudy": (s2[least].astype(np.float32), 0.0)}
            for name, inp in one_date.items():
                t0 = time.perf_counter()
                out = inp(s2[least].astype(np.float32)[None], recon[None])[0]
                results[f"{name} (least cloudy date)"] = (out, time.perf_counter() - t0)
            batch = {"s2_series": torch.from_numpy(s2[None].astype(np.float32) / 1e4),
                     "masks_series": torch.from_numpy(masks[None]),
                     "dates": torch.from_numpy(days[None])}  # fmt: skip
            for name, m in temporal.items():
                t0 = time.perf_counter()
                out = m.predict(batch)[0].numpy() * 1e4
                results[name] = (out, time.perf_counter() - t0)
            for name, (out, sec) in results.items():
                rows.setdefault(name, []).append(_metrics(out, dates[target], recon))
                times.setdefault(name, []).append(sec)
    masks_kind = "simulated truth" if args.perfect_masks else "default masker (auto)"
    print(f"targets 2, 3, 4 x {args.seeds} seeds; masks: {masks_kind}; pixels clear on no "
          f"input date: {100 * statistics.mean(unseen):.1f} % on average")  # fmt: skip
    print(f"{'method':<34} {'MAE':>7} {'PSNR':>6} {'SAM':>6} {'MAE recon':>9} {'ms/series':>9}")
    for name, r in rows.items():
        mean = {k: statistics.mean(x[k] for x in r if x[k] == x[k]) for k in r[0]}
        print(f"{name:<34} {mean['mae']:>7.4f} {mean['psnr']:>6.2f} {mean['sam']:>6.2f} "
              f"{mean['mae_recon']:>9.4f} {1000 * statistics.mean(times[name]):>9.1f}")  # fmt: skip
    if not args.no_timing:
        _timings(dates, temporal, one_date)


def _timings(dates: list[np.ndarray], temporal: dict, one_date: dict) -> None:  # noqa: ANN001
    """Seconds per 3-date series of 256 and 1000 px (DN, as composite calls combine)."""
    from cloudfree.methods.temporal import least_cloudy_index

    s2, masks, days = _series(dates, 4, 0, perfect=True)
    s2, masks, days = s2[1:], masks[1:], days[1:]  # 3 dates: one real cloudy, two simulated
    print(f"\n{'method':<34} {'s / 256 px':>10} {'s / 1000 px':>11}")
    for name in ["push-pull (least cloudy date)", "mask-fill (least cloudy date)", *temporal]:
        cells = []
        for side in (256, 1000):
            reps = -(-side // 100)
            big = np.tile(s2, (1, 1, reps, reps))[:, :, :side, :side].astype(np.float32)
            bigm = np.tile(masks, (1, reps, reps))[:, :side, :side]
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                if name in temporal:
                    temporal[name].combine(big, bigm, days)
                else:
                    least = least_cloudy_index(bigm)
                    one_date[name.split(" ")[0]](big[least][None], (bigm[least] != 0)[None])
                runs.append(time.perf_counter() - t0)
            cells.append(statistics.median(runs))
        print(f"{name:<34} {cells[0]:>10.3f} {cells[1]:>11.2f}")
    _network_timings(s2)


def _network_timings(s2: np.ndarray) -> None:
    """Seconds of the networks on the same 3 dates (published sizes, random weights: time
    only, no quality): multi-temporal UnCRtainTS as composite runs it (native 256 px tiles,
    64 px overlap, blended) and mono-temporal UnCRtainTS on one 256 px patch, both in PyTorch
    fp32 on the CPU (``--backend torch``)."""
    from datetime import date

    from cloudfree.methods.model import ModelMethod
    from cloudfree.methods.temporal_model import TemporalModelFill
    from cloudfree.models import build_model

    torch.manual_seed(0)
    mt = ModelMethod(build_model("uncrtaints-mt-nosar"), name="mt", device="cpu",
                     backend="torch", series=True)  # fmt: skip
    fill = TemporalModelFill(mt, [-10, -5, 0], date(2020, 6, 21))
    mono = ModelMethod(build_model("uncrtaints-nosar"), name="mono", device="cpu",
                       backend="torch")  # fmt: skip
    cells: dict[str, list[float]] = {"uncrtaints-mt (3 dates)": [], "uncrtaints (1 date)": []}
    for side in (256, 1000):
        reps = -(-side // 100)
        big = np.tile(s2, (1, 1, reps, reps))[:, :, :side, :side].astype(np.float32)
        runs = []
        for _ in range(2):
            t0 = time.perf_counter()
            fill.predict_dn(big, None)
            runs.append(time.perf_counter() - t0)
        cells["uncrtaints-mt (3 dates)"].append(min(runs))
        if side == 256:
            batch = {"s2_cloudy": torch.from_numpy(big[0][None] / 10000.0)}
            runs = []
            for _ in range(2):
                t0 = time.perf_counter()
                mono.predict(batch)
                runs.append(time.perf_counter() - t0)
            cells["uncrtaints (1 date)"] += [min(runs), float("nan")]
    for name, (a, b) in cells.items():
        print(f"{name + ' *':<34} {a:>10.3f} {b:>11.2f}")
    print("* published size, random weights (time only), PyTorch fp32 on the CPU")


if __name__ == "__main__":
    main()
