"""The output-path guard every command runs before it writes: no command ever overwrites or
deletes a file it was given as input, and a bad output path fails before any work is done.

Standard library only (a base module, below everything that writes files).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from cloudfree.errors import CloudfreeError

PathLike = str | os.PathLike[str]


class OutputError(CloudfreeError, ValueError):
    """An output path that cannot be written as asked (it is an input, a folder, read-only)."""


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same resolved path, or (both existing) the same
    inode, which catches hard links and bind mounts."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path(".")


def check_writable_file(path: PathLike, flag: str = "--out", example: str = "out.tif") -> Path:
    """Raise :class:`OutputError` unless ``path`` can become a file: not an existing folder,
    in a folder that exists or can be created, and is writable. ``example``: a file name the
    message suggests inside such a folder."""
    out = Path(path)
    if out.is_dir():
        raise OutputError(
            f"{flag} {out} is an existing folder; give a file name (e.g. {out / example})"
        )
    base = _nearest_existing(out.parent)
    if not base.is_dir():
        raise OutputError(f"{flag} {out}: {base} is a file, not a folder; choose another path")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(
            f"{flag} {out}: the folder {base} is not writable; choose a folder you can write to"
        )
    return out


def check_outputs(
    outputs: Mapping[str, PathLike | None],
    inputs: Iterable[PathLike | None] = (),
    example: str = "out.tif",
) -> None:
    """Check a command's outputs before it starts.

    Args:
        outputs: flag -> output file (None: not asked for), e.g. ``{"--out": out,
            "--mask-out": None}``.
        inputs: every file the command reads (None entries are skipped).
        example: a file name suggested when an output is a folder.

    Raises:
        OutputError: an output is one of the inputs, two outputs are one file, or an output
            cannot be written (:func:`check_writable_file`). The message names both flags.
    """
    given = [(flag, Path(p)) for flag, p in outputs.items() if p is not None]
    ins = [Path(p) for p in inputs if p is not None]
    for i, (flag, out) in enumerate(given):
        for src in ins:
            if _same_file(out, src):
                raise OutputError(
                    f"{flag} {out} is also an input ({src}); writing it would destroy the "
                    "input. Give the output a name of its own"
                )
        for other_flag, other in given[:i]:
            if _same_file(out, other):
                raise OutputError(
                    f"{flag} {out} is the same file as {other_flag}; one output would be lost. "
                    "Give each output a file name of its own"
                )
        check_writable_file(out, flag, example)


def check_output_dir(
    path: PathLike, flag: str = "--out", inputs: Iterable[PathLike | None] = ()
) -> Path:
    """Raise :class:`OutputError` unless ``path`` can be (or is) an output folder: not an
    existing file, not one of ``inputs`` (a dataset folder to write into is refused), and in a
    writable place. Nothing is created.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(
            f"{flag} {out} is a file; this command writes a folder there. Give a folder name "
            f"(e.g. {out.with_suffix('')}_out)"
        )
    for src in inputs:
        if src is not None and _same_file(out, Path(src)):
            raise OutputError(
                f"{flag} {out} is also an input ({src}); give the outputs a folder of their own"
            )
    base = _nearest_existing(out)
    if not base.is_dir():
        raise OutputError(f"{flag} {out}: {base} is a file, not a folder; choose another path")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {out}: {base} is not writable; choose a folder you can write to")
    return out
