"""Uncertainty calibration (UCE / AUCE as UnCRtainTS computes them), worked by hand, and
``evaluate`` of a model that predicts a variance."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.data.synthetic.release import synthesize
from cloudfree.evaluate.calibration import UNCERTAINTY_COLUMNS, calibration, patch_uncertainty
from cloudfree.evaluate.run import PER_PATCH_COLUMNS, evaluate
from cloudfree.methods.model import ModelMethod
from cloudfree.models.uncrtaints import UnCRtainTS


def test_uce_auce_by_hand():
    # Patches with std .1 .2 .3 .4 and mean errors .1 -.2 .3 .5. Two bins as upstream builds
    # them (digitize on linspace(lo, hi, 2)[1:] = [hi]): the first three, and the maximum alone.
    # Bin 1: RMS std = RMS |error| = sqrt((.01 + .04 + .09) / 3): calibrated, 0. Bin 2: |.5 - .4|.
    # UCE = 3/4 * 0 + 1/4 * 0.1; AUCE = (0 + 0.1) / 2.
    cal = calibration([0.01, 0.04, 0.09, 0.16], [0.1, -0.2, 0.3, 0.5], [1, 2, 3, 4], n_bins=2)
    assert cal["uce"] == pytest.approx(0.025)
    assert cal["auce"] == pytest.approx(0.05)
    assert [b["count"] for b in cal["bins"]] == [3, 1]
    # Discard curve: mean squared error of the most certain half, then of all.
    assert [d["mse"] for d in cal["discard"]] == pytest.approx([1.5, 2.5])


def test_calibrated_errors_score_better_than_overconfident_ones():
    rng = np.random.default_rng(0)
    std = rng.uniform(0.01, 0.1, 4000)
    err = rng.normal(0, std)
    good = calibration(std**2, err, err**2)
    over = calibration((std / 3) ** 2, err, err**2)  # claims 3x less uncertainty than it has
    assert good["uce"] < 0.1 * over["uce"]
    assert good["uce"] == pytest.approx(0, abs=0.004)


def test_patch_values():
    pred, target = np.zeros((13, 2, 2)), np.full((13, 2, 2), 0.1)
    v = patch_uncertainty(pred, target, np.full((13, 2, 2), 0.04))
    assert v == pytest.approx({"var_mean": 0.04, "error_mean": 0.1, "se_mean": 0.01})


def test_too_few_patches_give_nan():
    assert math.isnan(calibration([0.1], [0.1], [0.01])["uce"])


@pytest.mark.slow
def test_evaluate_a_model_with_variance(tmp_path: Path) -> None:
    synthesize(tmp_path / "root", n=4, size=64, seed=0)
    torch.manual_seed(0)
    model = UnCRtainTS(encoder_widths=[8], decoder_widths=[8])
    method = ModelMethod(model, name="unc", device="cpu")
    assert method.scaling == "reflectance" and method.predicts_variance
    summary = evaluate(method, tmp_path / "root", tmp_path / "ev", split=None)
    with open(tmp_path / "ev" / "per_patch.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == PER_PATCH_COLUMNS + UNCERTAINTY_COLUMNS
        rows = list(reader)
    unc = summary["uncertainty"]
    recomputed = calibration(*([float(r[k]) for r in rows] for k in UNCERTAINTY_COLUMNS))
    assert unc["uce"] == pytest.approx(recomputed["uce"]) and unc["patches"] == len(rows)
    # The variance is the model's, in reflectance squared: its mean over the first patch.
    assert float(rows[0]["var_mean"]) > 0
    saved = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert saved["uncertainty"]["auce"] == pytest.approx(unc["auce"])
    assert "## Uncertainty calibration" in (tmp_path / "ev" / "table.md").read_text()
    assert "reliability plot" in (tmp_path / "ev" / "report.html").read_text()
