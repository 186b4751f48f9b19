"""Resume bookkeeping as an impatient user meets it (issue 17, item 10): resuming a finished
run, resuming after a kill between checkpoints, resuming with a damaged latest checkpoint."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

import cloudfree.train.loop as loop
from cloudfree.cli import main
from cloudfree.config import load_config
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize
from cloudfree.runs import CHECKPOINTS, STATE_FILE, find_latest
from cloudfree.train.loop import train
from cloudfree.train.run_log import read_metrics_csv


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 synthetic 32-px triplets: 6 train (3 steps per epoch at batch 2), 1 val, 1 test."""
    base = tmp_path_factory.mktemp("resume")
    synthesize(base / "root", n=8, seed=0, size=32)
    return write_index(build_index(base / "root"), base / "index.csv")


def _cfg(index: Path, out: Path, name: str):  # noqa: ANN202
    # 2 epochs of 3 steps; a checkpoint every 2 steps and at each epoch end: 2, 3, 4, 6.
    return load_config("debug_tiny", [
        f"data.index={index}", f"train.out_dir={out}", f"train.run_name={name}",
        "train.batch_size=2", "train.log_every=1", "train.checkpoint_every=2",
        "train.keep_last=5", "data.augment=false",
    ])  # fmt: skip


def _logged(run: Path) -> Counter:
    return Counter((step, split, name) for step, split, name, _ in read_metrics_csv(
        run / "metrics.csv"))  # fmt: skip


def _killed_after_logging_step_5(cfg, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Train ``cfg`` until it has logged step 5 (its last checkpoint: step 4), then stop it as
    a kill would: nothing after that line runs."""
    real = loop._log_window

    def log_then_die(run, state, *args):  # noqa: ANN001, ANN002, ANN202
        rate = real(run, state, *args)
        if state.step == 5:
            raise KeyboardInterrupt("killed")
        return rate

    with monkeypatch.context() as m:
        m.setattr(loop, "_log_window", log_then_die)
        with pytest.raises(KeyboardInterrupt):
            train(cfg)


def test_resuming_a_finished_run_keeps_its_summary(
    index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _cfg(index, tmp_path, "done")
    summary = train(cfg)
    run = Path(summary["run_dir"])
    before = (run / "summary.json").read_bytes()
    assert math.isfinite(json.loads(before)["train_loss"])
    logged = _logged(run)
    assert main(["train", "--resume", str(run)]) == 0
    assert "has trained all its 2 epochs (step 6): nothing to do" in capsys.readouterr().out
    assert (run / "summary.json").read_bytes() == before
    assert _logged(run) == logged
    # Without its summary.json (deleted by hand), the checkpoint still knows the last loss.
    (run / "summary.json").unlink()
    again = train(cfg, resume=run)
    assert again["train_loss"] == json.loads(before)["train_loss"]


def test_a_run_killed_between_checkpoints_logs_each_step_once(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = Path(train(_cfg(index, tmp_path, "full"))["run_dir"])
    cfg = _cfg(index, tmp_path, "cut")
    _killed_after_logging_step_5(cfg, monkeypatch)
    cut = tmp_path / "cut"
    assert max(step for step, _, _ in _logged(cut)) == 5
    train(cfg, resume=cut)
    logged = _logged(cut)
    assert max(logged.values()) == 1, [k for k, n in logged.items() if n > 1]  # no repeats
    assert set(logged) == set(_logged(full))  # the same rows as the uninterrupted run


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(index, tmp_path, "damaged")
    _killed_after_logging_step_5(cfg, monkeypatch)
    run = tmp_path / "damaged"
    latest = find_latest(run)
    assert latest is not None and latest.name == "step-00000004"
    state = latest / STATE_FILE
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # truncated on disk
    with pytest.warns(
        UserWarning, match=r"step-00000004 is damaged .* resuming from step-00000003"
    ):
        summary = train(cfg, resume=run)
    assert summary["steps"] == 6
    assert (run / CHECKPOINTS / "step-00000004.damaged").is_dir()  # kept, not deleted
    assert find_latest(run).name == "step-00000006"
    logged = _logged(run)
    assert max(logged.values()) == 1  # steps 4 and 5 were logged again, once each
