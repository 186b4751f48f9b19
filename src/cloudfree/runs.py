"""The folder layout of a training run, and where its weights are.

Layout of a run folder (written by :mod:`cloudfree.train.checkpoint`)::

    run_dir/checkpoints/
        step-00001234/         one complete checkpoint per saved step
            model.safetensors  weights + model name/config (cloudfree.models.save_weights)
            state.pt           optimizer, step, epoch, sampler position, RNG states, extra
        best/                  copy (hard links) of the best checkpoint so far
        latest                 text file naming the newest step directory

Training writes it; ``evaluate``, ``predict``, the viewer and ``train --init`` read weights
from it. Standard library only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from cloudfree.errors import DataError

CHECKPOINTS: Final[str] = "checkpoints"
LATEST: Final[str] = "latest"
BEST: Final[str] = "best"
MODEL_FILE: Final[str] = "model.safetensors"
STATE_FILE: Final[str] = "state.pt"
#: Name of a step directory.
STEP_RE: Final[re.Pattern[str]] = re.compile(r"^step-(\d+)$")
#: What a folder holding weights may be, for error messages.
RUN_FOLDERS: Final[str] = (
    f"a checkpoint folder holding {MODEL_FILE} (e.g. run/checkpoints/best), or a training run "
    f"folder holding {CHECKPOINTS}/ (its best/ checkpoint, else its latest)"
)


def step_of(path: Path) -> int | None:
    """The step of a ``step-XXXXXXXX`` directory, or None for any other name."""
    m = STEP_RE.match(path.name)
    return int(m.group(1)) if m else None


def is_complete(path: Path) -> bool:
    """Whether ``path`` is a complete checkpoint (weights and training state both there)."""
    return (path / MODEL_FILE).is_file() and (path / STATE_FILE).is_file()


def step_dirs(ckpt_dir: Path) -> list[Path]:
    """Complete ``step-*`` directories, oldest step first."""
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir() if step_of(p) is not None and is_complete(p)]
    return sorted(found, key=lambda p: step_of(p) or 0)


def find_latest(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint of a run, or None if it has none.

    Reads ``run_dir/checkpoints/latest``; if that is missing, unreadable or names a directory
    that is gone or incomplete, falls back to the complete ``step-*`` directory with the
    highest step. Temporary directories of a crashed save are never returned.
    """
    ckpt_dir = Path(run_dir) / CHECKPOINTS
    try:
        name = (ckpt_dir / LATEST).read_text().strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    if STEP_RE.match(name) and is_complete(ckpt_dir / name):
        return ckpt_dir / name
    steps = step_dirs(ckpt_dir)
    return steps[-1] if steps else None


def weights_file(path: Path, accepted: str = RUN_FOLDERS) -> Path:
    """The ``model.safetensors`` of a checkpoint folder or of a run's best / latest checkpoint.

    A run folder's ``checkpoints/best`` is preferred (the checkpoint selected on validation,
    the one to report); without it, its latest complete checkpoint
    (:func:`find_latest`).
    """
    if (path / MODEL_FILE).is_file():
        return path / MODEL_FILE
    best = path / CHECKPOINTS / BEST / MODEL_FILE
    if best.is_file():
        return best
    latest = find_latest(path)
    if latest is None:
        raise DataError(
            path,
            f"is a folder but holds neither {MODEL_FILE} nor a complete checkpoint under "
            f"{CHECKPOINTS}/",
            accepted,
        )
    return latest / MODEL_FILE


def short_name(weights: str | os.PathLike[str]) -> str:
    """The name tables and reports show for a weights file (its full path stays ``method.path``).

    ``<run>/checkpoints/<ck>/model.safetensors`` is ``"<run> (<ck>)"``, another
    ``<folder>/model.safetensors`` is ``"<folder>"``, any other file its stem: ``compare`` and
    ``view`` list methods side by side, and absolute paths made those tables unreadable.
    """
    path = Path(weights).resolve()
    if path.name != MODEL_FILE:
        return path.stem
    folder = path.parent
    if folder.parent.name == CHECKPOINTS:
        return f"{folder.parent.parent.name} ({folder.name})"
    return folder.name


def run_folder_of(path: str | os.PathLike[str]) -> Path | None:
    """The training run folder that ``path`` (a run folder, a checkpoint folder or a weights
    file inside one) belongs to, or None: the folder above ``checkpoints/``, or ``path``
    itself when it holds ``checkpoints/``. Used to keep outputs out of a run the user gave."""
    p = Path(path)
    if (p / CHECKPOINTS).is_dir():
        return p
    for parent in p.parents:
        if parent.name == CHECKPOINTS:
            return parent.parent
    return None
