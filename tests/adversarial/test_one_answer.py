"""Issue 30, class 8: one answer per question. The viewer's live scores are ``evaluate``'s
numbers for the same patch (the viewer calls the evaluation's code); the Python version the
package declares is the one the code and the type check are written for; which kind of dataset
a path is, is decided in one place."""

from __future__ import annotations

import csv
import re
import tomllib
from pathlib import Path

import pytest

from cloudfree.cli import main
from cloudfree.data.synthetic.release import synthesize
from tests.conftest import REPO


def test_the_viewer_scores_a_patch_as_evaluate_does(tmp_path: Path) -> None:
    from cloudfree.viewer.catalog import Catalog

    synthesize(tmp_path / "root", n=3, seed=1, size=64)
    # Targets brighter than 10000 DN in places (snow, bright cloud in a "clear" target, as
    # SEN12MS-CR has): evaluate clips them to [0, 10000] DN (spec section 2); so must the viewer.
    import rasterio

    for target in (tmp_path / "root").rglob("*_s2_[0-9]*.tif"):
        with rasterio.open(target, "r+") as ds:
            values = ds.read()
            values[:, :16, :16] = 14000
            ds.write(values)
    ev = tmp_path / "ev"
    assert main(["evaluate", "--checkpoint", "mask-fill", "--data", str(tmp_path / "root"),
                 "--split", "all", "--out", str(ev), "--no-report"]) == 0  # fmt: skip
    with open(ev / "per_patch.csv", newline="") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    cat = Catalog(tmp_path / "root", checkpoints=["mask-fill"])
    checked = 0
    for n, row in enumerate(cat.rows):
        if row.id not in rows:
            continue
        scores = cat.live_prediction(n, "mask-fill")[1]
        assert scores is not None
        for key in ("psnr", "ssim", "mae", "sam", "rmse_recon", "mae_reprod"):
            want = float(rows[row.id][key])
            assert scores[key] == pytest.approx(want, rel=1e-6, abs=1e-8, nan_ok=True), (
                row.id,
                key,
            )  # float32 DN
        checked += 1
    assert checked == len(rows) == 3


def test_the_declared_python_is_the_one_the_code_needs() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    low = re.fullmatch(r">=\s*3\.(\d+)", meta["project"]["requires-python"])
    assert low is not None
    # datetime.UTC and tomllib (3.11) are used; mypy checks the declared minimum.
    assert int(low[1]) == 11
    assert meta["tool"]["mypy"]["python_version"] == f"3.{low[1]}"


def test_the_kind_of_a_dataset_path_is_decided_in_one_place() -> None:
    from cloudfree.data.source import data_kind

    uses = [p for p in (REPO / "src" / "cloudfree").rglob("*.py")
            if '"manifest.json"' in p.read_text() and p.name != "source.py"]  # fmt: skip
    assert uses == [], uses
    assert data_kind(REPO) == "root"
