"""The one NaN-aware mean (``cloudfree.metrics.mean.NanMean``), on values worked by hand."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from cloudfree.metrics.mean import NanMean


def test_means_skip_nan_per_key() -> None:
    acc = NanMean(["mae", "mae_recon"])
    acc.add({"mae": 0.1, "mae_recon": math.nan, "extra": 9.0})  # extra keys are ignored
    acc.add({"mae": 0.3, "mae_recon": 0.5})
    acc.add({"mae": 0.2, "mae_recon": 0.25})
    # mae: (0.1 + 0.3 + 0.2) / 3; mae_recon: (0.5 + 0.25) / 2, the NaN patch left out.
    assert acc.means() == pytest.approx({"mae": 0.2, "mae_recon": 0.375})
    assert acc.summary()["count"] == 3
    assert list(acc.means()) == ["mae", "mae_recon"]


def test_never_defined_is_nan_and_inf_propagates() -> None:
    acc = NanMean(["psnr", "sam_reprod"])
    assert math.isnan(acc.means()["psnr"]) and acc.count == 0
    acc.add({"psnr": 30.0, "sam_reprod": math.nan})
    acc.add({"psnr": math.inf, "sam_reprod": math.nan})  # a perfect patch
    assert acc.means()["psnr"] == math.inf
    assert math.isnan(acc.means()["sam_reprod"])


def test_totals_merge_like_rows() -> None:
    rows = [{"a": 1.0, "b": math.nan}, {"a": 2.0, "b": 4.0}, {"a": math.nan, "b": 6.0}]
    one = NanMean(["a", "b"])
    for r in rows:
        one.add(r)
    merged = NanMean(["a", "b"])
    merged.add(rows[0])
    # rows 1 and 2 as another process would report them: sums (2, 10), counts (1, 2).
    merged.add_totals([2.0, 10.0], [1.0, 2.0], rows=2)
    assert merged.summary() == one.summary() == {"a": 1.5, "b": 5.0, "count": 3}
    with pytest.raises(ValueError, match="one sum and one count per key"):
        merged.add_totals([1.0], [1.0, 1.0], rows=1)


def test_missing_key_is_an_error() -> None:
    with pytest.raises(KeyError):
        NanMean(["mae"]).add({"rmse": 0.1})


def test_does_not_import_torch() -> None:
    """evaluate's tables and the CLI use it; torch must stay out of their imports."""
    code = "import sys, cloudfree.metrics.mean; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["False"]
