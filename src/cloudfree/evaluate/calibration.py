"""Uncertainty calibration of a method that predicts a variance (UnCRtainTS), as its authors
compute it (``PatrickTUM/UnCRtainTS`` @5e1f1b5, ``model/train_reconstruct.py``:
``compute_uce_auce``, ``compute_ece``; ``src/learning/metrics.py``: ``img_metrics``).

Per patch (one "sample"): the mean predicted variance ``var_mean`` (reflectance squared, over
bands and pixels), the mean signed error ``error_mean`` (target - prediction) and the mean
squared error ``se_mean``, all on the protocol's window, reflectance units.

Over the evaluated patches:

- **UCE / AUCE** (uncertainty calibration error, Laves et al. 2020, as upstream): the patches
  are put in :data:`N_BINS` bins of ``var_mean`` between its minimum and maximum (upstream's
  binning: 19 of equal width and a last one holding the maximum);
  in each bin the root mean of the patches' standard deviations ``sqrt(var_mean)`` (the
  uncertainty) is compared with the root mean square of their errors ``error_mean``; UCE is the
  sum of ``|RMS error - RMS uncertainty|`` weighted by each bin's share of patches, AUCE its
  unweighted mean over the bins that hold patches. 0 is perfect calibration. Upstream's error
  is the patch's *signed* mean error (its ``errs``), kept as is here so the figures compare.
- **Discard curve**: the mean ``se_mean`` of the 5 %, 10 %, ..., 100 % most certain patches
  (lowest ``var_mean`` first): it falls towards the left when the uncertainty ranks errors.

The reliability plot draws each bin's RMS error against its RMS uncertainty, with the diagonal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np

#: Bins of the calibration (upstream ``percent=5``: 100 / 5 bins).
N_BINS: Final[int] = 20
#: Per-patch columns added to ``per_patch.csv`` for a method with a variance.
UNCERTAINTY_COLUMNS: Final[tuple[str, ...]] = ("var_mean", "error_mean", "se_mean")


def patch_uncertainty(pred: np.ndarray, target: np.ndarray, var: np.ndarray) -> dict[str, float]:
    """The per-patch values of the module docstring; arrays (13, H, W) reflectance (var in
    reflectance squared), NaN-aware."""
    err = target - pred
    return {
        "var_mean": float(np.nanmean(var)),
        "error_mean": float(np.nanmean(err)),
        "se_mean": float(np.nanmean(np.square(err))),
    }


def calibration(
    var_mean: Sequence[float] | np.ndarray,
    error_mean: Sequence[float] | np.ndarray,
    se_mean: Sequence[float] | np.ndarray,
    n_bins: int = N_BINS,
) -> dict[str, Any]:
    """UCE, AUCE, the bins and the discard curve of the evaluated patches (module docstring).

    Returns:
        ``{"uce", "auce", "patches", "bins": [{"var_lo", "var_hi", "count", "rms_std",
        "rms_error"}, ...], "discard": [{"fraction", "mse"}, ...]}``; NaN figures with fewer
        than 2 finite patches.
    """
    v = np.asarray(var_mean, dtype=np.float64)
    e = np.asarray(error_mean, dtype=np.float64)
    se = np.asarray(se_mean, dtype=np.float64)
    ok = np.isfinite(v) & np.isfinite(e)
    v, e, se = v[ok], e[ok], se[ok]
    n = v.size
    out: dict[str, Any] = {"uce": math.nan, "auce": math.nan, "patches": int(n), "bins": [],
                           "discard": []}  # fmt: skip
    if n < 2:
        return out
    lo, hi = float(v.min()), float(v.max())
    # Upstream's binarize: np.digitize on linspace(lo, hi, n_bins)[1:], i.e. n_bins - 1
    # equal-width bins [lo + i d, lo + (i + 1) d) and a last bin holding the maximum alone.
    inner = np.linspace(lo, hi, num=n_bins)[1:]
    idx = np.digitize(v, bins=inner)
    lows, highs = np.concatenate([[lo], inner]), np.concatenate([inner, [hi]])
    errs, weights = [], []
    for b in range(n_bins):
        sel = idx == b
        count = int(sel.sum())
        rms_std = float(np.sqrt(np.mean(v[sel]))) if count else math.nan
        rms_err = float(np.sqrt(np.mean(np.square(e[sel])))) if count else math.nan
        out["bins"].append({"var_lo": float(lows[b]), "var_hi": float(highs[b]),
                            "count": count, "rms_std": rms_std, "rms_error": rms_err})  # fmt: skip
        if count:
            errs.append(abs(rms_err - rms_std))
            weights.append(count / n)
    out["uce"] = float(np.dot(weights, errs))
    out["auce"] = float(np.mean(errs))
    ranked = se[np.argsort(v, kind="stable")]  # most certain first
    cuts = np.linspace(0, n, n_bins + 1).astype(int)[1:]
    out["discard"] = [
        {"fraction": (i + 1) / n_bins, "mse": float(np.nanmean(ranked[:c])) if c else math.nan}
        for i, c in enumerate(cuts)
    ]
    return out


def reliability_figure(cal: Mapping[str, Any]) -> Any:
    """Reliability plot and discard curve of :func:`calibration` (a matplotlib Figure, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.6))
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.88, wspace=0.3)
    bins = [b for b in cal["bins"] if b["count"]]
    if bins:
        x = np.array([b["rms_std"] for b in bins])
        y = np.array([b["rms_error"] for b in bins])
        top = float(np.nanmax(np.concatenate([x, y]))) * 1.05 or 1.0
        ax.plot([0, top], [0, top], color="#888", linestyle="--", linewidth=1, label="calibrated")
        ax.scatter(x, y, s=12 + 60 * np.array([b["count"] for b in bins]) / max(1, cal["patches"]),
                   color="#4878a8", label="bins (size: patches)")  # fmt: skip
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
    ax.set_xlabel("RMS predicted standard deviation (reflectance)", fontsize=8)
    ax.set_ylabel("RMS error (reflectance)", fontsize=8)
    ax.set_title(f"reliability: UCE {cal['uce']:.4f}, AUCE {cal['auce']:.4f}", fontsize=9)
    ax.legend(fontsize=7)
    d = cal["discard"]
    if d:
        ax2.plot([p["fraction"] for p in d], [p["mse"] for p in d], marker=".", color="#c03030")
    ax2.set_xlabel("fraction of patches kept, most certain first", fontsize=8)
    ax2.set_ylabel("mean squared error", fontsize=8)
    ax2.set_title("discard curve", fontsize=9)
    for a in (ax, ax2):
        a.tick_params(labelsize=7)
        a.grid(alpha=0.3)
    return fig
