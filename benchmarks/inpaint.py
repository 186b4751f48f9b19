"""Inpainting and the hybrid, side by side in one run: speed, pack-time cost, quality (issue 11).

Prints three tables and writes them as JSON (``--json``):

1. **Time per 256 x 256 patch** of each inpainting method on the 27 real cloudy SEN12MS-CR
   patches of ``../shared/data`` with their DSen2-CR mask (0.3-100 % of the patch; mean over the
   patches with something to fill, after one warm-up; the cost grows with the masked area):
   ``mask-fill`` (OpenCV Telea), ``biharmonic`` (scikit-image), ``push-pull``, ``sar-match``
   (with real Sentinel-1 of Sen1Floods11 under simulated clouds), Stable Diffusion with a tiny
   pipeline built here (CPU, 2 steps, 64 px: the cost of the wrapper, not of SD) and, with
   ``--sd-weights DIR``, a real SD inpainting pipeline (20 steps, 512 px, CUDA when present).
2. **Cost of the inpainting cache at pack time**: ``cloudfree pack`` of the 27 real pairs,
   then ``fill_inpainting`` per method, in seconds per patch, beside the pack itself.
3. **Quality** (``cloudfree evaluate``, paper protocol: reflectance, full patches, per-patch
   means; target / reprod / recon MAE, PSNR, SAM), on data no trained model saw:

   - *real pairs, all 27*: the methods alone (nothing is trained: every pair is unseen);
   - *real pairs held out* (ROIs1970_fall 136: heavy cumulus, ROIs1868_summer 101: thin cloud,
     ROIs1970_fall 148: 19 pairs of the scenes the bundled weights never saw,
     ``scripts/train_bundled.sh`` fold A) with the bundled models;
   - *simulated clouds over held-out clear images* (those scenes and Sen1Floods11 with its
     real S1; seeds 1-3) with every method and model, SAR ones included;
   - with ``--fold-b DIR`` (the ``foldB`` folder of ``FOLD=B scripts/train_bundled.sh``): its
     no-SAR runs on the 18 real pairs of ROIs1970_fall 136 and ROIs1158_spring 26, which they
     never saw (no snow in their training).

    .venv/bin/python benchmarks/inpaint.py                       # ~15 min on 2 cores
    .venv/bin/python benchmarks/inpaint.py --quick               # timings and real pairs only
    .venv/bin/python benchmarks/inpaint.py --fold-b /tmp/bundled/foldB --json inpaint.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
#: Scenes held out of the bundled weights' training (scripts/train_bundled.sh, fold A).
HELD_A = (("ROIs1970_fall", 136), ("ROIs1868_summer", 101), ("ROIs1970_fall", 148))
#: Scenes held out of fold B's training.
HELD_B = (("ROIs1970_fall", 136), ("ROIs1158_spring", 26))
METHODS = ("identity", "mask-fill", "biharmonic", "push-pull")
KEYS = ("mae", "mae_reprod", "mae_recon", "psnr", "sam")


def _link_release(dst: Path, scenes: tuple[tuple[str, int], ...], kinds: tuple[str, ...]) -> None:
    """Symlink the release files of some scenes of ../shared/data/sen12mscr into ``dst``."""
    root = SHARED / "sen12mscr"
    for roi, scene in scenes:
        for kind in kinds:
            for f in root.glob(f"{roi}_{kind}/{kind}_{scene}/*.tif"):
                out = dst / f.relative_to(root)
                out.parent.mkdir(parents=True, exist_ok=True)
                if not out.exists():
                    out.symlink_to(f)


def _index(root: Path, out: Path) -> Path:
    from cloudfree.data.release.discover import build_index
    from cloudfree.data.release.index import write_index

    write_index(build_index(root), out)
    return out


def _real_patches() -> list[tuple[np.ndarray, np.ndarray]]:
    """(cloudy DN, DSen2-CR mask) of the real cloudy patches with pixels to fill and clear ones."""
    from cloudfree.io import read_raster
    from cloudfree.masks import cloud_shadow_mask

    out = []
    for f in sorted((SHARED / "sen12mscr").glob("*_s2_cloudy/*/*.tif")):
        dn = read_raster(f)[0]
        m = cloud_shadow_mask(dn)
        if m.any() and not m.all():
            out.append((dn, m))
    return out


def _floods_patches() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(cloudy DN, mask, real S1 dB) of Sen1Floods11's 4 tiles with simulated clouds."""
    from cloudfree.data.synthetic.clouds import simulate_clouds
    from cloudfree.io import read_raster
    from cloudfree.masks import cloud_shadow_mask

    s2 = np.clip(read_raster(SHARED / "sen1floods11" / "Spain_7370579_S2Hand.tif")[0], 0, None)
    s1 = read_raster(SHARED / "sen1floods11" / "Spain_7370579_S1Hand.tif")[0]
    rng = np.random.default_rng(0)
    out = []
    for r in (0, 256):
        for c in (0, 256):
            clear = s2[:, r : r + 256, c : c + 256].astype(np.uint16)
            cloudy, _ = simulate_clouds(clear, rng, cover_fraction=0.4)
            out.append((cloudy, cloud_shadow_mask(cloudy), s1[:, r : r + 256, c : c + 256]))
    return out


def _time(fn, items: list) -> float:  # noqa: ANN001
    fn(*items[0])  # warm-up (imports, thread pools, pipeline load)
    times = []
    for it in items:
        t0 = time.perf_counter()
        fn(*it)
        times.append(time.perf_counter() - t0)
    return statistics.mean(times)


def speed(sd_weights: str | None) -> dict[str, float]:
    """Mean seconds per 256 x 256 patch of each method."""
    from cloudfree.inpaint import get_inpainter

    real, floods = _real_patches(), _floods_patches()
    res: dict[str, float] = {}
    for name in ("mask-fill", "biharmonic", "push-pull"):
        inp = get_inpainter(name)
        res[name] = _time(lambda x, m, inp=inp: inp(x, m), real)
    sar = get_inpainter("sar-match")
    res["sar-match"] = _time(lambda x, m, s: sar(x, m, s), floods)
    sys.path.insert(0, str(REPO))
    try:
        from tests.inpaint.conftest import build_tiny_pipeline

        from cloudfree.inpaint.sd import StableDiffusion

        tiny = StableDiffusion(pipeline=build_tiny_pipeline(), steps=2, size=64, device="cpu")
        res["stable-diffusion (tiny, CPU, 2 steps, 64 px)"] = _time(lambda x, m: tiny(x, m), real)
    except ImportError as e:
        print(f"tiny SD skipped: {e}")
    if sd_weights:
        sd = get_inpainter("stable-diffusion", weights=sd_weights, batch_size=1)
        res[f"stable-diffusion ({sd_weights}, 20 steps, 512 px)"] = _time(
            lambda x, m: sd(x, m), real[:4]
        )
    return res


def pack_cost(work: Path) -> dict[str, float]:
    """Seconds per patch: packing the 27 real pairs, then caching each inpainting."""
    from cloudfree.data.packed.inpaint_cache import fill_inpainting
    from cloudfree.data.packed.pack import pack

    root = work / "all_pairs"
    _link_release(root, _all_pair_scenes(), ("s2", "s2_cloudy"))
    index = _index(root, work / "all_pairs.csv")
    t0 = time.perf_counter()
    manifest = pack(index, work / "pack", workers=0)
    n = manifest["num_patches"]
    res = {"pack (read + cloud mask)": (time.perf_counter() - t0) / n}
    for method in ("mask-fill", "biharmonic", "push-pull"):
        m = fill_inpainting(work / "pack", method, progress=False)
        res[f"+ --inpaint {method}"] = m["inpaint_timing"][method]["seconds_per_patch"]
    return res


def _all_pair_scenes() -> tuple[tuple[str, int], ...]:
    found = set()
    for f in (SHARED / "sen12mscr").glob("*_s2_cloudy/*/*.tif"):
        roi = f.parent.parent.name.removesuffix("_s2_cloudy")
        found.add((roi, int(f.parent.name.split("_")[-1])))
    return tuple(sorted(found))


def _scores(method: str, index: Path, out: Path, **kw: object) -> dict[str, float]:
    from cloudfree.evaluate.run import evaluate

    s = evaluate(method, index, out, split=None, device="cpu", report=False, **kw)  # type: ignore[arg-type]
    return {"count": s["count"], **{k: s["metrics"][k] for k in KEYS}}


def quality(work: Path, fold_b: Path | None, quick: bool) -> dict[str, dict[str, dict]]:
    """{set: {method: scores}} (see the module docstring)."""
    res: dict[str, dict[str, dict]] = {}
    roots = {
        "real pairs, all 27": (_all_pair_scenes(), METHODS),
        "real pairs held out (fold A, 19)": (
            HELD_A,
            (*METHODS, "dsen2cr-demo-nosar", "hybrid-nosar"),
        ),
    }
    for label, (scenes, methods) in roots.items():
        root = work / label.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        _link_release(root, scenes, ("s2", "s2_cloudy"))
        index = _index(root, root.with_suffix(".csv"))
        res[label] = {m: _scores(m, index, work / "eval" / label / m) for m in methods}
    if fold_b is not None:
        root = work / "fold_b_real"
        _link_release(root, HELD_B, ("s2", "s2_cloudy"))
        index = _index(root, work / "fold_b_real.csv")
        label = "real pairs held out (fold B, 18)"
        res[label] = {m: _scores(m, index, work / "eval" / "b" / m) for m in METHODS}
        for run in ("dsen2cr_nosar", "hybrid_nosar"):
            ck = fold_b / "runs" / run / "checkpoints" / "best"
            if ck.is_dir():
                res[label][f"{run} (fold B)"] = _scores(str(ck), index, work / "eval" / "b" / run)
    if quick:
        return res
    # Simulated clouds over the held-out clear images (real S1 for Sen1Floods11).
    src = work / "clear_src"
    _link_release(src, HELD_A, ("s2",))
    floods = src / "sen1floods11"
    floods.mkdir(parents=True, exist_ok=True)
    for kind in ("S2Hand", "S1Hand"):
        link = floods / f"Spain_7370579_{kind}.tif"
        if not link.exists():
            link.symlink_to(SHARED / "sen1floods11" / f"Spain_7370579_{kind}.tif")
    from cloudfree.data.synthetic.release import synthesize

    synth = work / "synth_held"
    for seed in (1, 2, 3):
        synthesize(synth / f"s{seed}", n=100, seed=seed, clear_from=src)
    methods = (*METHODS, "sar-match", "dsen2cr-demo-sar", "hybrid-sar", "dsen2cr-demo-nosar",
               "hybrid-nosar")  # fmt: skip
    label = "simulated clouds over held-out clear images"
    res[label] = {}
    for m in methods:
        rows = [
            _scores(m, _index(synth / f"s{seed}", synth / f"s{seed}.csv"),
                    work / "eval" / "synth" / f"{m}_{seed}")
            for seed in (1, 2, 3)
        ]  # fmt: skip
        n = sum(r["count"] for r in rows)
        res[label][m] = {"count": n, **{k: sum(r[k] * r["count"] for r in rows) / n for k in KEYS}}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="skip the simulated-cloud set")
    ap.add_argument("--sd-weights", default=None, help="a real SD inpainting pipeline folder")
    ap.add_argument("--fold-b", type=Path, default=None, help="foldB folder of train_bundled.sh")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"needs the real samples at {SHARED}")
    import platform

    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, torch {torch.__version__}, CUDA {torch.cuda.is_available()}")  # fmt: skip
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        out["seconds_per_patch"] = s = speed(args.sd_weights)
        print("\n1. time per 256 x 256 patch (mean)")
        for k, v in s.items():
            print(f"  {k:48s} {v * 1000:9.1f} ms")
        out["pack_seconds_per_patch"] = p = pack_cost(work)
        print("\n2. pack-time cost, seconds per patch (27 real pairs, 1 process)")
        for k, v in p.items():
            print(f"  {k:48s} {v:9.3f} s")
        out["quality"] = q = quality(work, args.fold_b, args.quick)
        print("\n3. quality (paper protocol, reflectance; recon = under the DSen2-CR mask)")
        for label, rows in q.items():
            n = next(iter(rows.values()))["count"]
            print(f"\n  {label} ({n} patches)")
            print(
                f"  {'method':28s} {'MAE':>7s} {'reprod':>7s} {'recon':>7s} {'PSNR':>6s} {'SAM':>6s}"
            )
            for m, r in rows.items():
                print(f"  {m:28s} {r['mae']:7.4f} {r['mae_reprod']:7.4f} {r['mae_recon']:7.4f} "
                      f"{r['psnr']:6.2f} {r['sam']:6.2f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
