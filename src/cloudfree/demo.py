"""``make demo``: the pipeline so far, end to end, on an embedded default (synthetic data).

Steps: synthesise a small SEN12MS-CR-like dataset in the release layout (with known cloud
truth) -> index it -> pack it into shards -> draw a training batch from the shards -> compute
the DSen2-CR cloud/shadow mask of every cloudy patch and score it against the truth -> score
the ``identity`` baseline (the cloudy input as the prediction) with the paper's metrics ->
train the tiny preset for a few steps on the shards -> write a summary and a quicklook PNG
(cloudy | clear | mask | truth) of the cloudiest patch.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np

from cloudfree.data.bands import S2_DN_PER_REFLECTANCE, s2_index


def _rgb8(s2_dn: np.ndarray, gain: float = 2.5) -> np.ndarray:
    """True colour (B4, B3, B2) as uint8 (3, H, W): reflectance x gain, clipped to [0, 1]."""
    rgb = s2_dn[[s2_index("B4"), s2_index("B3"), s2_index("B2")]] / S2_DN_PER_REFLECTANCE
    return (np.clip(rgb * gain, 0.0, 1.0) * 255).astype(np.uint8)


def _classes8(mask: np.ndarray) -> np.ndarray:
    """Mask classes (0 clear, 1 cloud, 2 shadow) as uint8 RGB: black, white, blue."""
    colours = np.array([[0, 0, 0], [255, 255, 255], [40, 90, 255]], np.uint8)
    return colours[np.clip(mask, 0, 2)].transpose(2, 0, 1)


def _write_png(path: Path, panels: list[np.ndarray], gap: int = 4) -> None:
    """Write (3, H, W) uint8 panels side by side as a PNG (rasterio's PNG driver)."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    from cloudfree.data.io import atomic_path

    h = max(p.shape[1] for p in panels)
    w = sum(p.shape[2] for p in panels) + gap * (len(panels) - 1)
    canvas = np.full((3, h, w), 255, np.uint8)
    x = 0
    for p in panels:
        canvas[:, : p.shape[1], x : x + p.shape[2]] = p
        x += p.shape[2] + gap
    with warnings.catch_warnings(), atomic_path(path) as tmp:
        # a quicklook PNG has no georeferencing, on purpose
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", driver="PNG", width=w, height=h, count=3, dtype="uint8") as ds:
            ds.write(canvas)


def run_demo(out: str | Path, n: int = 24, seed: int = 0) -> dict:
    """Run the demo into ``out`` and return its summary (also written to ``summary.json``)."""
    import torch

    from cloudfree.config import load_config
    from cloudfree.data.discover import build_index
    from cloudfree.data.index import format_summary, write_index
    from cloudfree.data.io import read_raster
    from cloudfree.data.pack import pack
    from cloudfree.data.sample import SampleConfig
    from cloudfree.data.shards import PackedDataset
    from cloudfree.data.synth import synthesize, truth_path
    from cloudfree.masks.csm import binary_mask, cloud_shadow_mask
    from cloudfree.metrics import aggregate, compute
    from cloudfree.train.loop import train

    out = Path(out)
    t0 = time.perf_counter()
    data = out / "data"
    print(f"[1/7] synthesising {n} triplets into {data}")
    synthesize(data, n=n, seed=seed)

    print("[2/7] indexing")
    index = build_index(data)
    write_index(index, out / "index.csv")
    print(format_summary(index))

    print("[3/7] packing into shards")
    manifest = pack(out / "index.csv", out / "packed", shard_size=8, workers=1)
    print(f"      {manifest['num_patches']} patches in {len(manifest['shards'])} shards")

    print("[4/7] a training batch from the shards (random 128x128 crops, flips, rotations)")
    ds = PackedDataset(out / "packed", split="train", config=SampleConfig(mode="train"))
    batch = torch.utils.data.default_collate([ds[i] for i in range(min(4, len(ds)))])
    shapes = {k: tuple(v.shape) for k, v in batch.items() if torch.is_tensor(v) and v.ndim > 1}
    print(f"      {len(ds)} training samples; batch: {shapes}")

    print("[5/7] DSen2-CR cloud/shadow mask vs the synthetic truth, identity baseline metrics")
    rows, tp, fp, fn = [], 0, 0, 0
    best = None
    for row in sorted(index.rows):
        if not row.has("s2", "s2_cloudy"):
            continue
        cloudy, _ = read_raster(index.resolve(row, "s2_cloudy"))
        clear, _ = read_raster(index.resolve(row, "s2"))
        truth, _ = read_raster(truth_path(data, row.id))
        mask = cloud_shadow_mask(cloudy)
        pred_b, true_b = binary_mask(mask).astype(bool), truth[0] > 0
        tp += int((pred_b & true_b).sum())
        fp += int((pred_b & ~true_b).sum())
        fn += int((~pred_b & true_b).sum())
        refl = cloudy / S2_DN_PER_REFLECTANCE
        rows.append(compute(refl, clear / S2_DN_PER_REFLECTANCE, refl, mask))
        if best is None or true_b.mean() > best[0]:
            best = (float(true_b.mean()), row.id, cloudy, clear, mask, truth[0])
    scores = aggregate(rows)
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    print(f"      mask vs truth (cloud or shadow): precision {precision:.3f}, recall {recall:.3f}")
    print(
        "      identity baseline: MAE {mae:.4f}, RMSE {rmse:.4f}, PSNR {psnr:.2f} dB, "
        "SAM {sam:.2f} deg, SSIM {ssim:.3f}; reprod MAE {mae_reprod:.4f}, "
        "recon MAE {mae_recon:.4f}".format(**scores)
    )

    print("[6/7] training the tiny preset (debug_tiny: 2 blocks x 16 features, CARL) on the shards")
    cfg = load_config(
        "debug_tiny",
        [
            f"data.packed={out / 'packed'}",
            f"train.out_dir={out / 'runs'}",
            "train.run_name=debug_tiny",
            "train.epochs=3",
            "optim.lr=1e-3",
        ],
    )
    if (out / "runs" / "debug_tiny").exists():  # a re-run of the demo starts the run afresh
        shutil.rmtree(out / "runs" / "debug_tiny")
    run = train(cfg)
    with open(Path(run["run_dir"]) / "metrics.csv", newline="") as f:
        losses = [
            float(r["value"])
            for r in csv.DictReader(f)
            if r["split"] == "train" and r["name"] == "loss"
        ]
    print(
        f"      {run['steps']} steps: CARL loss {losses[0]:.4f} -> {losses[-1]:.4f}, "
        f"best validation loss {run['best_val_loss']:.4f}; run folder {run['run_dir']}"
    )

    print("[7/7] writing the summary and a quicklook")
    assert best is not None
    _, pid, cloudy, clear, mask, truth = best
    png = out / "quicklook.png"
    _write_png(png, [_rgb8(cloudy), _rgb8(clear), _classes8(mask), _classes8(truth)])
    summary = {
        "triplets": n,
        "seed": seed,
        "index": json.loads(json.dumps(index.summary().__dict__)),
        "packed_patches": manifest["num_patches"],
        "mask_precision": precision,
        "mask_recall": recall,
        "identity_baseline": scores,
        "training": {
            "run_dir": run["run_dir"],
            "steps": run["steps"],
            "first_loss": losses[0],
            "last_loss": losses[-1],
            "best_val_loss": run["best_val_loss"],
        },
        "quicklook": {"file": png.name, "patch": pid, "panels": "cloudy | clear | mask | truth"},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(f"done in {summary['seconds']} s: {out / 'summary.json'}, {png}")
    return summary
