"""Worker processes that never outlive the process that started them.

A ``concurrent.futures.ProcessPoolExecutor`` worker waits on a pipe for its next task. If the
parent is killed (``kill -9``, the OOM killer, a cluster's time limit) nothing tells the
workers: with the fork start method each of them holds the pipe's other end itself, so it
never sees end-of-file, and ``cloudfree pack --workers 2`` left its readers running (~250 MB
each) for as long as anyone cared to look. :func:`process_pool` starts workers that end with
their parent:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker when the thread
  that started it exits. Workers are started by the thread that submits (the main thread in
  cloudfree), and the parent's death is re-checked right after, for a parent that died before
  the call;
- elsewhere, a daemon thread in each worker that polls the parent's pid every second.

Standard library only.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final

#: prctl option: the signal sent when the parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG: Final[int] = 1
#: Seconds between two looks at the parent where prctl is not available.
POLL_SECONDS: Final[float] = 1.0


def _die_with(parent: int) -> None:
    """Make this process end when process ``parent`` does."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:  # died before the prctl: nobody will signal us
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="cloudfree-parent-watch", daemon=True).start()


def _init(parent: int, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    _die_with(parent)
    if initializer is not None:
        initializer(*initargs)


def process_pool(
    workers: int,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
    mp_context: Any = None,
) -> cf.ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` processes that end when this process ends.

    Args:
        workers: number of processes (>= 1).
        initializer, initargs: run in each worker after it is tied to this process.
        mp_context: the multiprocessing context (default: the platform's, as torch's
            DataLoader uses).
    """
    return cf.ProcessPoolExecutor(
        workers,
        mp_context=mp_context or mp.get_context(),
        initializer=_init,
        initargs=(os.getpid(), initializer, initargs),
    )
