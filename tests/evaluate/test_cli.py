"""`cloudfree evaluate` and `cloudfree compare` end to end on synthetic data."""

import csv
import json

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
