"""`make demo` runs `cloudfree demo`: a synthetic cloudy scene made clear, end to end."""

import json

import numpy as np
import pytest
import rasterio
from PIL import Image

from cloudfree.cli import main
from cloudfree.predict.bundled import bundled_weights


def test_demo_removes_clouds_from_a_scene(tmp_path, capsys):
    try:
        bundled_weights(include_sar=True)
    except Exception as e:  # noqa: BLE001 (any reason the bundled file is unusable)
        pytest.fail(f"the bundled weights must ship with the package: {e}")
    out = tmp_path / "demo"
    # 320 px: larger than one 256-px tile, so tiling and blending are exercised.
    assert main(["demo", "--out", str(out), "--size", "320", "--seed", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())

    # The output is on the input's grid, in DN like the input.
    with (
        rasterio.open(out / "scene" / "s2_cloudy.tif") as src,
        rasterio.open(out / "prediction.tif") as pred,
    ):
        assert (pred.crs, pred.transform, pred.shape, pred.count) == (
            src.crs, src.transform, src.shape, src.count,
        )  # fmt: skip
        assert pred.dtypes[0] == "uint16"

    # The paper's mask finds the simulated clouds, far better than chance.
    assert summary["mask"]["precision"] > 0.6 and summary["mask"]["recall"] > 0.3
    m = summary["metrics"]
    # identity reproduces its input on the clear area and is wrong under the clouds.
    assert m["identity"]["mae_reprod"] == 0.0 and m["identity"]["mae_recon"] > 0.02
    # The demonstration model removes clouds: under the mask it is closer to the truth than
    # the cloudy input, and over the whole scene too; --keep-clear leaves clear pixels as input.
    assert m["dsen2cr_demo"]["mae_recon"] < m["identity"]["mae_recon"]
    assert m["dsen2cr_demo"]["mae"] < m["identity"]["mae"]
    assert m["dsen2cr_demo"]["mae_reprod"] == 0.0

    panel = np.asarray(Image.open(out / "panel.png"))
    assert panel.shape[1] > 5 * 320 and panel.std() > 10  # five panels, not blank
    assert "[5/5]" in capsys.readouterr().out
