"""`cloudfree evaluate` and `cloudfree compare` end to end on synthetic data."""

import csv
import json

import pytest

from cloudfree.cli import main
from cloudfree.data.synthetic.release import synthesize


def test_evaluate_then_compare(tmp_path, capsys):
    data = tmp_path / "data"
    synthesize(data, n=6, seed=0, size=64)
    runs = []
    for method in ("identity", "mask-fill"):
        out = tmp_path / method
        args = ["evaluate", "--checkpoint", method, "--data", str(data), "--split", "all"]
        assert main([*args, "--out", str(out)]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert (summary["method"], summary["protocol"], summary["split"]) == (
            method,
            "paper",
            "all",
        )
        with open(out / "per_patch.csv", newline="") as f:
            assert len(list(csv.DictReader(f))) == summary["count"] == 6
        assert "MAE recon" in (out / "table.md").read_text()
        runs.append(out)
    identity, fill = (json.loads((r / "summary.json").read_text())["metrics"] for r in runs)
    assert identity["mae_reprod"] == 0.0 and fill["mae_reprod"] == 0.0
    assert fill["mae_recon"] < identity["mae_recon"]  # inpainting beats copying the clouds
    capsys.readouterr()
    table = tmp_path / "compare.md"
    assert main(["compare", *map(str, runs), "--out", str(table)]) == 0
    printed = capsys.readouterr().out
    assert "identity (paper, all, n=6)" in printed and "(published) DSen2-CR, L_CARL" in printed
    assert table.read_text().strip() == printed.strip()
    # a folder that is not an evaluation: exit code 1 and a clear message
    assert main(["compare", str(data)]) == 1
    assert "summary.json" in capsys.readouterr().err


def test_compare_evaluates_checkpoints_by_name_with_short_names(tmp_path, capsys):
    """`compare --checkpoint`: registry names, files and baselines evaluated and tabled side by
    side; rows show short names, never paths, also for summaries written with paths."""
    import shutil

    from cloudfree.methods.load import load_method
    from cloudfree.models import DSen2CR, save_weights

    data = tmp_path / "data"
    synthesize(data, n=4, seed=1, size=64)
    weights = save_weights(
        DSen2CR(include_sar=False, num_layers=1, feature_size=4), tmp_path / "mine.safetensors"
    )
    keep = tmp_path / "evals"
    args = ["compare", "--checkpoint", "identity", "--checkpoint", str(weights),
            "--checkpoint", "dsen2cr-demo-nosar", "--data", str(data), "--split", "all",
            "--no-published", "--eval-out", str(keep)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    for row in ("identity (paper, all, n=4)", "mine (paper, all, n=4)",
                "dsen2cr-demo-nosar (paper, all, n=4)"):  # fmt: skip
        assert row in printed
    assert str(tmp_path) not in printed
    summary = json.loads((keep / "mine" / "summary.json").read_text())
    assert summary["method"] == "mine" and summary["weights"] == str(weights.resolve())
    # The identity row of compare equals an evaluation of identity on its own.
    alone = tmp_path / "alone"
    assert main(["evaluate", "--checkpoint", "identity", "--data", str(data), "--split", "all",
                 "--out", str(alone), "--no-report"]) == 0  # fmt: skip
    assert (
        json.loads((alone / "summary.json").read_text())["metrics"]
        == json.loads((keep / "identity" / "summary.json").read_text())["metrics"]
    )
    # A summary written before names were short (a path as method): shown short.
    old = tmp_path / "old"
    shutil.copytree(keep / "mine", old)
    s = json.loads((old / "summary.json").read_text())
    s["method"] = f"{tmp_path}/runs/alpine (best)"
    (old / "summary.json").write_text(json.dumps(s))
    capsys.readouterr()
    assert main(["compare", str(old), str(keep / "mine"), "--no-published"]) == 0
    printed = capsys.readouterr().out
    assert "| alpine (best) (paper, all, n=4)" in printed and str(tmp_path) not in printed
    assert load_method(str(weights)).name == "mine"
    # Errors: nothing to compare, --checkpoint without --data, an unknown name (suggestion).
    assert main(["compare"]) == 1
    assert "needs evaluation folders" in capsys.readouterr().err
    assert main(["compare", "--checkpoint", "identity"]) == 1
    assert "--checkpoint needs --data" in capsys.readouterr().err
    assert main(["compare", "--checkpoint", "dsen2cr-demo-nosr", "--data", str(data)]) == 1
    assert "did you mean 'dsen2cr-demo-nosar'" in capsys.readouterr().err


def test_evaluate_a_series_index_then_compare_with_the_benchmark(tmp_path, capsys):
    """`cloudfree evaluate --data ts.csv`: SEN12MS-CR-TS samples, temporal and one-date methods;
    each sample's MAE against the DN of the dates it names (S2 DN = 1000 + 10 t, uniform)."""
    from tests.data.timeseries.test_dataset import _copy

    root = _copy(tmp_path / "ts", size=32)
    index = tmp_path / "ts.csv"
    assert main(["index", str(root), "--out", str(index)]) == 0
    outs = {}
    for method in ("median", "identity"):
        out = outs[method] = tmp_path / method
        assert main(["evaluate", "--checkpoint", method, "--data", str(index), "--out", str(out),
                     "--coverage", "dsen2cr", "--no-progress"]) == 0  # fmt: skip
        summary = json.loads((out / "summary.json").read_text())
        assert (summary["protocol"], summary["split"], summary["count"]) == ("sen12mscr-ts",
                                                                             "test", 2)  # fmt: skip
        assert summary["temporal"] == (method == "median") and summary["input_t"] == 3
        with open(out / "per_patch.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["id"] for r in rows] == ["ROIs1868/119/0", "ROIs1868/119/1"]
        for r in rows:
            ts = [int(t) for t in r["input_t"].split()]
            assert len(ts) == 3
            # median of the inputs' DN, or the least cloudy input (all clear: the first)
            dn = sorted(ts)[1] if method == "median" else ts[0]
            assert float(r["mae"]) == pytest.approx(abs(10 * (dn - int(r["target_t"]))) / 1e4)
    capsys.readouterr()
    assert main(["compare", str(outs["median"]), str(outs["identity"])]) == 0
    printed = capsys.readouterr().out
    assert "median (sen12mscr-ts, test, n=2)" in printed
    assert "(published) UnCRtainTS sigma, t=3 [SEN12MS-CR-TS benchmark]" in printed
    assert "DSen2-CR, L_CARL" not in printed  # another protocol's rows stay out
    # compare evaluates methods on the series itself
    assert main(["compare", "--checkpoint", "median", "--checkpoint", "composite", "--data",
                 str(index), "--split", "test", "--coverage", "dsen2cr"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "median (sen12mscr-ts, test, n=2)" in printed
    assert "composite (sen12mscr-ts, test, n=2)" in printed
    # protocols that do not fit the data are refused with what to do
    args = ["evaluate", "--checkpoint", "median", "--data", str(index)]
    assert main([*args, "--out", str(tmp_path / "x"), "--protocol", "paper"]) == 1
    assert "evaluated with --protocol sen12mscr-ts" in capsys.readouterr().err
    synthesize(tmp_path / "cr", n=2, seed=0, size=64)
    assert main(["evaluate", "--checkpoint", "identity", "--data", str(tmp_path / "cr"),
                 "--out", str(tmp_path / "y"), "--protocol", "sen12mscr-ts"]) == 1  # fmt: skip
    assert "must be the index CSV of a SEN12MS-CR-TS copy" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_evaluate_a_temporal_network_on_a_series_index(tmp_path, capsys):
    """A multi-temporal UnCRtainTS saved by cloudfree: loaded for series, fed S1 and days."""
    import torch

    from cloudfree.models import save_weights
    from cloudfree.models.uncrtaints_mt import UnCRtainTSMT
    from tests.data.timeseries.test_dataset import _copy

    torch.manual_seed(0)
    weights = tmp_path / "mt.safetensors"
    save_weights(UnCRtainTSMT(encoder_widths=[8], decoder_widths=[8], n_head=2, d_model=8),
                 weights)  # fmt: skip
    index = tmp_path / "ts.csv"
    assert main(["index", str(_copy(tmp_path / "ts", size=32)), "--out", str(index)]) == 0
    out = tmp_path / "mt"
    assert main(["evaluate", "--checkpoint", str(weights), "--data", str(index), "--out",
                 str(out), "--coverage", "dsen2cr", "--limit", "1", "--no-progress"]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["temporal"] and summary["model"] == "uncrtaints-mt" and summary["count"] == 1
    assert 0 < summary["metrics"]["mae"] < 1
    # an NLL model: its variances scored as for SEN12MS-CR (per sample, then calibration)
    with open(out / "per_patch.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["var_mean"]) > 0 and float(row["se_mean"]) > 0
    assert summary["uncertainty"]["patches"] == 1
    assert summary["uncertainty"]["mean_var"] == pytest.approx(float(row["var_mean"]), rel=1e-5)
    assert "Uncertainty calibration" in (out / "table.md").read_text()
    # the same file is refused where one image is given
    capsys.readouterr()
    synthesize(tmp_path / "cr", n=2, seed=0, size=64)
    assert main(["evaluate", "--checkpoint", str(weights), "--data", str(tmp_path / "cr"),
                 "--out", str(tmp_path / "y")]) == 1  # fmt: skip
    assert "temporal model" in capsys.readouterr().err
