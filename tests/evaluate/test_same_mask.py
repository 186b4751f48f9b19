"""Training's validation and ``cloudfree evaluate`` split a patch into recon/reprod alike.

Both take the DSen2-CR mask of the raw cloudy DN of the whole patch (issue 16: evaluate used to
recompute it from network values clipped at 10000 DN, which moved 261 pixels of 5 of the real
patches), so the same model gives the same recon/reprod metrics in both.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from cloudfree.config import load_config
from cloudfree.data.collate import collate_skip_bad
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.evaluate.run import evaluate, open_dataset
from cloudfree.losses import CARLLoss
from cloudfree.methods.model import ModelMethod
from cloudfree.models import DSen2CR
from cloudfree.train.data import build_dataset, sample_configs
from cloudfree.train.distributed import DistInfo
from cloudfree.train.validate import validate

CPU = DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), backend=None)


@pytest.mark.slow
def test_validation_and_evaluate_give_the_same_recon_metrics(
    sen12mscr_root: Path, tmp_path: Path
) -> None:
    index = build_index(sen12mscr_root)
    rows = [dataclasses.replace(r, split="val") for r in index.rows if r.has("s2", "s2_cloudy")]
    path = write_index(dataclasses.replace(index, rows=rows), tmp_path / "index.csv")
    torch.manual_seed(0)
    model = DSen2CR(include_sar=False, num_layers=1, feature_size=8).eval()
    cfg = load_config("dsen2cr_nosar_carl", [f"data.index={path}", "data.num_workers=0"])
    _, val_sample = sample_configs(cfg, include_sar=False)
    val = build_dataset(cfg.data, "val", val_sample, 0, tmp_path)
    loader = DataLoader(val, batch_size=4, collate_fn=collate_skip_bad)
    got = validate(model, loader, CARLLoss(), CPU, scaling="dsen2cr", precision="fp32")
    summary = evaluate(
        ModelMethod(model, "m", device="cpu", backend="torch"), path, tmp_path / "eval",
        split="val", report=False,
    )  # fmt: skip
    assert got["val_patches"] == summary["count"] == len(rows) == 27
    for key in ("mae_recon", "mae_reprod", "sam_recon", "cloud_fraction", "mae"):
        # float32 batched metrics against float64 per-patch ones
        assert got[f"val_{key}"] == pytest.approx(summary["metrics"][key], rel=2e-4), key
    assert "mask" in open_dataset(path, "val", False, "dsen2cr")[0]
