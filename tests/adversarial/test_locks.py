"""Issue 30, class 5: two processes, one run. A training run folder, and a pack being written,
are held by one process at a time: a second ``train --resume`` (or ``pack``) of the same folder
is refused at once, naming the holder's pid, and changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize

from .conftest import digest, fails

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock locks (POSIX)")


def _holding(folder: Path, ready: Path) -> subprocess.Popen:
    """Another process that holds ``folder`` as ``train`` would, until killed."""
    script = f"""
        import pathlib, time
        from cloudfree.locks import folder_lock

        with folder_lock({str(folder)!r}, "train"):
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(600)
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    end = time.monotonic() + 120
    while not ready.exists() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    assert ready.exists(), f"the holder did not start (exit status {proc.poll()})"
    return proc


def test_a_second_writer_of_a_run_or_a_pack_is_refused_with_the_holders_pid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudfree.cli import main

    synthesize(tmp_path / "root", n=6, seed=0, size=32)
    index = write_index(build_index(tmp_path / "root"), tmp_path / "index.csv")
    assert main(["train", "--config", "debug_tiny", f"data.index={index}",
                 f"train.out_dir={tmp_path / 'runs'}", "train.run_name=r", "train.epochs=1",
                 "train.batch_size=2"]) == 0  # fmt: skip
    run = tmp_path / "runs" / "r"
    assert main(["pack", str(index), "--out", str(tmp_path / "packed"), "--workers", "0"]) == 0
    capsys.readouterr()
    for folder, argv in (
        (run, ["train", "--resume", str(run), "train.epochs=2"]),
        (tmp_path / "packed", ["pack", str(index), "--out", str(tmp_path / "packed"),
                               "--workers", "0", "--overwrite"]),
    ):  # fmt: skip
        before = digest(folder)
        holder = _holding(folder, tmp_path / f"ready-{folder.name}")
        try:
            fails(argv, capsys, f"{folder} is in use by pid {holder.pid}", "cloudfree train",
                  "Wait for that one to finish")  # fmt: skip
        finally:
            holder.kill()
            holder.wait()
        after = digest(folder)
        after.pop(".lock", None)
        before.pop(".lock", None)
        assert after == before, argv[0]
    # The holder was killed: its lock went with it, and the run goes on.
    assert main(["train", "--resume", str(run), "train.epochs=2"]) == 0
