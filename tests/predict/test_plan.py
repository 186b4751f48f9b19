"""Tile size, overlap and batch chosen for the model and the machine (cloudfree.predict.plan)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.methods.load import load_method
from cloudfree.models import build_model, save_weights
from cloudfree.predict import plan
from cloudfree.predict.scene import predict_scene

from .conftest import read_tif, synth_s2, untiled, write_tif


def test_margin_from_a_profile_worked_by_hand() -> None:
    profile = np.array([5.0, 1.0, 0.3, 0.1, 0.2, 0.05])
    assert plan.margin_from_profile(profile, tolerance=0.25) == 3  # 0.3 at 2 is the last above
    assert plan.margin_from_profile(profile, tolerance=10) == 0
    assert plan.margin_from_profile(np.array([3.0, 2.0, 1.0]), tolerance=0.25) is None


def test_receptive_radius_counts_the_convolutions() -> None:
    # Head, 2 per block, tail: 2B + 2 convolutions of radius 1 (spec section 4).
    with torch.device("meta"):
        assert plan.receptive_radius(build_model("dsen2cr")) == 34
        assert plan.receptive_radius(build_model("dsen2cr-nosar", num_layers=2)) == 6
    assert plan.receptive_radius(None) is None


def test_edge_profile_vanishes_beyond_the_receptive_field(tmp_path: Path) -> None:
    """A pure convolutional net of radius r: a tile is exact from r px inside its edge (float
    rounding only) and wrong at its edge; the measured margin lies within the radius."""
    torch.manual_seed(0)
    path = save_weights(build_model("dsen2cr-nosar", num_layers=1, feature_size=8),
                        tmp_path / "r4.safetensors")  # fmt: skip
    method = load_method(str(path), device="cpu")
    profile = plan.edge_profile(method, reach=4, depth=10)
    assert profile[0] > 1.0  # zero padding at the tile edge: DN off
    assert profile[4:].max() < 1e-2  # beyond the radius: float rounding
    margin, _ = plan.measured_margin(method)
    assert 1 <= margin <= 4 + plan.SAFETY_PX


def test_tile_and_batch_follow_the_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    with torch.device("meta"):
        full = build_model("dsen2cr")
    method = type("M", (), {"model": full, "name": "full"})()
    # 8 maps of 256 float32 per pixel = 8192 B; 40 % of 4 GiB fits 384^2 (1.2 GB), not 512^2.
    assert plan.bytes_per_pixel(full) == 8 * 256 * 4
    monkeypatch.setattr(plan, "available_memory", lambda device: 4 << 30)
    p = plan.plan_tiles(method, torch.device("cpu"), overlap=44)
    assert (p.tile, p.overlap, p.batch) == (384, 44, 1)
    monkeypatch.setattr(plan, "available_memory", lambda device: 100 << 30)
    assert plan.plan_tiles(method, torch.device("cpu"), overlap=44).tile == 2048
    # On CUDA the batch fills the share: 40 GiB / (1024^2 x 8192 B) = 5 tiles; bf16 halves.
    cuda = torch.device("cuda")
    assert plan.plan_batch(method, 1024 * 1024, cuda) == 5
    assert plan.plan_batch(method, 1024 * 1024, cuda, "bf16") == 10
    assert plan.plan_tiles(method, torch.device("cpu"), tile=512, overlap=8, batch=3).reason == (
        "as given"
    )
    monkeypatch.setattr(plan, "measured_margin", lambda m: (13, "measured margin 13 px"))
    with pytest.raises(ValueError, match="tile 48 is not larger than the overlap this model "
                       "needs \\(52 px"):  # fmt: skip
        plan.plan_tiles(method, torch.device("cpu"), tile=48)


def test_predict_defaults_match_the_whole_image_within_1_dn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No tile, overlap or batch given: the plan is measured for the model, recorded in the
    summary, cached for the next run, and the scene equals the untiled prediction to 1 DN."""
    torch.manual_seed(3)
    model = build_model("dsen2cr-nosar", num_layers=3, feature_size=16).eval()
    weights = save_weights(model, tmp_path / "m.safetensors")
    s2 = synth_s2(200, 240).astype(np.float32)
    src = write_tif(tmp_path / "s2.tif", s2)
    summary = predict_scene(src, tmp_path / "out.tif", str(weights), progress=False,
                            tile=96)  # fmt: skip  # small tiles: several per window
    assert summary["overlap"] % 4 == 0 and 0 < summary["overlap"] <= 4 * (8 + plan.SAFETY_PX)
    assert summary["batch_size"] == 1 and summary["tile"] == 96
    pred, _ = read_tif(tmp_path / "out.tif")
    ref = untiled(model, s2)
    r = 8  # the scene border is reflect-padded, not zero-padded: compare the interior
    diff = np.abs(pred[:, r:-r, r:-r].astype(np.float64) - np.rint(ref[:, r:-r, r:-r]))
    assert diff.max() <= 1
    # Measured once per weights file: the second run reads the cache.
    from cloudfree.home import cache_dir

    assert list((cache_dir() / "tiling").glob("*.json"))

    def no_probe(*args: object) -> np.ndarray:
        raise AssertionError("measured again")

    monkeypatch.setattr(plan, "edge_profile", no_probe)
    again = predict_scene(src, tmp_path / "out2.tif", str(weights), progress=False, tile=96)
    assert again["overlap"] == summary["overlap"]
