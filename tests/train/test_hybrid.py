"""Training the hybrid: from the pack's cached inpainting, one chain with evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cloudfree.config import load_config
from cloudfree.data.packed.inpaint_cache import fill_inpainting
from cloudfree.data.packed.pack import pack
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize
from cloudfree.errors import DataError
from cloudfree.runs import find_latest
from cloudfree.train.loop import train
from cloudfree.train.run_log import read_metrics_csv

TINY = ("model.num_layers=1", "model.feature_size=8", "data.crop_size=32", "data.num_workers=0",
        "train.batch_size=2", "train.epochs=2", "train.log_every=1", "optim.lr=1e-3")  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("hybrid_train")
    synthesize(base / "root", n=8, seed=0, size=48)
    write_index(build_index(base / "root"), base / "index.csv")
    pack(base / "index.csv", base / "plain", workers=0)
    pack(base / "index.csv", base / "packed", workers=0)
    fill_inpainting(base / "packed", "mask-fill", progress=False)
    return {"index": base / "index.csv", "plain": base / "plain", "packed": base / "packed"}


def test_needs_the_inpainting_in_the_pack(data: dict[str, Path], tmp_path: Path) -> None:
    cfg = load_config("hybrid_nosar_carl", [f"data.packed={data['plain']}",
                                            f"train.out_dir={tmp_path}", *TINY])  # fmt: skip
    with pytest.raises(DataError, match="--inpaint mask-fill"):
        train(cfg)
    cfg = load_config("hybrid_nosar_carl", [f"data.index={data['index']}",
                                            f"train.out_dir={tmp_path}", *TINY])  # fmt: skip
    with pytest.raises(DataError, match="cloudfree pack INDEX --out DIR --inpaint mask-fill"):
        train(cfg)


@pytest.mark.parametrize("preset", ["hybrid_nosar_carl", "hybrid_sar_carl"])
def test_trains_from_its_skip_and_evaluates_through_the_chain(
    data: dict[str, Path], tmp_path: Path, preset: str
) -> None:
    from cloudfree.evaluate.run import evaluate
    from cloudfree.methods.hybrid import HybridMethod
    from cloudfree.methods.load import load_method

    cfg = load_config(preset, [f"data.packed={data['packed']}", f"train.out_dir={tmp_path}",
                               "train.run_name=run", *TINY])  # fmt: skip
    summary = train(cfg)
    assert summary["steps"] > 0 and math.isfinite(summary["train_loss"])
    run = Path(summary["run_dir"])
    method = load_method(str(run), device="cpu")
    assert isinstance(method, HybridMethod) and method.include_sar is (preset == "hybrid_sar_carl")
    # evaluate: the chain computes mask and inpainting itself, from the per-file patches.
    out = evaluate(str(run), data["index"], tmp_path / "eval", split="val", device="cpu",
                   report=False)  # fmt: skip
    assert out["count"] >= 1 and math.isfinite(out["metrics"]["mae"])
    assert out["model"] == cfg.model.name and out["inpaint"] == "mask-fill"
    from cloudfree.evaluate.table import compare

    assert "[hybrid: mask-fill + DSen2-CR]" in compare([tmp_path / "eval"], include_published=False)
    # Training's validation read the pack's cached inpainting; evaluate inpainted on the fly:
    # the same chain, so the same numbers (up to the uint16 rounding of the cache).
    assert json.loads((run / "summary.json").read_text())["best_val_loss"] is not None
    rows = read_metrics_csv(run / "metrics.csv")
    last_mae = [v for _, split, name, v in rows if split == "val" and name == "val_mae"][-1]
    latest = evaluate(str(find_latest(run)), data["index"], tmp_path / "eval2",
                      split="val", device="cpu", report=False)  # fmt: skip
    assert latest["metrics"]["mae"] == pytest.approx(last_mae, abs=2e-4)


def test_untrained_hybrid_is_exactly_its_inpainting(data: dict[str, Path], tmp_path: Path) -> None:
    """Zero tail: before any step the hybrid predicts the mask-fill baseline, patch for patch."""
    import torch

    from cloudfree.methods.load import load_method
    from cloudfree.models import build_model, save_weights

    torch.manual_seed(0)
    path = save_weights(build_model("hybrid-nosar", num_layers=1, feature_size=8),
                        tmp_path / "h0.safetensors")  # fmt: skip
    hybrid, fill = load_method(str(path), device="cpu"), load_method("mask-fill")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 13, 32, 32, generator=g) * 2
    x[:, :, 8:20, 8:20] = 3.5
    from cloudfree.masks.patch import patch_mask

    mask = torch.from_numpy(patch_mask((x * 2000).round().numpy().astype(np.uint16)))
    batch = {"s2_cloudy": x, "mask": mask}
    assert mask.any() and not mask.all()
    np.testing.assert_array_equal(hybrid.predict(batch), fill.predict(batch))
