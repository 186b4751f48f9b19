"""One writer per folder: a training run, or a pack being written, is held by one process.

Two ``train --resume`` of one run at once would each append to ``metrics.csv`` and save
checkpoints over each other; two ``pack`` into one folder would interleave shards. The
writer takes an exclusive ``flock`` on ``FOLDER/.lock`` for as long as it works; a second
one is refused at once with the holder's pid, host, command and start time (which the lock
file records). The kernel drops the lock when its process ends, however it ends (``kill -9``
included), so a crashed run never stays locked.

Standard library only. Where ``fcntl`` is missing (Windows) no lock is taken.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from cloudfree.errors import CloudfreeError

#: The lock file inside a locked folder.
LOCK_FILE: Final[str] = ".lock"


#: Folders this process holds (resolved): taking one again is a no-op (``pack`` holds its
#: folder and then fills its masks, which take the same lock).
_HELD: set[Path] = set()


class FolderLockedError(CloudfreeError, RuntimeError):
    """Another process is writing the folder."""


def _holder(path: Path) -> str:
    """Who holds the lock, from what it wrote into the lock file."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process"
    return (
        f"pid {info['pid']} on {info.get('host', '?')} ({info.get('command', '?')}, since "
        f"{info.get('since', '?')})"
    )


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], command: str) -> Iterator[Path]:
    """Hold ``folder`` (which must exist) for this process while the ``with`` body runs.

    Args:
        folder: the run or pack folder.
        command: what holds it, for the message another process gets (``"train"``, ...).

    Raises:
        FolderLockedError: another process holds it; the message names its pid and says
            how to go on.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        yield Path(folder)
        return
    key = Path(folder).resolve()
    if key in _HELD or not key.is_dir():  # held already; or no folder: nothing to write over
        yield Path(folder)
        return
    path = Path(folder) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderLockedError(
                f"{folder} is in use by {_holder(path)}; two processes writing one folder "
                "would spoil it. Wait for that one to finish (or stop it), then run this again"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": f"cloudfree {command}",
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        _HELD.add(key)
        try:
            yield Path(folder)
        finally:
            _HELD.discard(key)
    finally:
        os.close(fd)  # releases the flock


F = TypeVar("F", bound=Callable[..., Any])


def holds_folder(command: str) -> Callable[[F], F]:
    """Decorate a function whose first argument is a folder it writes: the function runs
    holding that folder's lock (:func:`folder_lock`)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def locked(folder: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Any:
            with folder_lock(folder, command):
                return fn(folder, *args, **kwargs)

        return locked  # type: ignore[return-value]

    return decorate
