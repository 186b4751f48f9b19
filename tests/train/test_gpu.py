"""Training and validation on a CUDA device (``gpu`` marker: skipped without one)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cloudfree.config import load_config
from cloudfree.data.packed.pack import pack
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize
from cloudfree.models.runtime import training_bf16
from cloudfree.models.weights import load_weights
from cloudfree.runs import weights_file
from cloudfree.train.loop import train

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("gpu_synth")
    synthesize(base / "root", n=8, seed=0, size=64)
    write_index(build_index(base / "root"), base / "index.csv")
    pack(base / "index.csv", base / "packed", workers=0)
    return base / "packed"


def _run(tmp_path: Path, packed: Path, name: str, *overrides: str) -> dict:
    cfg = load_config("debug_tiny", [
        f"train.out_dir={tmp_path}", f"train.run_name={name}", f"data.packed={packed}",
        "train.epochs=2", *overrides,
    ])  # fmt: skip
    return train(cfg)


def test_cuda_fp32_training_follows_the_cpu_run(tmp_path: Path, packed: Path) -> None:
    cpu = _run(tmp_path, packed, "cpu", "train.device=cpu")
    gpu = _run(tmp_path, packed, "gpu", "train.device=cuda", "train.precision=fp32")
    assert gpu["steps"] == cpu["steps"] and gpu["skipped"] == 0
    # Same seed, same data order, IEEE fp32 on both (train.tf32 is off in the presets): the
    # losses agree to float rounding of a few steps.
    assert math.isclose(gpu["train_loss"], cpu["train_loss"], rel_tol=1e-3)
    assert math.isclose(gpu["best_val_loss"], cpu["best_val_loss"], rel_tol=1e-3)
    # The weights written on the GPU load on the CPU.
    model = load_weights(weights_file(Path(gpu["run_dir"])))
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_cuda_auto_precision_trains_in_bf16(tmp_path: Path, packed: Path) -> None:
    assert training_bf16(torch.device("cuda"), "auto")
    summary = _run(tmp_path, packed, "bf16", "train.device=cuda", "train.precision=auto")
    assert math.isfinite(summary["train_loss"]) and math.isfinite(summary["best_val_loss"])
