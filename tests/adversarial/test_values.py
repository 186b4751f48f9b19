"""Values an adversarial user feeds (issue 17, items 3-6): S1 with NaN and infinities, S2 as
reflectance, S1 in linear power, an empty S2, NaN weights, predictions below 0 or on the
nodata value. Each is handled as documented or refused with a clear error; no input changes
and no output is left behind by a failure."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from cloudfree.cli import main
from cloudfree.data.synthetic.release import synthesize
from cloudfree.models import save_weights
from cloudfree.train.run_log import read_metrics_csv
from tests.predict.conftest import read_tif, synth_s1, synth_s2, tiny_model, write_tif

from .conftest import digest, fails


def _rewrite(path: Path, change) -> None:  # noqa: ANN001
    """Rewrite a GeoTIFF's values in place (float32), keeping its grid."""
    with rasterio.open(path) as ds:
        data, profile = ds.read().astype(np.float32), ds.profile
    profile.update(dtype="float32")
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(change(data))


def _nan_and_infinities(s1: np.ndarray) -> np.ndarray:
    s1[0, :4, :4] = np.nan
    s1[1, 4:8, :4] = np.inf
    s1[:, 8:12, :4] = -np.inf
    return s1


@pytest.fixture(scope="module")
def bad_s1_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 synthetic 32-px triplets whose every S1 holds NaN, +inf and -inf."""
    root = tmp_path_factory.mktemp("bad_s1") / "root"
    synthesize(root, n=6, seed=0, size=32)
    for f in root.rglob("*_s1_*.tif"):
        _rewrite(f, _nan_and_infinities)
    return root


def test_s1_with_nan_and_infinities_is_evaluated_and_trained_on(
    bad_s1_root: Path, tmp_path: Path
) -> None:
    sar = save_weights(tiny_model(True), tmp_path / "sar.safetensors")
    out = tmp_path / "eval"
    argv = ["evaluate", "--checkpoint", str(sar), "--data", str(bad_s1_root), "--out", str(out),
            "--split", "all", "--no-report", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    with open(out / "per_patch.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all(math.isfinite(float(r["mae"])) for r in rows)
    assert json.loads((out / "summary.json").read_text())["metrics"]["mae"] is not None

    argv = ["train", "--config", "debug_tiny", f"data.root={bad_s1_root}",
            f"train.out_dir={tmp_path}", "train.run_name=run", "train.epochs=2"]  # fmt: skip
    assert main(argv) == 0
    values = [(split, v) for _, split, _, v in read_metrics_csv(tmp_path / "run" / "metrics.csv")]
    assert {s for s, _ in values} >= {"train", "val"}
    assert all(math.isfinite(v) for _, v in values), values


def test_wrong_units_are_refused_with_the_conversion(
    scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refl = write_tif(scene["dir"] / "refl.tif", synth_s2(48, 48).astype(np.float32) / 10000)
    power = write_tif(scene["dir"] / "power.tif", 10 ** (synth_s1(48, 48) / 10))
    before = digest(scene["dir"])
    out = tmp_path / "out.tif"
    w, sar, s2 = str(scene["weights"]), str(scene["sar"]), str(scene["s2"])
    fails(["predict", "--s2", str(refl), "--out", str(out), "--checkpoint", w, "--no-progress"],
          capsys, str(refl), "reflectance (0-1), not digital numbers", "x 10000")  # fmt: skip
    fails(["mask", str(refl), "--out", str(out)], capsys, str(refl), "reflectance")
    fails(["predict", "--s2", s2, "--s1", str(power), "--out", str(out), "--checkpoint", sar,
           "--no-progress"], capsys, str(power), "not dB", "10 * log10(power)")  # fmt: skip
    assert digest(scene["dir"]) == before and not list(tmp_path.glob("*out*"))


def test_an_empty_s2_is_refused_and_zeros_are_nodata(
    scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = write_tif(scene["dir"] / "empty.tif", np.zeros((13, 48, 48), np.uint16))
    out, w = tmp_path / "out.tif", str(scene["weights"])
    fails(["predict", "--s2", str(empty), "--out", str(out), "--checkpoint", w, "--no-progress"],
          capsys, str(empty), "0 in every band", "an empty image")  # fmt: skip
    fails(["mask", str(empty), "--out", str(out)], capsys, "an empty image")
    # Declared nodata, every pixel nodata: nothing to predict, and the mask says so.
    holes = write_tif(scene["dir"] / "holes.tif", np.zeros((13, 48, 48), np.uint16), nodata=0)
    fails(["predict", "--s2", str(holes), "--out", str(out), "--checkpoint", w, "--no-progress"],
          capsys, "every pixel is nodata", "nothing to predict")  # fmt: skip
    assert main(["mask", str(holes), "--out", str(out)]) == 0
    assert "no pixel holds data" in capsys.readouterr().out
    out.unlink()

    # Part of the scene 0 in every band, no nodata declared: those pixels stay 0 (Sentinel-2's
    # NO_DATA) and are not counted as clear, cloud or shadow.
    data = synth_s2(48, 48)
    data[:, :, :12] = 0
    part = write_tif(scene["dir"] / "part.tif", data)
    assert main(["predict", "--s2", str(part), "--out", str(out), "--checkpoint", w,
                 "--keep-clear", "--no-progress"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    pred, _ = read_tif(out)
    assert not pred[:, :, :12].any() and pred[:, :, 12:].any(axis=0).all()
    assert "of the pixels with data; nodata 25.00 %" in printed, printed


def test_nan_weights_are_refused(
    scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_model(False)
    with torch.no_grad():
        model.body[0].conv1.weight[0, 0, 0, 0] = float("nan")
    bad = save_weights(model, tmp_path / "diverged.safetensors")
    out = tmp_path / "out.tif"
    fails(["predict", "--s2", str(scene["s2"]), "--out", str(out), "--checkpoint", str(bad),
           "--no-progress"], capsys, str(bad), "hold NaN or inf", "body.0.conv1.weight")  # fmt: skip
    fails(["evaluate", "--checkpoint", str(bad), "--data", str(tmp_path), "--out",
           str(tmp_path / "eval")], capsys, "hold NaN or inf")  # fmt: skip
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


@pytest.mark.parametrize(("dtype", "nodata"), [("int16", 0), ("uint16", None), ("float32", 0)])
def test_predicted_values_are_never_negative_nor_nodata(
    tmp_path: Path, dtype: str, nodata: float | None
) -> None:
    """A model that predicts far below 0 DN: written as 0 DN, moved one step off the nodata
    value (or, without one, off 'every band 0'); input nodata pixels stay nodata."""
    model = tiny_model(False)
    with torch.no_grad():
        model.tail.bias.fill_(-10.0)  # -10 network units = -20000 DN
    w = save_weights(model, tmp_path / "dark.safetensors")
    data = synth_s2(40, 40).astype(dtype)
    data[:, :5, :5] = 0  # nodata (declared, or 0 in every band)
    src = write_tif(tmp_path / "s2.tif", data, nodata=nodata)
    out = tmp_path / "out.tif"
    assert main(["predict", "--s2", str(src), "--out", str(out), "--checkpoint", str(w),
                 "--no-progress"]) == 0  # fmt: skip
    pred, profile = read_tif(out)
    assert profile["dtype"] == dtype and profile["nodata"] == nodata
    holes = np.zeros((40, 40), bool)
    holes[:5, :5] = True
    assert (pred[:, holes] == 0).all()  # the input's nodata pixels
    rest = pred[:, ~holes].astype(np.float64)
    assert rest.min() >= 0 and rest.max() <= 1  # 0 DN, moved one step up
    if nodata is None:
        assert (rest > 0).all(axis=0).all()  # no predicted pixel 0 in every band
    else:
        assert (rest != nodata).all()  # no predicted band value on the nodata value


def test_evaluate_says_why_no_patch_could_be_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    synthesize(root, n=4, seed=0, size=32)
    for f in root.rglob("*_s1_*.tif"):
        _rewrite(f, lambda db: 10 ** (db / 10))  # linear power
    sar = save_weights(tiny_model(True), tmp_path / "sar.safetensors")
    before = digest(root)
    with pytest.warns(UserWarning, match="skipping bad patch"):
        fails(["evaluate", "--checkpoint", str(sar), "--data", str(root), "--out",
               str(tmp_path / "eval"), "--split", "all"], capsys,
              "none of the 4 patches of split all could be evaluated", "the first: patch ROIs",
              "(s1): S1 values", "not dB", "10 * log10(power)")  # fmt: skip
    assert digest(root) == before
    assert not list((tmp_path / "eval").glob("*"))  # no summary, no per_patch.csv of nothing
