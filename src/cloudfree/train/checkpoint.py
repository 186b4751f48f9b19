"""Training checkpoints that never lose work.

The layout of a run folder is :mod:`cloudfree.runs`'s.

A checkpoint is written into a hidden temporary directory (``.tmp-step-...``), its files and
the directory are fsync'd, and only then is it renamed to ``step-XXXXXXXX`` (one atomic
``os.replace``). A crash at any moment therefore leaves either the new complete checkpoint or
none, and the previous one stays intact; :func:`find_latest` ignores temporary directories.
``latest`` is replaced atomically after the rename. Only rank 0 should save (the model and
optimizer are identical on every rank under DDP); pass every rank's RNG state (gathered with
``cloudfree.train.distributed.all_gather_object(capture_rng_state())``) for a bitwise resume
of per-rank randomness.

``state.pt`` holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cloudfree.errors import DataError
from cloudfree.io import fsync_path
from cloudfree.runs import (
    BEST,
    CHECKPOINTS,
    LATEST,
    MODEL_FILE,
    STATE_FILE,
    find_latest,
    is_complete,
    step_dirs,
)

_TMP_PREFIX = ".tmp-"
_EXPECTED = (
    "a checkpoint directory (model.safetensors + state.pt) or a run folder with checkpoints/"
)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def capture_rng_state() -> dict[str, Any]:
    """This process's RNG states: torch CPU, CUDA (all devices, if available), numpy, random.

    Returns:
        A dict of tensors and plain Python values (safe for ``weights_only`` loading).
    """
    # The legacy global numpy RNG on purpose: numpy code without its own Generator draws from it.
    np_state = np.random.get_state()  # noqa: NPY002
    kind, keys, pos, has_gauss, cached = np_state
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": [str(kind), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "python": [int(version), [int(i) for i in internal], gauss_next],
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore RNG states captured by :func:`capture_rng_state`.

    CUDA states are restored only when CUDA is available with the same number of devices.
    """
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np_state = (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
    np.random.set_state(np_state)  # noqa: NPY002
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def _plain(value: Any, where: str) -> Any:
    """``value`` as tensors and plain Python containers, loadable with ``weights_only=True``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value), where)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"checkpoint entry {where} has type {type(value).__name__}; use tensors, numbers, "
        "strings, None, lists, dicts, numpy values or dataclasses"
    )


def _replace_dir(src: Path, dst: Path) -> None:
    """Move directory ``src`` onto ``dst``, replacing an existing ``dst``.

    ``os.replace`` cannot overwrite a non-empty directory, so an old ``dst`` is first renamed
    aside; a crash in between leaves no ``dst`` (callers fall back to the other checkpoints).
    """
    trash = None
    if dst.exists():
        trash = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}old-{dst.name}-", dir=dst.parent))
        os.replace(dst, trash / dst.name)
    os.replace(src, dst)
    fsync_path(dst.parent)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def _write_latest(ckpt_dir: Path, name: str) -> None:
    from cloudfree.io import atomic_path

    with atomic_path(ckpt_dir / LATEST) as tmp, open(tmp, "w") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    fsync_path(ckpt_dir)


def _link_or_copy_tree(src: Path, dst: Path) -> None:
    dst.mkdir()
    for item in src.iterdir():
        # Hard links are safe: checkpoint files are never modified in place, only replaced.
        try:
            os.link(item, dst / item.name)
        except OSError:
            shutil.copy2(item, dst / item.name)
    fsync_path(dst)


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    epoch: int,
    sampler_state: Mapping[str, Any] | None,
    extra: Mapping[str, Any] | None = None,
    keep_last: int = 3,
    is_best: bool = False,
    rng_states: Sequence[Mapping[str, Any]] | None = None,
    aux: Mapping[str, Any] | None = None,
) -> Path:
    """Write a complete checkpoint atomically, point ``latest`` at it and prune old ones.

    Args:
        run_dir: the run folder; checkpoints go to ``run_dir/checkpoints/step-XXXXXXXX``.
        model: the model, possibly wrapped in DDP and/or ``torch.compile`` (unwrapped here);
            must be a registered model (``registry_name`` + ``config``).
        optimizer: its optimizer.
        step: optimizer steps done so far (>= 0); names the directory.
        epoch: current epoch (>= 0).
        sampler_state: ``ResumableDistributedSampler.state_dict()`` (or None).
        extra: anything else to keep (best validation loss, metrics, resolved config), made of
            tensors, numbers, strings, lists, dicts, numpy values or dataclasses.
        keep_last: how many step directories to keep (>= 1); the best one lives in ``best/``.
        is_best: also make this checkpoint ``checkpoints/best`` (replacing the previous best).
        rng_states: one :func:`capture_rng_state` per rank, in rank order; default: this
            process's state only.
        aux: state of other trained parts, kept as given (e.g. pix2pix's discriminator and its
            optimiser: ``state_dict()``s, whose integer keys must survive); tensors, plain
            Python values and dicts only.

    Returns:
        The checkpoint directory written.

    Raises:
        ValueError: negative step/epoch or ``keep_last < 1``.
        TypeError: an ``extra`` entry of an unsupported type.
    """
    from cloudfree.models.weights import save_weights

    if step < 0 or epoch < 0:
        raise ValueError(f"step and epoch must be >= 0, got step={step}, epoch={epoch}")
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    ckpt_dir = Path(run_dir) / CHECKPOINTS
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    final = ckpt_dir / name
    state = {
        "step": int(step),
        "epoch": int(epoch),
        "optimizer": optimizer.state_dict(),
        "sampler_state": _plain(dict(sampler_state), "sampler_state") if sampler_state else None,
        "rng": [_plain(dict(s), "rng_states") for s in (rng_states or [capture_rng_state()])],
        "extra": _plain(dict(extra or {}), "extra"),
        "aux": dict(aux) if aux else None,
    }
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{name}-", dir=ckpt_dir))
    try:
        save_weights(unwrap_model(model), tmp / MODEL_FILE, {"step": step, "epoch": epoch})
        with open(tmp / STATE_FILE, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        with open(tmp / MODEL_FILE, "rb") as f:
            os.fsync(f.fileno())
        fsync_path(tmp)
        _replace_dir(tmp, final)
    except Exception as e:
        from cloudfree.io import WriteError, no_space

        if no_space(e, ckpt_dir):  # torch says "file write failed", without the errno
            raise WriteError(
                f"no space left on device while writing the checkpoint {final}; the run keeps "
                f"its earlier checkpoints: free some space and continue it with --resume "
                f"{Path(run_dir)}"
            ) from e
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _write_latest(ckpt_dir, name)
    if is_best:
        best_tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{BEST}-", dir=ckpt_dir))
        try:
            _link_or_copy_tree(final, best_tmp / BEST)
            _replace_dir(best_tmp / BEST, ckpt_dir / BEST)
        finally:
            shutil.rmtree(best_tmp, ignore_errors=True)
    _prune(ckpt_dir, keep_last, final)
    return final


def _prune(ckpt_dir: Path, keep_last: int, keep: Path) -> None:
    """Delete all but the newest ``keep_last`` step dirs (never ``keep``), and crash leftovers."""
    steps = step_dirs(ckpt_dir)
    for old in steps[: max(len(steps) - keep_last, 0)]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)
    # Temporary directories of saves that crashed earlier (only rank 0 ever saves, so none
    # of them is in progress now).
    for p in ckpt_dir.iterdir():
        if p.name.startswith(_TMP_PREFIX) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


class _Damaged(Exception):
    """A checkpoint whose files cannot be read (truncated, overwritten, bad disk)."""


def _read(ckpt: Path, map_location: str | torch.device) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state, weights)`` of a checkpoint; :class:`_Damaged` if a file cannot be read."""
    from cloudfree.models.weights import _read_tensors

    try:
        state = torch.load(ckpt / STATE_FILE, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle / zip errors of a damaged file
        raise _Damaged(f"{ckpt / STATE_FILE}: unreadable checkpoint state ({e})") from e
    try:
        tensors = _read_tensors(ckpt / MODEL_FILE)
    except DataError as e:
        raise _Damaged(str(e)) from e
    return state, tensors


def _read_newest_intact(
    path: Path, map_location: str | torch.device
) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The newest checkpoint of ``path`` whose files can be read, with its state and weights.

    A checkpoint folder is read as it is (an error if damaged). For a run folder, a damaged
    latest checkpoint (written completely, then truncated or overwritten: a full or failing
    disk, a partial copy) does not stop a resume: it is renamed ``<name>.damaged`` (kept for a
    look, ignored from then on), a warning says so, and the previous complete one is used.
    """
    import warnings

    ckpt = _resolve(path)
    while True:
        try:
            return (ckpt, *_read(ckpt, map_location))
        except _Damaged as e:
            if ckpt.parent != path / CHECKPOINTS:  # a checkpoint folder given directly
                raise DataError(ckpt, f"is damaged: {e}", _EXPECTED) from e
            aside = ckpt.with_name(f"{ckpt.name}.damaged")
            os.replace(ckpt, aside)
            previous = find_latest(path)
            if previous is None:
                raise DataError(
                    aside, f"the only checkpoint of the run is damaged: {e}", _EXPECTED
                ) from e
            warnings.warn(
                f"{ckpt} is damaged ({e}); moved to {aside.name}, resuming from {previous.name}",
                stacklevel=3,
            )
            ckpt = previous


def _resolve(path: Path) -> Path:
    if is_complete(path):
        return path
    found = find_latest(path)
    if found is None:
        problem = (
            "is not a checkpoint and holds no complete checkpoint under checkpoints/"
            if path.exists()
            else "does not exist"
        )
        raise DataError(path, problem, _EXPECTED)
    return found


def load_checkpoint(
    path_or_run_dir: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    map_location: str | torch.device = "cpu",
    rank: int = 0,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint into ``model`` (and ``optimizer``) and restore the RNG states.

    Args:
        path_or_run_dir: a checkpoint directory (``.../step-XXXXXXXX`` or ``.../best``) or a
            run folder (its latest checkpoint is used, see :func:`find_latest`; if that one's
            files cannot be read, it is set aside and the previous one is used, with a
            warning).
        model: a model of the same architecture (DDP / compiled wrappers are unwrapped); the
            weights must fit exactly (``cloudfree.models.load_state``).
        optimizer: the optimizer to restore (its parameters must be the model's, in the same
            order as when saved); None skips it.
        map_location: where ``state.pt`` tensors are loaded (the optimizer then moves its
            state to its parameters' devices).
        rank: which saved RNG state to restore (rank ``r`` of the saving job; rank 0 when fewer
            were saved).
        restore_rng: restore torch / CUDA / numpy / random RNG states.

    Returns:
        ``{"path", "step", "epoch", "sampler_state", "extra", "aux"}`` (``aux``: what
        :func:`save_checkpoint` got as ``aux``, or None).

    Raises:
        DataError: no checkpoint found, unreadable state, or weights that do not fit.
    """
    from cloudfree.models.weights import check_state

    path = Path(path_or_run_dir)
    ckpt, state, tensors = _read_newest_intact(path, map_location)
    check_state(unwrap_model(model), tensors, ckpt / MODEL_FILE)  # all or nothing
    unwrap_model(model).load_state_dict(tensors, strict=True)
    if optimizer is not None:
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as e:
            raise DataError(
                ckpt / STATE_FILE,
                f"optimizer state does not fit this optimizer: {e}",
                "the same optimizer type over the same parameters as the saved run",
            ) from e
    if restore_rng:
        rngs = state["rng"]
        restore_rng_state(rngs[rank] if rank < len(rngs) else rngs[0])
    return {
        "path": ckpt,
        "step": state["step"],
        "epoch": state["epoch"],
        "sampler_state": state["sampler_state"],
        "extra": state["extra"],
        "aux": state.get("aux"),
    }
