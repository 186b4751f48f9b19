"""Run logging on rank 0: TensorBoard scalars and images, plus a ``metrics.csv`` in the run folder.

The CSV is in long ("tidy") format, one row per value::

    step,split,name,value
    100,train,loss,0.0123
    100,train,patches_per_s,41.2
    800,val,mae,0.0311

because the training and validation rows carry different keys. The header is written once;
every call appends and flushes, so a killed run keeps everything it logged, and a resumed run
appends to the same file, after dropping the rows logged after its checkpoint (those steps are
trained, and logged, again). TensorBoard events go to ``run_dir/tb`` with
tags ``split/name``.

Only rank 0 logs: build the logger with ``enabled=dist.is_main`` and call it on every rank; on
the other ranks every method is a no-op and nothing is created on disk. tensorboard is imported
lazily (in the constructor of an enabled logger), so importing this module does not import it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from torch import Tensor

#: Columns of ``metrics.csv``.
CSV_COLUMNS: tuple[str, ...] = ("step", "split", "name", "value")
#: File name of the CSV log inside the run folder.
METRICS_CSV = "metrics.csv"
#: Sub-folder of the run folder with the TensorBoard event files.
TB_DIR = "tb"


class RunLogger:
    """Writes scalars and images of one run (rank 0 only).

    Args:
        run_dir: the run folder; ``metrics.csv`` and ``tb/`` are created inside it.
        enabled: False on non-zero ranks: every method is then a no-op and nothing is written.
        resume_step: a resumed run's checkpoint step: what was logged after it (by a process
            killed before its next checkpoint, whose steps are done again now) is dropped from
            ``metrics.csv`` and TensorBoard, so no step is logged twice.

    Raises:
        DataError: an existing ``metrics.csv`` does not have the expected header.
    """

    def __init__(self, run_dir: str | Path, enabled: bool, resume_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = bool(enabled)
        self._writer: Any = None
        self._csv_file: Any = None
        self._csv: Any = None
        if not self.enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        csv_path = self.run_dir / METRICS_CSV
        fresh = not csv_path.exists() or csv_path.stat().st_size == 0
        if not fresh:
            _check_header(csv_path)
            if resume_step is not None:
                _drop_after(csv_path, resume_step)
        # Append: on resume the rows of the interrupted run up to its checkpoint stay.
        self._csv_file = open(csv_path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._csv = csv.writer(self._csv_file)
        if fresh:
            self._csv.writerow(CSV_COLUMNS)
            self._csv_file.flush()
        # Lazy: tensorboard pulls in protobuf and friends, only the logging rank needs it.
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard hides the events at and after it from earlier writers.
        purge = None if resume_step is None else int(resume_step) + 1
        self._writer = SummaryWriter(log_dir=str(self.run_dir / TB_DIR), purge_step=purge)

    @property
    def csv_path(self) -> Path:
        """Path of ``metrics.csv``."""
        return self.run_dir / METRICS_CSV

    def scalars(self, step: int, values: dict[str, float], prefix: str) -> None:
        """Log scalar values at ``step``: TensorBoard tags ``prefix/key`` and CSV rows.

        Args:
            step: global optimisation step (x axis).
            values: ``{name: value}``; tensors of one element and numpy scalars are accepted.
                NaN is written as ``nan`` (e.g. a recon metric of a cloud-free validation set).
            prefix: the split, e.g. ``"train"`` or ``"val"``.
        """
        if not self.enabled:
            return
        for name, value in values.items():
            v = _to_float(value)
            self._writer.add_scalar(f"{prefix}/{name}", v, global_step=int(step))
            self._csv.writerow((int(step), prefix, name, repr(v) if math.isfinite(v) else str(v)))
        # Flush both so a killed run keeps what it logged.
        self._csv_file.flush()
        self._writer.flush()

    def image(self, step: int, tag: str, img: Tensor) -> None:
        """Log an RGB image to TensorBoard.

        Args:
            step: global optimisation step.
            tag: TensorBoard tag, e.g. ``"val/panels"``.
            img: (3, H, W) uint8 tensor (as :func:`cloudfree.train.panels.rgb_panels` returns).

        Raises:
            ValueError: ``img`` is not a (3, H, W) uint8 tensor.
        """
        if not self.enabled:
            return
        if not isinstance(img, Tensor) or img.ndim != 3 or img.shape[0] != 3:
            shape = tuple(img.shape) if isinstance(img, Tensor) else type(img).__name__
            raise ValueError(f"image {tag!r} has shape {shape}, expected (3, H, W) uint8")
        if img.dtype.is_floating_point or img.dtype.is_complex or img.dtype.itemsize != 1:
            raise ValueError(f"image {tag!r} has dtype {img.dtype}, expected torch.uint8")
        self._writer.add_image(tag, img.detach().cpu().numpy(), int(step), dataformats="CHW")
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the files (safe to call twice)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None
            self._csv = None

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_float(value: Any) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"a scalar must have one element, got shape {tuple(value.shape)}")
        return float(value.detach().cpu().item())
    return float(value)


def _check_header(path: Path) -> None:
    from cloudfree.errors import DataError

    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), None)
    if header is None or tuple(header) != CSV_COLUMNS:
        raise DataError(
            path,
            f"has header {header}",
            f"the header {','.join(CSV_COLUMNS)} of a cloudfree metrics log; move the file away "
            "or pick another run folder",
        )


def _drop_after(path: Path, step: int) -> None:
    """Rewrite ``metrics.csv`` without its rows after ``step`` (atomically; nothing if none)."""
    from cloudfree.io import atomic_path

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    keep = [rows[0], *(r for r in rows[1:] if r and int(r[0]) <= step)]
    if len(keep) == len(rows):
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(keep)


def read_metrics_csv(path: str | Path) -> list[tuple[int, str, str, float]]:
    """Read a ``metrics.csv`` back as ``(step, split, name, value)`` rows, in file order."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader, None)
        return [(int(s), sp, n, float(v)) for s, sp, n, v in reader]
