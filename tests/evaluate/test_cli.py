"""`cloudfree evaluate` and `cloudfree compare` end to end on synthetic data."""

import csv
import json

from cloudfree.cli import main
from cloudfree.data.synth import synthesize


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
