"""Evaluation on series (issue 31, step 4): temporal and one-date methods on the same samples,
scored as UnCRtainTS's test script, against values worked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloudfree.data.timeseries.dataset import SeriesDataset
from cloudfree.data.timeseries.index import build_ts_index
from cloudfree.evaluate.series import evaluate_series
from cloudfree.methods.baselines import IdentityMethod
from cloudfree.methods.temporal import TemporalMethod
from tests.data.timeseries.test_dataset import COV, _copy


def _ds(root: Path, **kw) -> SeriesDataset:  # noqa: ANN003
    rows = build_ts_index(root).rows()
    coverage = {r["s2"]: COV[int(r["t"])] for r in rows}
    return SeriesDataset(root, rows, coverage, split="test", min_cov=0.1, max_cov=0.6, **kw)


def test_methods_scored_on_the_same_samples(tmp_path: Path) -> None:
    """Uniform dates: S2 DN = 1000 + 10 t; target t=20 (1200 DN), inputs t=4, 7, 12 (1040,
    1070, 1120 DN); no cloud in any mask (uniform, dark images)."""
    ds = _ds(_copy(tmp_path), masker="dsen2cr", include_sar=False)
    assert ds[0]["masks_series"].shape == (3, 4, 4) and int(ds[0]["masks_series"].sum()) == 0
    # one-date: the least cloudy input by coverage (t=12, 20 %) as it is: |1120 - 1200| DN
    rows, means = evaluate_series(ds, IdentityMethod(scaling="reflectance"))
    assert len(rows) == 2 and rows[0]["id"] == "ROIs1868/119/0" and rows[0]["target_t"] == 20
    assert means["mae"] == pytest.approx(0.008) and means["rmse"] == pytest.approx(0.008)
    assert means["psnr"] == pytest.approx(20 * np.log10(1 / 0.008))
    assert means["sam"] == pytest.approx(0.0, abs=1e-5)  # flat spectra: same direction
    # temporal: the median of the three clear inputs, 1070 DN
    _, m = evaluate_series(ds, TemporalMethod("median"))
    assert m["mae"] == pytest.approx(0.013)
    # the clear inputs' own least cloudy (masks all clear: the earliest, t=4, 1040 DN)
    _, m = evaluate_series(ds, TemporalMethod("least-cloudy"))
    assert m["mae"] == pytest.approx(0.016)


def test_series_evaluation_needs_masks_and_one_scaling(tmp_path: Path) -> None:
    ds = _ds(_copy(tmp_path), include_sar=False)
    with pytest.raises(ValueError, match="masker="):
        evaluate_series(ds, TemporalMethod("median"))
    ds = _ds(_copy(tmp_path / "b"), masker="dsen2cr", include_sar=False)
    with pytest.raises(ValueError, match="'dsen2cr' scaling"):
        evaluate_series(ds, IdentityMethod(scaling="dsen2cr"))


def test_a_temporal_network_is_scored_on_its_series(tmp_path: Path) -> None:
    """A (random, small) multi-temporal UnCRtainTS through evaluate_series: exactly the metrics
    of its own output on each sample's dates, S1 and days."""
    import torch

    from cloudfree.methods.model import ModelMethod
    from cloudfree.metrics.patch import compute
    from cloudfree.models.uncrtaints_mt import UnCRtainTSMT

    torch.manual_seed(0)
    net = UnCRtainTSMT(encoder_widths=[8], decoder_widths=[8], n_head=2, d_model=8).eval()
    with pytest.raises(ValueError, match="temporal model"):
        ModelMethod(net, name="mt", device="cpu")  # one image: refused
    method = ModelMethod(net, name="mt", device="cpu", series=True)
    assert method.temporal
    ds = _ds(_copy(tmp_path, size=32), masker="dsen2cr")
    rows, _ = evaluate_series(ds, method)
    s = ds[1]
    with torch.no_grad():
        want = net(s["s2_series"][None], s["s1_series"][None], s2_days=s["s2_days"][None],
                   s1_days=s["s1_days"][None])[0].numpy()  # fmt: skip
    ref = compute(np.clip(want, 0, 1), s["s2"].numpy(), s["s2_cloudy"].numpy(),
                  s["mask"].numpy(), ssim_padding="zero")  # fmt: skip
    assert rows[1]["mae"] == pytest.approx(ref["mae"], rel=1e-6)
    assert rows[1]["psnr"] == pytest.approx(ref["psnr"], rel=1e-6)
