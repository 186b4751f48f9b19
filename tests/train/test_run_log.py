"""RunLogger: metrics.csv in long format (appended on reopen), TensorBoard events, rank gating."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cloudfree.errors import DataError
from cloudfree.train.run_log import CSV_COLUMNS, RunLogger, read_metrics_csv


def _event_scalars(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_csv_long_format_and_append_on_reopen(tmp_path: Path) -> None:
    with RunLogger(tmp_path, enabled=True) as log:
        log.scalars(10, {"loss": 0.5, "patches_per_s": 12.25}, prefix="train")
        log.scalars(20, {"mae": torch.tensor(0.125), "mae_recon": math.nan}, prefix="val")
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert lines[1:3] == ["10,train,loss,0.5", "10,train,patches_per_s,12.25"]
    assert lines[3] == "20,val,mae,0.125"
    assert lines[4] == "20,val,mae_recon,nan"

    # A resumed run appends to the same file: old rows stay, header not repeated.
    with RunLogger(tmp_path, enabled=True) as log:
        log.scalars(30, {"loss": 0.25}, prefix="train")
    rows = read_metrics_csv(tmp_path / "metrics.csv")
    assert [r[:3] for r in rows] == [
        (10, "train", "loss"),
        (10, "train", "patches_per_s"),
        (20, "val", "mae"),
        (20, "val", "mae_recon"),
        (30, "train", "loss"),
    ]
    assert rows[-1][3] == 0.25 and math.isnan(rows[3][3])
    assert (tmp_path / "metrics.csv").read_text().count("step,split") == 1


def test_csv_flushed_before_close(tmp_path: Path) -> None:
    log = RunLogger(tmp_path, enabled=True)
    log.scalars(1, {"loss": 2.0}, prefix="train")
    # Not closed (as in a killed run): the row must already be on disk.
    assert read_metrics_csv(tmp_path / "metrics.csv") == [(1, "train", "loss", 2.0)]
    log.close()
    log.close()  # idempotent


def test_tensorboard_scalars_and_image_read_back(tmp_path: Path) -> None:
    with RunLogger(tmp_path, enabled=True) as log:
        log.scalars(1, {"loss": 0.75}, prefix="train")
        log.scalars(2, {"loss": 0.5}, prefix="train")
        log.scalars(2, {"psnr": 31.5}, prefix="val")
        img = torch.zeros(3, 8, 6, dtype=torch.uint8)
        img[0] = 255
        log.image(2, "val/panels", img)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    scalars = _event_scalars(tmp_path / "tb")
    assert scalars["train/loss"] == [(1, 0.75), (2, 0.5)]
    assert scalars["val/psnr"] == [(2, 31.5)]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    acc.Reload()
    (ev,) = acc.Images("val/panels")
    assert (ev.step, ev.width, ev.height) == (2, 6, 8)


def test_disabled_logger_writes_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    log = RunLogger(run, enabled=False)
    log.scalars(1, {"loss": 1.0}, prefix="train")
    log.image(1, "x", torch.zeros(3, 4, 4, dtype=torch.uint8))
    log.close()
    assert not run.exists()


def test_bad_image_and_bad_existing_csv(tmp_path: Path) -> None:
    with RunLogger(tmp_path / "a", enabled=True) as log:
        with pytest.raises(ValueError, match="uint8"):
            log.image(0, "x", torch.zeros(3, 4, 4))
        with pytest.raises(ValueError, match=r"\(3, H, W\)"):
            log.image(0, "x", torch.zeros(4, 4, dtype=torch.uint8))
    bad = tmp_path / "b"
    bad.mkdir()
    (bad / "metrics.csv").write_text("epoch,loss\n1,2\n")
    with pytest.raises(DataError, match="metrics.csv"):
        RunLogger(bad, enabled=True)


def test_import_does_not_import_tensorboard() -> None:
    code = (
        "import sys, cloudfree.train.run_log; "
        "bad = [m for m in sys.modules if m.startswith(('tensorboard', 'torch.utils.tensorboard'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
