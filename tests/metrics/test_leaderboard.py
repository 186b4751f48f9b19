"""The leaderboard protocol against an independent transcription of UnCRtainTS's metrics, and
both PSNR averages worked by hand.

The transcription follows ``model/src/learning/metrics.py:img_metrics`` and
``util/pytorch_ssim/__init__.py`` of PatrickTUM/UnCRtainTS at 5e1f1b5 as written there (torch,
``acos`` of the clamped cosine, SSIM by ``F.conv2d`` with zero padding), in float64; cloudfree's
own code computes SAM with ``atan2`` and SSIM with separable ``scipy`` filters.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cloudfree.evaluate.run import with_psnr_mean_rmse
from cloudfree.io import read_raster
from cloudfree.metrics.patch import aggregate, compute


def _uncrtaints_img_metrics(target: torch.Tensor, pred: torch.Tensor) -> dict[str, float]:
    """img_metrics(target, pred) for one (1, C, H, W) sample, as upstream writes it."""
    rmse = torch.sqrt(torch.mean(torch.square(target - pred)))
    psnr = 20 * torch.log10(1 / rmse)
    mae = torch.mean(torch.abs(target - pred))
    mat = torch.sum(target * pred, 1)
    mat = mat / torch.sqrt(torch.sum(target * target, 1))
    mat = mat / torch.sqrt(torch.sum(pred * pred, 1))
    sam = torch.mean(torch.acos(torch.clamp(mat, -1, 1)) * 180 / math.pi)
    # pytorch_ssim.ssim: 11-tap Gaussian (sigma 1.5) outer product, conv2d padding 5, groups C.
    x = torch.arange(11, dtype=torch.float64)
    g = torch.exp(-((x - 5) ** 2) / (2 * 1.5**2))
    g = (g / g.sum())[:, None]
    c = target.shape[1]
    window = (g @ g.t()).expand(c, 1, 11, 11).contiguous()

    def conv(a: torch.Tensor) -> torch.Tensor:
        return F.conv2d(a, window, padding=5, groups=c)

    mu1, mu2 = conv(target), conv(pred)
    s11 = conv(target * target) - mu1**2
    s22 = conv(pred * pred) - mu2**2
    s12 = conv(target * pred) - mu1 * mu2
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return {"rmse": float(rmse), "psnr": float(psnr), "mae": float(mae), "sam": float(sam),
            "ssim": float(ssim_map.mean())}  # fmt: skip


def _real_pairs(root: Path, n: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    cloudy = sorted(root.glob("ROIs*_s2_cloudy/*/*.tif"))[:n]
    pairs = []
    for path in cloudy:
        clear = Path(str(path).replace("s2_cloudy", "s2"))
        pairs.append(
            (
                np.clip(read_raster(path)[0].astype(np.float64), 0, 10000) / 10000,
                np.clip(read_raster(clear)[0].astype(np.float64), 0, 10000) / 10000,
            )
        )
    return pairs


@pytest.mark.slow
def test_leaderboard_metrics_match_the_uncrtaints_transcription(sen12mscr_root: Path) -> None:
    pairs = _real_pairs(sen12mscr_root)
    assert len(pairs) == 4
    valid_vs_zero = []
    for cloudy, target in pairs:
        # A "prediction" that leaves [0, 1] in places, as an unclipped network output can.
        pred = cloudy * 1.1 - 0.01
        ours = compute(pred, target, cloudy, np.zeros(target.shape[1:]), ssim_padding="zero")
        ref = _uncrtaints_img_metrics(torch.from_numpy(target)[None], torch.from_numpy(pred)[None])
        for key in ("rmse", "psnr", "mae", "ssim"):
            assert ours[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key
        # acos of a cosine near 1 loses precision even in float64; atan2 does not.
        assert ours["sam"] == pytest.approx(ref["sam"], abs=1e-5)
        valid = compute(pred, target, cloudy, np.zeros(target.shape[1:]))["ssim"]
        valid_vs_zero.append(valid - ours["ssim"])
    # The paper's valid-window SSIM is not the leaderboard's: the zero-padded borders differ.
    assert max(abs(d) for d in valid_vs_zero) > 1e-4


def test_both_psnr_averages_by_hand() -> None:
    # Two patches with RMSE 0.1 and 0.01: per-patch PSNR 20 and 40 dB, mean 30 dB; mean RMSE
    # 0.055, 20 log10(1 / 0.055) = 25.19 dB. Jensen: the per-patch mean is never below it.
    shape = (13, 16, 16)
    target = np.full(shape, 0.3)
    mask = np.zeros(shape[1:])
    rows = [compute(target + d, target, target, mask) for d in (0.1, 0.01)]
    assert [r["psnr"] for r in rows] == pytest.approx([20.0, 40.0])
    means = with_psnr_mean_rmse(aggregate(rows))
    assert means["psnr"] == pytest.approx(30.0)
    assert means["rmse"] == pytest.approx(0.055)
    assert means["psnr_mean_rmse"] == pytest.approx(25.1927, abs=1e-4)
    # Equal RMSEs: the two averages coincide.
    same = with_psnr_mean_rmse(aggregate([rows[0], rows[0]]))
    assert same["psnr_mean_rmse"] == pytest.approx(same["psnr"])
    assert math.isinf(with_psnr_mean_rmse({"rmse": 0.0})["psnr_mean_rmse"])
    assert math.isnan(with_psnr_mean_rmse({"rmse": None})["psnr_mean_rmse"])


def test_paper_table_rows_sit_on_the_mean_rmse_bound() -> None:
    # Table 1: PSNR printed vs 20 log10(1 / RMSE printed). L_CARL, L_T and L_T no SAR agree to
    # the printed precision; CARL no SAR is below the bound, which per-patch means cannot give.
    from cloudfree.evaluate.table import PUBLISHED

    rows = {k: v["values"] for k, v in PUBLISHED.items() if v["protocol"] == "paper"}
    bound = {k: 20 * math.log10(1 / v["rmse"]) for k, v in rows.items()}
    for name in ("DSen2-CR, L_CARL", "DSen2-CR, L_T", "DSen2-CR, L_T, no SAR"):
        assert rows[name]["psnr"] == pytest.approx(bound[name], abs=0.06), name
    assert rows["DSen2-CR, L_CARL, no SAR"]["psnr"] < bound["DSen2-CR, L_CARL, no SAR"] - 0.5
