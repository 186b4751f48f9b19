"""``evaluate``: per-patch rows checked against metrics computed independently from the files."""

from __future__ import annotations

import csv
import json
import math
import shutil
import tracemalloc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize
from cloudfree.evaluate.run import PER_PATCH_COLUMNS, SUMMARY_KEYS, evaluate, run_evaluate_cli
from cloudfree.io import read_raster
from cloudfree.masks.csm import cloud_shadow_mask
from cloudfree.metrics import METRIC_KEYS, compute

SUMMARY_FIELDS = {
    "method", "protocol", "split", "count", "skipped", "skipped_example", "left_out", "metrics", "by_season",
    "by_cloud_bin", "data", "columns", "table_psnr", "created_utc", "cloudfree_version",
    "method_mask",
}  # fmt: skip


class Shifted:
    """A stand-in method: the cloudy input plus a constant (network scale, DN / 2000)."""

    include_sar = False
    scaling = "dsen2cr"

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.name = f"shift{offset:g}"

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        assert batch["mask"].dtype == torch.uint8  # the evaluation's mask is handed over
        return batch["s2_cloudy"].clone() + self.offset


@pytest.fixture(scope="module")
def synth64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth64")
    synthesize(root, n=6, size=64, seed=0)
    return root


def read_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "per_patch.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == PER_PATCH_COLUMNS
        return list(reader)


def column(rows: list[dict[str, str]], key: str) -> np.ndarray:
    return np.array([float(r[key]) for r in rows])


def read_dn(root: Path, patch_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Cloudy and clear DN of one patch, clipped to [0, 10000] as the paper's loader does."""
    index = build_index(root)
    row = next(r for r in index.rows if r.id == patch_id)
    cloudy = read_raster(index.resolve(row, "s2_cloudy"))[0]
    target = read_raster(index.resolve(row, "s2"))[0]
    return np.clip(cloudy, 0, 10000), np.clip(target, 0, 10000)


def reference_metrics(
    root: Path,
    patch_id: str,
    offset: float,
    clip: bool,
    crop: int | None = None,
    ssim_padding: str = "valid",
) -> dict[str, float]:
    """Metrics of one patch straight from its GeoTIFFs (DN / 10000), without the pipeline."""
    cloudy_dn, target_dn = read_dn(root, patch_id)
    mask = cloud_shadow_mask(cloudy_dn)  # on the full patch, before any crop
    cloudy, target = cloudy_dn / 10000.0, target_dn / 10000.0
    pred = cloudy + offset * 2000.0 / 10000.0
    if clip:
        pred = np.clip(pred, 0.0, 1.0)
    if crop is not None:
        r = (cloudy.shape[-1] - crop) // 2
        sl = (..., slice(r, r + crop), slice(r, r + crop))
        pred, target, cloudy, mask = pred[sl], target[sl], cloudy[sl], mask[sl]
    return compute(pred, target, cloudy, mask, ssim_padding=ssim_padding)


def assert_row_matches(row: Mapping[str, str], ref: Mapping[str, float]) -> None:
    for key in METRIC_KEYS:
        assert float(row[key]) == pytest.approx(ref[key], rel=1e-6, abs=1e-9, nan_ok=True), key


def test_outputs_rows_and_nan_aware_summary(synth64: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    summary = evaluate(Shifted(0.0), synth64, out, split=None, batch_size=4, report=False)
    rows = read_rows(out)
    index = build_index(synth64)
    assert sorted(r["id"] for r in rows) == sorted(r.id for r in index.rows)  # one row each
    assert summary["count"] == len(rows) == 6 and summary["skipped"] == 0
    on_disk = json.loads((out / "summary.json").read_text())
    assert set(on_disk) == SUMMARY_FIELDS
    assert on_disk["split"] == "all" and on_disk["protocol"] == "paper"
    assert on_disk["method"] == "shift0"
    for key in SUMMARY_KEYS:
        assert on_disk["metrics"][key] == pytest.approx(np.nanmean(column(rows, key)), rel=1e-9)
    # The identity reproduces its own input exactly in the clear area.
    assert (column(rows, "mae_reprod") == 0).all() and on_disk["metrics"]["mae_reprod"] == 0
    assert on_disk["metrics"]["mae_recon"] > 0.01
    # Season and cloud-cover groups: every patch once, means of their own rows.
    assert sum(g["count"] for g in on_disk["by_season"].values()) == 6
    assert list(on_disk["by_cloud_bin"]) == ["0-10 %", "10-30 %", "30-60 %", "60-100 %"]
    assert sum(g["count"] for g in on_disk["by_cloud_bin"].values()) == 6
    spring = [r for r in rows if r["season"] == "spring"]
    assert on_disk["by_season"]["spring"]["count"] == len(spring)
    assert on_disk["by_season"]["spring"]["mae"] == pytest.approx(column(spring, "mae").mean())
    high = [r for r in rows if float(r["cloud_fraction"]) >= 0.6]
    assert on_disk["by_cloud_bin"]["60-100 %"]["count"] == len(high)
    table = (out / "table.md").read_text()
    assert "| shift0 |" in table and "## By season" in table and "## By cloud cover" in table


def test_rows_match_metrics_computed_from_the_files(synth64: Path, tmp_path: Path) -> None:
    evaluate(Shifted(0.0), synth64, tmp_path, split="train", batch_size=3, report=False)
    rows = read_rows(tmp_path)
    assert len(rows) == sum(r.split == "train" for r in build_index(synth64).rows)
    for row in rows:
        assert_row_matches(row, reference_metrics(synth64, row["id"], 0.0, clip=False))
        m = cloud_shadow_mask(read_dn(synth64, row["id"])[0])
        assert float(row["shadow_fraction"]) == pytest.approx((m == 2).mean())
        assert float(row["cloud_fraction"]) == pytest.approx((m != 0).mean())


def test_only_the_requested_split_is_evaluated(synth64: Path, tmp_path: Path) -> None:
    summary = evaluate(Shifted(0.0), synth64, tmp_path, split="test", report=False)
    test_ids = [r.id for r in build_index(synth64).rows if r.split == "test"]
    assert [r["id"] for r in read_rows(tmp_path)] == test_ids
    assert summary["split"] == "test" and summary["count"] == len(test_ids)


def test_leaderboard_like_the_paper_does_not_clip(synth64: Path, tmp_path: Path) -> None:
    # +3 network units = +0.6 reflectance: most predicted values exceed 1.
    runs = {}
    for name in ("paper", "leaderboard"):
        runs[name] = evaluate(
            Shifted(3.0), synth64, tmp_path / name, split="train", protocol=name, report=False
        )
    # UnCRtainTS never clips the prediction: the leaderboard's MAE is the paper's (GLF-CR's
    # script clips: test_glf_cr_evaluates_the_centre_128_crop).
    assert runs["leaderboard"]["metrics"]["mae"] == pytest.approx(runs["paper"]["metrics"]["mae"])
    for name, padding in (("paper", "valid"), ("leaderboard", "zero")):
        for row in read_rows(tmp_path / name):
            ref = reference_metrics(synth64, row["id"], 3.0, clip=False, ssim_padding=padding)
            assert_row_matches(row, ref)
    # The SSIM variants differ (zero-padded borders), the rest agrees.
    assert runs["leaderboard"]["metrics"]["ssim"] != pytest.approx(runs["paper"]["metrics"]["ssim"])
    # Both PSNRs are in both summaries; Jensen: the mean of per-patch PSNRs is never below the
    # PSNR of the mean RMSE.
    m = runs["paper"]["metrics"]
    assert m["psnr_mean_rmse"] == pytest.approx(20 * math.log10(1 / m["rmse"]))
    assert m["psnr"] >= m["psnr_mean_rmse"]
    assert runs["paper"]["table_psnr"] == "psnr_mean_rmse"
    assert runs["leaderboard"]["table_psnr"] == "psnr"


def test_patch_without_cloud_gives_nan_recon(synth64: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(synth64, root)
    index = build_index(root)
    clear = next(r for r in index.rows if r.id == "ROIs1868_summer_1_p1")
    # The clear image as the cloudy input: the mask sees nothing, the recon area is empty.
    shutil.copyfile(index.resolve(clear, "s2"), index.resolve(clear, "s2_cloudy"))
    assert not cloud_shadow_mask(read_raster(index.resolve(clear, "s2_cloudy"))[0]).any()

    summary = evaluate(Shifted(0.0), root, tmp_path / "out", split="train", report=False)
    rows = read_rows(tmp_path / "out")
    row = next(r for r in rows if r["id"] == clear.id)
    for key in ("mae_recon", "sam_recon", "rmse_recon"):
        assert math.isnan(float(row[key]))
    assert float(row["cloud_fraction"]) == 0.0 and float(row["mae"]) == 0.0
    assert float(row["psnr"]) == math.inf  # the prediction equals the target exactly
    others = [r for r in rows if r["id"] != clear.id]
    # The recon means skip the undefined patch; the target means count every patch.
    assert summary["metrics"]["mae_recon"] == pytest.approx(column(others, "mae_recon").mean())
    assert summary["metrics"]["mae"] == pytest.approx(column(rows, "mae").mean())
    assert summary["count"] == len(rows) == len(others) + 1
    # +inf PSNR makes the mean +inf (as in the paper's code), written as null in strict JSON.
    assert summary["metrics"]["psnr"] == math.inf
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["metrics"]["psnr"] is None


def test_glf_cr_evaluates_the_centre_128_crop(tmp_path: Path) -> None:
    root = tmp_path / "data"
    synthesize(root, n=2, size=256, seed=1)
    evaluate(
        Shifted(0.5),
        root,
        tmp_path / "g",
        split=None,
        protocol="glf-cr",
        batch_size=2,
        report=False,
    )
    rows = read_rows(tmp_path / "g")
    assert len(rows) == 2
    for row in rows:
        assert_row_matches(row, reference_metrics(root, row["id"], 0.5, clip=True, crop=128))
        full = reference_metrics(root, row["id"], 0.5, clip=True)
        assert float(row["mae"]) != pytest.approx(full["mae"], rel=1e-6)


def test_glf_cr_crop_larger_than_patch_is_an_error(synth64: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="128x128 centre crop is larger than the 64x64"):
        evaluate(Shifted(0.0), synth64, tmp_path, split=None, protocol="glf-cr", report=False)
    assert not (tmp_path / "per_patch.csv").exists()  # nothing half-written


def test_index_csv_and_packed_folder_give_the_same_rows(synth64: Path, tmp_path: Path) -> None:
    from cloudfree.data.packed.pack import pack

    csv_path = write_index(build_index(synth64), tmp_path / "index.csv")
    pack(csv_path, tmp_path / "packed", workers=0)
    results = []
    for name, data in (("root", synth64), ("csv", csv_path), ("packed", tmp_path / "packed")):
        evaluate(Shifted(0.0), data, tmp_path / f"eval_{name}", split="train", report=False)
        results.append({r["id"]: r for r in read_rows(tmp_path / f"eval_{name}")})
    assert results[0] == results[1] == results[2]


@pytest.mark.slow
def test_limit_and_streaming_memory(tmp_path: Path) -> None:
    root = tmp_path / "data"
    synthesize(root, n=24, size=32, seed=2)
    # Lazy imports and one-time caches allocate on the first evaluation in the process:
    # warm up, so that neither measured run pays for them.
    evaluate(Shifted(0.0), root, tmp_path / "warm", split=None, limit=2)
    peaks = {}
    for n in (8, 24):
        tracemalloc.start()
        try:
            s = evaluate(Shifted(0.0), root, tmp_path / f"n{n}", split=None, limit=n)
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert s["count"] == n and len(read_rows(tmp_path / f"n{n}")) == n
    # Rows go to disk, not to a list: 3x the patches must not cost ~3x the memory.
    assert peaks[24] < 1.5 * peaks[8]


def test_cli_handler_prints_the_table(
    synth64: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = run_evaluate_cli("identity", str(synth64), str(tmp_path), split="train", limit=2)
    printed = capsys.readouterr().out
    assert rc == 0
    assert "| identity |" in printed and "MAE" in printed
    assert json.loads((tmp_path / "summary.json").read_text())["count"] == 2


@pytest.mark.slow
def test_identity_on_real_pairs(sen12mscr_root: Path, tmp_path: Path) -> None:
    # The real cloudy/clear pairs are all in the official train split.
    summary = evaluate(
        "identity", sen12mscr_root, tmp_path, split="train", include_sar=False, batch_size=4
    )
    rows = read_rows(tmp_path)
    assert summary["count"] == len(rows) > 0
    # It reproduces its own input (fully covered patches have no clear area: NaN, skipped).
    reprod = column(rows, "mae_reprod")
    assert (reprod[~np.isnan(reprod)] == 0).all() and summary["metrics"]["mae_reprod"] == 0
    # Visible clouds: the cloudy input is far from the target where the mask sees clouds.
    assert summary["metrics"]["mae_recon"] > 0.02
    cloudy = column(rows, "cloud_fraction") > 0.3
    assert np.nanmean(column(rows, "mae_recon")[cloudy]) > 0.05
