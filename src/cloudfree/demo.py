"""``make demo``: the main job, cloud removal for a whole scene, on an embedded default.

Steps: synthesise a georeferenced scene larger than one model tile (a landscape with its clear
Sentinel-2 bands, a matching Sentinel-1 and simulated clouds and shadows, so the truth is
known) -> compute the cloud/shadow mask of the cloudy scene with the default masker
(``cloudfree mask``: ukis-csmask's CNN where installed, grown by 60 m) and score it against the
cloud truth, beside the DSen2-CR paper's mask -> remove the clouds with ``cloudfree predict``
and the best bundled model (:data:`DEMO_MODEL`, the hybrid: mask-fill inpainting then
DSen2-CR; tiled, blended, windowed, clear pixels kept) -> score the prediction against the clear scene with the paper's metrics,
next to the ``identity`` (cloudy input) and ``mask-fill`` (classical inpainting) baselines and
the SAR hybrid on the same pixels -> write the output GeoTIFF, a PNG panel (cloudy | SAR |
mask | inpainted | prediction | truth) and ``summary.json``.

The bundled models are small demonstration networks (``cloudfree/weights/bundled/MODEL_CARD.md``),
not models for real use.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.argtypes import positive_int
from cloudfree.bands import S2_DN_PER_REFLECTANCE

#: Side of the default demo scene, pixels (10 m): larger than the 256-px tile, several tiles.
DEMO_SIZE = 640
#: The bundled model the demo runs: the best on the real held-out pairs (MODEL_CARD.md).
DEMO_MODEL = "hybrid-nosar"
#: Also scored: the bundled SAR hybrid, given the scene's S1.
DEMO_SAR_MODEL = "hybrid-sar"


def _metrics(pred_dn: np.ndarray, clear_dn: np.ndarray, cloudy_dn: np.ndarray,
             mask: np.ndarray) -> dict[str, float]:  # fmt: skip
    """The paper's metrics (cloudfree.metrics) of a whole scene, on reflectance."""
    from cloudfree.metrics import compute

    r = S2_DN_PER_REFLECTANCE
    return compute(pred_dn / r, clear_dn / r, cloudy_dn / r, mask)


def _mask_score(mask: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Precision and recall of a mask's cloud-or-shadow pixels against the cloud truth."""
    found, real = mask > 0, truth > 0
    tp = int((found & real).sum())
    return {
        "precision": tp / max(int(found.sum()), 1),
        "recall": tp / max(int(real.sum()), 1),
    }


def _fmt(m: dict[str, float]) -> str:
    return (
        f"MAE {m['mae']:.4f} (recon {m['mae_recon']:.4f}, reprod {m['mae_reprod']:.4f}), "
        f"PSNR {m['psnr']:.2f} dB, SAM {m['sam']:.2f} deg, SSIM {m['ssim']:.3f}"
    )


def run_demo(
    out: str | Path, size: int = DEMO_SIZE, seed: int = 0, sar: bool = True
) -> dict[str, Any]:
    """Run the demo into ``out`` and return its summary (also written to ``summary.json``).

    Args:
        out: output folder: ``scene/`` (the synthetic inputs and truth), ``mask.tif``,
            ``prediction.tif``, ``panel.png``, ``summary.json``.
        size: scene side in pixels.
        seed: seed of the synthetic scene.
        sar: also score the SAR hybrid (:data:`DEMO_SAR_MODEL`) on the scene (identity and
            ``mask-fill``, the hybrid's own inpainting, are always scored).
    """
    from cloudfree import render
    from cloudfree.data.synthetic.scene import synthesize_scene
    from cloudfree.io import read_raster
    from cloudfree.masks.csm import cloud_shadow_mask
    from cloudfree.masks.scene import mask_scene
    from cloudfree.outputs import check_output_dir
    from cloudfree.predict.scene import predict_scene
    from cloudfree.weights import get_weights

    out = check_output_dir(out, "--out")
    t0 = time.perf_counter()
    print(
        f"[1/5] synthesising a {size} x {size} scene (10 m, EPSG:32633) with clouds: {out / 'scene'}"
    )
    files = synthesize_scene(out / "scene", size=size, seed=seed)

    print("[2/5] cloud/shadow mask (cloudfree mask, the default masker), scored against the truth")
    mask_info = mask_scene(files.s2_cloudy, out / "mask.tif")
    mask = read_raster(out / "mask.tif")[0][0]
    truth = read_raster(files.cloud_truth)[0][0]
    score = _mask_score(mask, truth)
    cloudy = read_raster(files.s2_cloudy)[0]
    paper = _mask_score(cloud_shadow_mask(cloudy), truth)
    grown = f", grown by {mask_info['dilate_m']:g} m" if mask_info.get("dilate_m") else ""
    print(
        f"      {mask_info['masker']}{grown}: cloud {mask_info['cloud_fraction']:.1%}, shadow "
        f"{mask_info['shadow_fraction']:.1%} of the scene (truth: {(truth > 0).mean():.1%} cloud "
        f"or shadow); precision {score['precision']:.3f}, recall {score['recall']:.3f}\n"
        f"      the DSen2-CR paper's mask on the same scene: precision {paper['precision']:.3f}, "
        f"recall {paper['recall']:.3f}"
    )

    print(
        f"[3/5] removing the clouds: cloudfree predict --checkpoint {DEMO_MODEL} --keep-clear "
        "(mask -> mask-fill inpainting -> network)"
    )
    get_weights(DEMO_MODEL).path()  # fails clearly if the installation lacks the file
    # --keep-clear: the small demonstration model also alters clear pixels a little (its model
    # card); keeping the input where the mask says clear is what a user of it should do.
    pred_info = predict_scene(
        files.s2_cloudy,
        out / "prediction.tif",
        DEMO_MODEL,
        keep_clear=True,
        mask=out / "mask.tif",
        progress=False,
    )
    print(
        f"      {pred_info['tiles']} tiles in {pred_info['seconds']:.1f} s "
        f"({pred_info['mpx_per_s']:.2f} Mpx/s) -> {out / 'prediction.tif'}"
    )

    print("[4/5] metrics against the clear scene (reflectance; recon = under the mask)")
    clear = read_raster(files.s2_clear)[0]
    pred = read_raster(out / "prediction.tif")[0]
    scores = {DEMO_MODEL: _metrics(pred, clear, cloudy, mask)}
    scores["identity"] = _metrics(cloudy, clear, cloudy, mask)
    inpainted = out / "mask_fill.tif"
    predict_scene(files.s2_cloudy, inpainted, "mask-fill", mask=out / "mask.tif", progress=False)
    scores["mask-fill"] = _metrics(read_raster(inpainted)[0], clear, cloudy, mask)
    if sar:
        sar_out = out / "prediction_sar.tif"
        predict_scene(files.s2_cloudy, sar_out, DEMO_SAR_MODEL, s1=files.s1, keep_clear=True,
                      mask=out / "mask.tif", progress=False)  # fmt: skip
        scores[f"{DEMO_SAR_MODEL} (with S1)"] = _metrics(
            read_raster(sar_out)[0], clear, cloudy, mask
        )
    width = max(len(k) for k in scores)
    for name, m in scores.items():
        print(f"      {name:<{width}}  {_fmt(m)}")

    print("[5/5] panel and summary")
    s1 = read_raster(files.s1)[0]
    images = [
        render.true_colour(cloudy),
        render.sar_composite(s1),
        render.mask_rgb(mask),
        render.true_colour(read_raster(inpainted)[0]),
        render.true_colour(pred),
        render.true_colour(clear),
    ]
    mask_title = (
        f"mask: {mask_info['mask_backend']} (P {score['precision']:.2f}, R {score['recall']:.2f})"
    )
    titles = ["cloudy input", "S1 VV VH", mask_title, "inpainted (mask-fill)", DEMO_MODEL, "truth"]
    panel = out / "panel.png"
    render.write_png(panel, render.panel(images, titles))
    summary = {
        "scene": {
            "size": size,
            "seed": seed,
            "crs": "EPSG:32633",
            "files": {k: str(v) for k, v in vars(files).items()},
        },  # fmt: skip
        "mask": {**score, **mask_info, "dsen2cr": paper},
        "predict": {k: v for k, v in pred_info.items() if isinstance(v, str | int | float | bool)},
        "model": DEMO_MODEL,
        "metrics": scores,
        "panel": panel.name,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(
        f"done in {summary['seconds']} s: {out / 'prediction.tif'}, {panel}, {out / 'summary.json'}"
    )
    print(
        "      (small demonstration models: real use needs weights trained on SEN12MS-CR; "
        "their figures on real held-out cloudy pairs, beside mask-fill and push-pull, are in "
        "weights/bundled/MODEL_CARD.md)\n"
        "      the paper's model, with internet: cloudfree weights fetch dsen2cr-sar-carl, "
        "then --checkpoint dsen2cr-sar-carl"
    )
    return summary


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job on an embedded default: a synthetic cloudy scene made clear",
        description=(
            "Synthesise a cloudy scene with known truth, mask it, remove the clouds with the "
            "best bundled model (the hybrid: mask-fill inpainting then DSen2-CR), score the "
            "result against the truth beside identity, mask-fill and the SAR hybrid; writes "
            "prediction.tif, panel.png, summary.json."
        ),
    )
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument(
        "--size", type=positive_int, default=640, help="scene side in pixels (default 640)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-sar", action="store_true", help="do not also score the SAR hybrid (hybrid-sar)"
    )
    p.set_defaults(func=run_demo_cli)


def run_demo_cli(args: argparse.Namespace) -> int:
    """Handler of ``cloudfree demo``."""
    run_demo(args.out, size=args.size, seed=args.seed, sar=not args.no_sar)
    return 0
