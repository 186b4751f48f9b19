"""Killed processes leave nothing behind (issue 17, item 8): ``kill -9`` of ``pack --workers``
takes its reader processes with it, and the ``.part`` file of a killed ``predict`` is deleted
by the next run that writes the same output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cloudfree.cli import main
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize
from cloudfree.io import sweep_parts

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)"
)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def _running(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            fields = _stat(int(d.name))
            if fields is not None and int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d.name))
    return out


def _wait(condition, timeout: float) -> bool:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _start(script: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def _stderr(proc: subprocess.Popen) -> str:
    """What a process that has ended wrote on stderr (the reason it ended early)."""
    assert proc.stderr is not None
    return proc.stderr.read().decode(errors="replace")[-2000:]


def test_kill_9_of_pack_takes_its_workers_with_it(tmp_path: Path) -> None:
    synthesize(tmp_path / "root", n=8, seed=0, size=32)
    index = write_index(build_index(tmp_path / "root"), tmp_path / "index.csv")
    reading = tmp_path / "reading"
    reading.mkdir()
    # Readers that say when they started, then take their time: pack is killed while they work.
    proc = _start(f"""
        import os, pathlib, time
        import cloudfree.data.packed.pack as pack_mod
        from cloudfree.cli import main

        read = pack_mod.read_files

        def slow(*args, **kwargs):
            pathlib.Path({str(reading)!r}, str(os.getpid())).touch()
            time.sleep(600)
            return read(*args, **kwargs)

        pack_mod.read_files = slow
        main(["pack", {str(index)!r}, "--out", {str(tmp_path / "packed")!r}, "--workers", "2"])
    """)
    workers: list[int] = []
    try:
        # A condition, not a time: both workers are reading (however loaded the machine), or
        # pack ended before they did, which is the failure to report.
        # (The 600 s bound only keeps a hung pack from hanging the suite.)
        started = lambda: len(list(reading.iterdir())) >= 2  # noqa: E731
        assert _wait(lambda: started() or proc.poll() is not None, 600)
        if not started():
            proc.kill()
            proc.wait()
            pytest.fail(f"pack ended (exit status {proc.returncode}) before two reader "
                        f"processes started reading; its stderr: {_stderr(proc)}")  # fmt: skip
        workers = [int(p.name) for p in reading.iterdir()]
        assert all(p in _children(proc.pid) and _running(p) for p in workers), workers
        proc.kill()  # SIGKILL: no handler, no cleanup of its own
        proc.wait()
        # The kernel's parent-death signal reaches them; a poll until they are gone.
        assert _wait(lambda: not any(_running(p) for p in workers), 60), (
            f"reader processes {[p for p in workers if _running(p)]} outlived pack's kill -9"
        )
    finally:
        proc.kill()
        for p in workers:  # the test's own cleanup, should the workers have survived
            if _running(p):
                os.kill(p, signal.SIGKILL)


def test_a_killed_predict_leaves_a_part_file_the_next_run_deletes(
    scene: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "clear.tif"
    argv = ["predict", "--s2", str(scene["s2"]), "--out", str(out), "--checkpoint",
            str(scene["weights"]), "--no-progress"]  # fmt: skip
    # Killed while it writes: after the first window, before the rename.
    proc = _start(f"""
        import os, signal
        import cloudfree.predict.window as window
        from cloudfree.cli import main

        predict = window.WindowPredictor.window

        def then_die(self, win):
            result = predict(self, win)
            os.kill(os.getpid(), signal.SIGKILL)
            return result

        window.WindowPredictor.window = then_die
        main({argv!r})
    """)
    assert proc.wait(60) == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    parts = list(tmp_path.glob(".clear.tif.*.part"))
    assert len(parts) == 1 and f".{proc.pid}." in parts[0].name and not out.exists()

    # A .part of a process still running (this one) is somebody's write in progress: kept.
    live = tmp_path / f".clear.tif.{parts[0].name.split('.')[3]}.{os.getpid()}.abcd1234.part"
    live.write_bytes(b"")
    other = tmp_path / ".clear.tif.otherhost.1.abcd1234.part"  # another machine's: kept
    other.write_bytes(b"")
    assert main(argv) == 0
    assert out.is_file()
    assert sorted(tmp_path.glob(".*.part")) == sorted([live, other])
    assert sweep_parts(tmp_path, "clear.tif") == []  # nothing more to sweep
