"""Process-group helpers that serve one process and ``torchrun`` with the same code.

Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` in
the environment) :func:`init_distributed` joins the process group: NCCL when the processes use
CUDA devices (each on ``cuda:LOCAL_RANK``), gloo on the CPU. Without that environment it creates
no group and reports rank 0 of a world of 1, and every helper here degrades to a no-op, so the
training loop never branches on "distributed or not" (as dinov2's ``distributed/__init__.py``).
Nothing happens at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from cloudfree.models.runtime import resolve_device

T = TypeVar("T")

#: Environment variables ``torchrun`` sets for every process it starts.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job.

    Attributes:
        rank: global rank in ``[0, world_size)``; 0 in a single process.
        local_rank: rank on this node (selects the GPU); 0 in a single process.
        world_size: number of processes in the job; 1 in a single process.
        device: the device this process computes on.
        backend: ``"nccl"`` or ``"gloo"`` when a process group was created, else ``None``.
    """

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        """Whether this process is rank 0 (the one that logs and writes checkpoints)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group exists (``world_size > 1`` or torchrun with 1 process)."""
        return self.backend is not None


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError as e:
        raise ValueError(f"environment variable {name}={value!r} must be an integer") from e


def init_distributed(device: str | torch.device = "auto") -> DistInfo:
    """Join the ``torchrun`` process group if there is one, and pick this process's device.

    Args:
        device: ``"auto"`` (``cuda:LOCAL_RANK`` if CUDA is available, else CPU), ``"cpu"``,
            ``"cuda"`` (means ``cuda:LOCAL_RANK``) or an explicit device.

    Returns:
        The process's :class:`DistInfo`. Calling it again after a group exists returns the
        same information without re-initialising.

    Raises:
        ValueError: only part of torchrun's environment is set, or a variable is not an integer.
        DeviceError: CUDA was asked for but is not available
            (:func:`cloudfree.models.runtime.resolve_device`).
    """
    present = [k for k in TORCHRUN_ENV if k in os.environ]
    if not present:
        dev = resolve_device(device, 0, flag="train.device")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        return DistInfo(rank=0, local_rank=0, world_size=1, device=dev, backend=None)
    missing = [k for k in TORCHRUN_ENV if k not in os.environ]
    if missing:
        raise ValueError(
            f"partial torchrun environment: {present} set but {missing} missing; launch with "
            "'torchrun --nproc_per_node=N ...' or unset these variables for a single process"
        )
    rank, world_size, local_rank = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    dev = resolve_device(device, local_rank, flag="train.device")
    if dev.type == "cuda":
        # Must precede NCCL init so each process's communicator binds to its own GPU.
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        # init_method defaults to env://, i.e. MASTER_ADDR/MASTER_PORT set by torchrun.
        kwargs: dict[str, Any] = {"backend": backend, "rank": rank, "world_size": world_size}
        if backend == "nccl":
            kwargs["device_id"] = dev
        dist.init_process_group(**kwargs)
    else:
        backend = dist.get_backend()
    return DistInfo(
        rank=rank, local_rank=local_rank, world_size=world_size, device=dev, backend=backend
    )


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Global rank of this process; 0 without a process group."""
    return dist.get_rank() if _active() else 0


def get_world_size() -> int:
    """Number of processes; 1 without a process group."""
    return dist.get_world_size() if _active() else 1


def is_main() -> bool:
    """Whether this process is rank 0 (always true without a process group)."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every process; no-op without a process group."""
    if _active():
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over all processes (e.g. a loss for logging).

    Args:
        tensor: any floating tensor, on this process's device (CUDA for NCCL).

    Returns:
        A new tensor with the element-wise mean over ranks; a detached copy of ``tensor``
        without a process group. The input is never modified.
    """
    out = tensor.detach().clone()
    if not _active() or get_world_size() == 1:
        return out
    if not out.is_floating_point():
        raise TypeError(f"all_reduce_mean needs a floating tensor, got {out.dtype}")
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / get_world_size()


def broadcast_object(obj: T, src: int = 0) -> T:
    """Send a picklable object from rank ``src`` to every process; returns it on every rank.

    Without a process group, returns ``obj`` unchanged.
    """
    if not _active():
        return obj
    holder = [obj if get_rank() == src else None]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]  # type: ignore[return-value]


def all_gather_object(obj: T) -> list[T]:
    """Collect one picklable object from every process, in rank order, on every process.

    Used to save each rank's RNG state in a checkpoint. Without a process group: ``[obj]``.
    """
    if not _active():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def cleanup() -> None:
    """Destroy the process group if one exists (call once at the end of training)."""
    if _active():
        dist.destroy_process_group()
