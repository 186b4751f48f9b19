"""Kill-and-resume: a run stopped after step k and resumed ends bitwise equal to one that never
stopped (CPU, deterministic settings, ``num_workers=0``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cloudfree.train.loop as loop
from cloudfree.config import load_config
from cloudfree.models import build_model
from cloudfree.runs import find_latest
from cloudfree.train.checkpoint import load_checkpoint
from cloudfree.train.optim import build_optimizer

REPO = Path(__file__).resolve().parents[2]


def _overrides(out: Path, name: str, packed: Path, epochs: int) -> list[str]:
    # Batch 2 over 6 patches: 3 steps per epoch; checkpoints at every 2nd step and epoch ends.
    return [
        f"data.packed={packed}",
        f"train.out_dir={out}",
        f"train.run_name={name}",
        f"train.epochs={epochs}",
        "train.batch_size=2",
        "train.checkpoint_every=2",
        "train.deterministic=true",
        "data.num_workers=0",
        "optim.lr=1e-3",
    ]


def _final_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict, int]:
    model = build_model("dsen2cr", num_layers=2, feature_size=16)
    opt = build_optimizer(model.parameters(), load_config("debug_tiny").optim)
    info = load_checkpoint(run_dir, model, opt)
    return model.state_dict(), opt.state_dict(), info["step"]


def _assert_bitwise_equal(a: Path, b: Path) -> None:
    wa, oa, sa = _final_state(a)
    wb, ob, sb = _final_state(b)
    assert sa == sb
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    for pid, st in oa["state"].items():
        for k, v in st.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(ob["state"][pid][k])), (pid, k)


def test_resume_after_exception_mid_step_is_bitwise_identical(
    packed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = loop.train(load_config("debug_tiny", _overrides(tmp_path, "full", packed, 2)))
    assert full["steps"] == 6

    # Die inside step 6 (after its backward, before its update): the last checkpoint is
    # step 4, so step 5 was done but is lost and must be redone identically.
    real_clip, calls = loop.clip_gradients, {"n": 0}

    def dying_clip(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt("simulated kill")
        return real_clip(*args, **kwargs)

    cfg = load_config("debug_tiny", _overrides(tmp_path, "killed", packed, 2))
    monkeypatch.setattr(loop, "clip_gradients", dying_clip)
    with pytest.raises(KeyboardInterrupt):
        loop.train(cfg)
    run_dir = tmp_path / "killed"
    latest = find_latest(run_dir)
    assert latest is not None and latest.name == "step-00000004"
    monkeypatch.setattr(loop, "clip_gradients", real_clip)

    resumed = loop.train(cfg, resume=run_dir)
    assert resumed["steps"] == 6
    _assert_bitwise_equal(Path(full["run_dir"]), run_dir)
    # The metrics log holds the redone step 5 twice (once per process) and ends at step 6.
    steps = [int(line.split(",")[0]) for line in (run_dir / "metrics.csv").read_text().split()[1:]]
    assert max(steps) == 6


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cloudfree.cli", "train", "--config", "debug_tiny", *args]


@pytest.mark.slow
def test_sigkill_and_resume_from_command_line(packed: Path, tmp_path: Path) -> None:
    epochs = 6  # 18 steps: time enough to kill the process after its first checkpoint
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        _cli(*_overrides(tmp_path, "killed", packed, epochs)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_dir = tmp_path / "killed"
    deadline = time.monotonic() + 120
    try:
        while find_latest(run_dir) is None and proc.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint appeared within 120 s")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    if proc.returncode != -signal.SIGKILL:
        pytest.skip(f"the run finished (rc {proc.returncode}) before it could be killed")
    killed_at = find_latest(run_dir)
    assert killed_at is not None and int(killed_at.name.split("-")[1]) < 3 * epochs

    done = subprocess.run(
        _cli(*_overrides(tmp_path, "killed", packed, epochs), "--resume", str(run_dir)),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"run folder: {run_dir}" in done.stdout
    assert "resumed" in done.stdout

    full = loop.train(load_config("debug_tiny", _overrides(tmp_path, "full", packed, epochs)))
    assert full["steps"] == 3 * epochs
    _assert_bitwise_equal(Path(full["run_dir"]), run_dir)
