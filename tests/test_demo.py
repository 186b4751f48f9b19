"""`make demo` runs `cloudfree demo`: the whole pipeline so far must work end to end."""

import json
import warnings

import numpy as np
import rasterio

from cloudfree.cli import main


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n", "8", "--seed", "3"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["index"]["complete"] == 8 and summary["packed_patches"] == 8
    # the paper's mask finds the simulated clouds: far better than chance on both counts
    assert summary["mask_precision"] > 0.6 and summary["mask_recall"] > 0.5
    # identity baseline: it reproduces its own input exactly on the clear area
    assert summary["identity_baseline"]["mae_reprod"] == 0.0
    assert summary["identity_baseline"]["mae_recon"] > 0.01
    assert summary["training"]["steps"] > 0 and np.isfinite(summary["training"]["last_loss"])
    with warnings.catch_warnings():  # a quicklook PNG has no georeferencing, on purpose
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(out / "quicklook.png") as ds:
            img = ds.read()
    assert img.shape[0] == 3 and img.shape[2] > 4 * 64 and img.std() > 10  # four panels, not blank
    assert "[7/7]" in capsys.readouterr().out
