"""The output-path guard every command runs before it writes: no command ever overwrites or
deletes a file it was given as input, and a bad output path fails before any work is done.

Standard library only (a base module, below everything that writes files).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
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


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies under ``folder`` (resolved; at any depth)."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def input_conflict(out: PathLike, inputs: Iterable[PathLike | None]) -> Path | None:
    """The input that writing the file ``out`` would destroy, or None.

    An input file is destroyed when ``out`` is that file (a hard link included); an input
    folder when ``out`` is an existing file inside it (data the command was given, such as an
    evaluation's ``summary.json`` or a training run's checkpoint). A new file inside an input
    folder destroys nothing.
    """
    target = Path(out)
    for src in inputs:
        if src is None:
            continue
        src = Path(src)
        if _same_file(target, src):
            return src
        if src.is_dir() and target.is_file() and _inside(target, src):
            return src
    return None


def _refuse_input(flag: str, out: Path, src: Path) -> None:
    if _same_file(out, src):
        raise OutputError(
            f"{flag} {out} is also an input ({src}); writing it would destroy the input. "
            "Give the output a name of its own"
        )
    raise OutputError(
        f"{flag} {out} is a file inside the input folder {src}; writing it would replace "
        f"data this command was given. Give the output a name of its own, outside {src}"
    )


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
    """Check a command's outputs before it starts: the one output guard every command runs
    over every path it writes (each flag), before any work.

    Args:
        outputs: flag -> output file (None: not asked for), e.g. ``{"--out": out,
            "--mask-out": None, "--summary": None}``.
        inputs: every file or folder the command reads (None entries are skipped); an
            existing file inside an input folder counts as an input (:func:`input_conflict`).
        example: a file name suggested when an output is a folder.

    Raises:
        OutputError: an output is (or is inside) one of the inputs, two outputs are one file,
            or an output cannot be written (:func:`check_writable_file`). The message names
            both flags.
    """
    given = [(flag, Path(p)) for flag, p in outputs.items() if p is not None]
    ins = [Path(p) for p in inputs if p is not None]
    for i, (flag, out) in enumerate(given):
        src = input_conflict(out, ins)
        if src is not None:
            _refuse_input(flag, out, src)
        for other_flag, other in given[:i]:
            if _same_file(out, other):
                raise OutputError(
                    f"{flag} {out} is the same file as {other_flag}; one output would be lost. "
                    "Give each output a file name of its own"
                )
        check_writable_file(out, flag, example)


def check_output_dir(
    path: PathLike,
    flag: str = "--out",
    inputs: Iterable[PathLike | None] = (),
    writes: Iterable[str] = (),
) -> Path:
    """Raise :class:`OutputError` unless ``path`` can be (or is) an output folder: not an
    existing file, not one of ``inputs`` (a dataset folder to write into is refused), in a
    writable place, and none of the files it will hold (``writes``, names relative to it) an
    input or a file inside an input folder. Nothing is created.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(
            f"{flag} {out} is a file; this command writes a folder there. Give a folder name "
            f"(e.g. {out.with_suffix('')}_out)"
        )
    ins = [Path(p) for p in inputs if p is not None]
    for src in ins:
        if _same_file(out, src):
            raise OutputError(
                f"{flag} {out} is also an input ({src}); give the outputs a folder of their own"
            )
    for name in writes:
        hit = input_conflict(out / name, ins)
        if hit is not None:
            raise OutputError(
                f"{flag} {out}: this command writes {out / name} there, which is input data "
                f"(of {hit}); writing it would destroy it. Give the outputs a folder of their own"
            )
    base = _nearest_existing(out)
    if not base.is_dir():
        raise OutputError(f"{flag} {out}: {base} is a file, not a folder; choose another path")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {out}: {base} is not writable; choose a folder you can write to")
    return out


@contextlib.contextmanager
def created_folder(path: PathLike, keep: Callable[[], bool] = lambda: False) -> Iterator[Path]:
    """Create the output folder ``path`` (and missing parents) for the ``with`` body; if the
    body fails, remove what this call created, so that a failed command leaves no empty or
    half-filled folder behind. ``keep()``: whether the partial work is worth keeping (a
    resumable pack with finished shards). A folder that existed before is never removed.
    """
    out = Path(path)
    created = first_missing(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield out
    except BaseException:
        if created is not None and not keep():
            shutil.rmtree(created, ignore_errors=True)
        raise


def first_missing(path: PathLike) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what ``mkdir(parents=True)``
    creates first, and what to remove to undo it), or None if ``path`` exists."""
    missing = None
    for p in [Path(path), *Path(path).parents]:
        if p.exists():
            return missing
        missing = p
    return missing
