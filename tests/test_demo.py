"""`make demo` runs `cloudfree demo`: a synthetic cloudy scene made clear, end to end."""

import json

import numpy as np
import pytest
import rasterio
from PIL import Image

from cloudfree.cli import main
from cloudfree.demo import DEMO_MODEL, DEMO_SAR_MODEL
from cloudfree.weights import get_weights


@pytest.mark.slow
def test_demo_removes_clouds_from_a_scene(tmp_path, capsys):
    try:
        for name in (DEMO_MODEL, DEMO_SAR_MODEL):
            get_weights(name).path()
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

    # The default masker (ukis-csmask's CNN where installed) is the one used and scored, beside
    # the paper's mask on the same truth (measured at this size and seed: precision 0.756,
    # recall 0.924; the paper's mask 0.804, 0.675).
    from cloudfree.masks.ukis import ukis_available

    mask = summary["mask"]
    assert mask["mask_backend"] == ("ukis" if ukis_available() else "dsen2cr")
    assert mask["precision"] > 0.6 and mask["recall"] > 0.6
    assert set(mask["dsen2cr"]) == {"precision", "recall"} and mask["dsen2cr"]["recall"] > 0.3
    m = summary["metrics"]
    # identity reproduces its input on the clear area and is wrong under the clouds.
    assert m["identity"]["mae_reprod"] == 0.0 and m["identity"]["mae_recon"] > 0.02
    # The demonstration models remove clouds: under the mask they are closer to the truth than
    # the cloudy input, and over the whole scene too; --keep-clear leaves clear pixels as input.
    assert set(m) == {DEMO_MODEL, "identity", "mask-fill", f"{DEMO_SAR_MODEL} (with S1)"}
    for name in (DEMO_MODEL, f"{DEMO_SAR_MODEL} (with S1)", "mask-fill"):
        assert m[name]["mae_recon"] < m["identity"]["mae_recon"], name
        assert m[name]["mae"] < m["identity"]["mae"], name
        assert m[name]["mae_reprod"] == 0.0, name
    assert summary["model"] == DEMO_MODEL

    panel = np.asarray(Image.open(out / "panel.png"))
    assert panel.shape[1] > 6 * 320 and panel.std() > 10  # six panels, not blank
    assert "[5/5]" in capsys.readouterr().out
