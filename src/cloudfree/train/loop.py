"""The training loop: one process (CPU or one GPU) or many under ``torchrun``, same code.

Read :func:`_train` top to bottom: :func:`_setup` (seeds, run folder, model, optimiser, data:
a :class:`_Run`), :func:`_resume` (a :class:`_State` from the latest checkpoint), then one loop
over epochs (:func:`_train_epoch`) of steps (:func:`_train_step`, whose one forward,
:func:`_step_loss`, serves real batches and the dummy batch of a rank whose patches were all
unreadable), then the summary. Every rank runs every line; only rank 0 logs and writes
checkpoints, and the collectives (``barrier``, the loss all-reduce, DDP's gradient all-reduce)
keep the ranks in step.

Exact resume: everything random is a function of (seed, epoch, sample index) (crops in
``cloudfree.data.sample``, shuffling in the sampler) or is restored from the checkpoint (weights,
Nadam state, sampler position, every rank's RNG states), so a run killed at any moment and
resumed from its last complete checkpoint redoes the lost steps identically: on CPU with
``train.deterministic`` the final weights are bitwise those of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS
from cloudfree.config import Config, save_config
from cloudfree.errors import CloudfreeError
from cloudfree.models.contract import ModelContract, contract_of, forward, model_inputs
from cloudfree.models.runtime import bf16_autocast, training_bf16
from cloudfree.outputs import check_output_dir, first_missing
from cloudfree.runs import find_latest
from cloudfree.train import distributed as D
from cloudfree.train.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    save_checkpoint,
    unwrap_model,
)
from cloudfree.train.data import build_datasets, build_loader
from cloudfree.train.optim import build_optimizer, clip_gradients, lr_factor
from cloudfree.train.sampler import ResumableDistributedSampler, ShardSampler

if TYPE_CHECKING:
    from cloudfree.models.pix2pix import Pix2PixGenerator

#: The bad-patch threshold is checked only once this many patches were drawn (or the whole
#: training split, if smaller): one bad patch among the first few is no evidence of a bad set.
MIN_SAMPLES_FOR_BAD_CHECK = 64
#: Environment variable: when set, each rank writes the indices it trained on in its first
#: epoch to ``run_dir/indices_rank{r}.json`` (to test that ranks cover the data disjointly).
DEBUG_INDICES_ENV = "CLOUDFREE_DEBUG_INDICES"
#: The run's summary, written when training ends.
SUMMARY = "summary.json"


class TrainingError(CloudfreeError, RuntimeError):
    """Training stopped on purpose: non-finite loss, too many bad patches, out of memory."""


def _seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the legacy global RNG, for code that draws from it)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic matmuls (CUDA docs).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def _make_run_dir(cfg: Config, resume: str | Path | None) -> Path:
    """Rank 0 picks the run folder; every rank gets the same path."""
    if resume is not None:
        run_dir = Path(resume)
        if find_latest(run_dir) is None and not (run_dir / "config.yaml").is_file():
            raise TrainingError(
                f"{run_dir}: cannot resume, it is not a run folder (no checkpoints/, no "
                "config.yaml); pass the folder a previous 'cloudfree train' printed"
            )
        return run_dir
    name = cfg.train.run_name
    if name is None and D.is_main():
        name = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{cfg.model.name}-{cfg.loss.name}"
    name = D.broadcast_object(name)
    run_dir = Path(cfg.train.out_dir) / str(name)
    check_output_dir(run_dir, "train.out_dir/train.run_name")
    # Decided on rank 0 and shared, so that every rank raises (none is left at a barrier).
    taken = D.broadcast_object(D.is_main() and find_latest(run_dir) is not None)
    if taken:
        raise TrainingError(
            f"{run_dir} already holds checkpoints; continue it with --resume {run_dir}, or "
            "choose another train.run_name"
        )
    return run_dir


def _param_hash(model: nn.Module) -> str:
    """SHA-256 over every parameter's bytes, in order (identical ranks, same hash).

    Parameters only: buffers such as BatchNorm running statistics are each rank's own after
    its last forward (DDP broadcasts rank 0's at the start of each forward), and the
    checkpoint holds rank 0's.
    """
    h = hashlib.sha256()
    for name, t in unwrap_model(model).named_parameters():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _sync_step(model: nn.Module, loss: torch.Tensor | None, world: int) -> tuple[float, int]:
    """After ``backward``: the step's loss over the ranks that had data, and how many had it.

    One all-reduce of ``[loss, has_data]`` (the per-step loss reduction the loop needs anyway).
    DDP's gradient all-reduce AVERAGES over all ``world`` ranks, and a rank whose whole batch
    was unreadable contributed a zero gradient (its dummy forward), so when only
    ``k < world`` ranks had data the gradients are rescaled by ``world / k``: the update is then
    the mean over the ranks that had data, as if the bad ranks had not taken part. A single
    process (``world == 1``) is never rescaled, so its arithmetic is unchanged.

    Args:
        model: the (DDP-wrapped) model whose gradients ``backward`` just filled.
        loss: this rank's 0-dim loss, or None when this rank's batch was all bad.
        world: number of processes.

    Returns:
        ``(loss_value, ranks_with_data)``: the mean loss over the ranks that had data (0.0 if
        none had; NaN or inf if any rank's loss was), identical on every rank, and how many
        ranks had data (0 means: skip ``optimizer.step``).
    """
    params = list(model.parameters())
    device = params[0].device
    # float64: exact rank counts; the loss sum loses nothing either.
    vec = torch.zeros(2, dtype=torch.float64, device=device)
    if loss is not None:
        vec[0] = loss.detach().to(torch.float64)
        vec[1] = 1.0
    if world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(vec, op=torch.distributed.ReduceOp.SUM)
    loss_sum, ranks = vec.tolist()
    k = round(ranks)
    if 0 < k < world:
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, world / k)
    return (loss_sum / k if k else 0.0), k


def _oom_message(cfg: Config) -> str:
    return (
        f"out of GPU memory (train.batch_size={cfg.train.batch_size} global, "
        f"data.crop_size={cfg.data.crop_size}, model.feature_size={cfg.model.feature_size}, "
        f"train.precision={cfg.train.precision}); lower train.batch_size or data.crop_size, "
        "use a smaller model.feature_size, or train.precision=bf16 (halves activations). "
        "Resume from the last checkpoint with --resume RUN_DIR"
    )


def train(cfg: Config, resume: str | Path | None = None) -> dict[str, Any]:
    """Train ``cfg`` (from scratch, or continuing the run folder ``resume``).

    Args:
        cfg: the resolved config (``cloudfree.config.load_config``).
        resume: a run folder written by an earlier call; training continues exactly from its
            latest complete checkpoint (weights, optimiser, sampler position, RNG states).

    Returns:
        ``{"run_dir", "steps", "epochs", "train_loss", "best_val_loss", "patches_per_s",
        "skipped"}``: the run folder, optimizer steps done in total, epochs completed, the
        mean loss of the last logged window, the best validation loss (None without
        validation), global training throughput of this call, and bad patches skipped.

    Raises:
        TrainingError: non-finite loss (the last checkpoint stays intact), too many bad
            patches, out of GPU memory, or a run folder that cannot be used.
        ValueError: a config this loop cannot run (e.g. batch not divisible by world size).
    """
    # Deterministic mode is process-wide: put the caller's settings back afterwards.
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    from cloudfree.models.runtime import tf32_mode

    dist = D.init_distributed(cfg.train.device)
    held = contextlib.ExitStack()  # the run folder's lock, taken by _setup
    try:
        # Strict fp32 unless train.tf32 (the paper presets: off), for the whole run.
        with held, tf32_mode(cfg.train.tf32):
            return _train(cfg, resume, dist, held)
    except torch.cuda.OutOfMemoryError as e:
        raise TrainingError(_oom_message(cfg)) from e
    finally:
        D.cleanup()
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1:]


@dataclass
class _Run:
    """What set-up builds once and every step uses (identical on every rank but ``rank``)."""

    cfg: Config
    dist: D.DistInfo
    run_dir: Path
    #: The plain module, for its attributes (pix2pix's ``condition``).
    net: nn.Module
    #: What the network reads and gives (cloudfree.models.contract).
    contract: ModelContract
    #: What is trained: ``net`` on its device, compiled and wrapped in DDP as configured.
    model: nn.Module
    optimizer: torch.optim.Optimizer
    #: The training objective (for pix2pix: its L1 term, the validation yardstick).
    loss_fn: nn.Module
    #: The pix2pix discriminator and its optimiser; None for every other loss.
    adversary: Any
    train_ds: Any
    sampler: ResumableDistributedSampler
    val_loader: Any
    batch_per_rank: int
    bf16: bool
    channels_last: bool
    #: The forward pass also returns the variances (the Gaussian NLL needs them).
    variance: bool


@dataclass
class _State:
    """Everything that moves during training. The first block is saved in each checkpoint and
    restored on resume; the second is this call's logging window."""

    step: int = 0
    epoch: int = 0
    best_val: float = math.inf
    seen_total: int = 0  # patches drawn, over all ranks
    skipped_total: int = 0  # of which skipped as unreadable
    # This rank's counts since the last fold into the totals (:func:`_fold_counts`).
    seen_win: int = 0
    skipped_win: int = 0

    last_loss: float = math.nan  # the last step's loss (over the ranks that had data)
    window_losses: list[float] = field(default_factory=list)  # since the last log line
    steps_this_call: int = 0
    steps_log: int = 0
    t_log: float = 0.0


def _train(
    cfg: Config, resume: str | Path | None, dist: D.DistInfo, held: contextlib.ExitStack
) -> dict[str, Any]:
    """The body of :func:`train`, on a process that has joined its group (if any); ``held``
    keeps the run folder's lock until :func:`train` returns."""
    from tqdm import tqdm

    from cloudfree.train.run_log import RunLogger

    run = _setup(cfg, resume, dist, held)
    state = _resume(run) if resume is not None else _State()
    if resume is not None and state.epoch >= cfg.train.epochs:
        return _finished(run, state)
    if cfg.train.compile:
        run.model = cast(nn.Module, torch.compile(run.model))
    if dist.world_size > 1:
        device = dist.device
        run.model = nn.parallel.DistributedDataParallel(
            run.model, device_ids=[device.index] if device.type == "cuda" else None
        )

    total_steps = math.ceil(run.sampler.num_samples / run.batch_per_rank) * cfg.train.epochs
    logger = RunLogger(
        run.run_dir, enabled=dist.is_main, resume_step=state.step if resume is not None else None
    )
    bar = tqdm(total=total_steps, initial=state.step, disable=not dist.is_main, unit="step")
    run.model.train()
    t_start = state.t_log = time.perf_counter()
    for epoch in range(state.epoch, cfg.train.epochs):  # resume: continue this epoch
        state.epoch = epoch
        _train_epoch(run, state, logger, bar)
        # ---- epoch end: validate, then checkpoint (best by validation loss) ---------------
        is_best = False
        if run.val_loader is not None:
            is_best = _validate(run, state, logger)
        _checkpoint(run, state, is_best=is_best)
    bar.close()

    elapsed = time.perf_counter() - t_start
    if dist.world_size > 1:
        (run.run_dir / f"param_hash_rank{dist.rank}.txt").write_text(_param_hash(run.model) + "\n")
    D.barrier()
    logger.close()
    summary = {
        "run_dir": str(run.run_dir),
        "steps": state.step,
        "epochs": cfg.train.epochs,
        "train_loss": state.last_loss,
        "best_val_loss": None if math.isinf(state.best_val) else state.best_val,
        "patches_per_s": state.steps_this_call * cfg.train.batch_size / max(elapsed, 1e-9),
        "skipped": state.skipped_total,
        # Patches of the training split the model cannot use (a SAR model: those without S1).
        "left_out": dict(run.train_ds.left_out),
    }
    if dist.is_main:
        from cloudfree.io import atomic_path

        with atomic_path(run.run_dir / SUMMARY) as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _finished(run: _Run, state: _State) -> dict[str, Any]:
    """``--resume`` of a run that has trained all its epochs: nothing to train, and its
    ``summary.json`` is kept as the run wrote it (not rewritten with this call's empty
    figures); it is returned, or rebuilt from the checkpoint if it was lost."""
    path = run.run_dir / SUMMARY
    if run.dist.is_main:
        print(
            f"{run.run_dir} has trained all its {run.cfg.train.epochs} epochs (step "
            f"{state.step}): nothing to do. Raise train.epochs to train further"
        )
    if path.is_file():
        return cast(dict[str, Any], json.loads(path.read_text()))
    return {
        "run_dir": str(run.run_dir),
        "steps": state.step,
        "epochs": run.cfg.train.epochs,
        "train_loss": state.last_loss,
        "best_val_loss": None if math.isinf(state.best_val) else state.best_val,
        "patches_per_s": None,
        "skipped": state.skipped_total,
        "left_out": dict(run.train_ds.left_out),
    }


def _setup(
    cfg: Config, resume: str | Path | None, dist: D.DistInfo, held: contextlib.ExitStack
) -> _Run:
    """Seeds, initial weights, the run folder (locked by rank 0 into ``held``: one process
    group per run), model, loss, optimiser and data."""
    from cloudfree.models import build_model

    world = dist.world_size
    if cfg.train.batch_size % world != 0:
        raise ValueError(
            f"config train.batch_size={cfg.train.batch_size} (the global batch) must be "
            f"divisible by the number of processes ({world}); e.g. "
            f"train.batch_size={max(1, cfg.train.batch_size // world) * world}"
        )
    _seed_everything(cfg.train.seed, cfg.train.deterministic)

    # ---- initial weights (train.init): read and checked before anything is written --------
    init = None
    if cfg.train.init is not None and (resume is None or find_latest(Path(resume)) is None):
        from cloudfree.train.init import read_init

        with torch.device("meta"):
            probe = build_model(cfg.model.name, **cfg.model_kwargs())
        init = read_init(cfg.train.init, probe)

    # ---- run folder -----------------------------------------------------------------------
    run_dir = _make_run_dir(cfg, resume)
    # A folder this call creates is removed again if the set-up below fails (a model name or
    # data that does not work): no run folder holding only config.yaml and run_info.json.
    created = D.broadcast_object(first_missing(run_dir) if D.is_main() else None)
    try:
        if dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            from cloudfree.locks import folder_lock

            held.enter_context(folder_lock(run_dir, "train"))
            if resume is None or not (run_dir / "config.yaml").is_file():
                save_config(cfg, run_dir)
        D.barrier()
        return _build(cfg, dist, run_dir, init)
    except BaseException:
        if created is not None and dist.is_main:
            shutil.rmtree(created, ignore_errors=True)
        raise


def _build(cfg: Config, dist: D.DistInfo, run_dir: Path, init: Any) -> _Run:
    """The model, loss, optimiser and data of :func:`_setup`, once the run folder exists."""
    from cloudfree.losses import build_loss
    from cloudfree.models import build_model

    device, world = dist.device, dist.world_size
    # ---- model, loss, optimiser (same seed on every rank: identical initial weights) -------
    net = build_model(cfg.model.name, **cfg.model_kwargs())
    if init is not None:
        net.load_state_dict(init.state, strict=True)
        if dist.is_main:
            from cloudfree.io import atomic_path

            with atomic_path(run_dir / "init.json") as tmp:
                tmp.write_text(json.dumps(init.record(), indent=2) + "\n", encoding="utf-8")
            print(f"initialised from {cfg.train.init} ({init.path}, sha256 {init.sha256})")
        del init  # the state dict's memory is not held for the whole run
    contract = contract_of(net)
    channels_last = cfg.train.channels_last and device.type == "cuda"
    model = net.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    adversary = None
    if cfg.loss.name == "pix2pix":
        from cloudfree.train.gan import Adversary

        adversary = Adversary(model, cfg, device, world)
        # Validation and best-checkpoint selection use the L1 term of the generator loss (the
        # GAN term is relative to a moving discriminator: no yardstick across epochs).
        loss_fn = build_loss("l1").to(device)
    else:
        loss_kwargs = {"lambda_": cfg.loss.lambda_} if cfg.loss.name == "carl" else {}
        loss_fn = build_loss(cfg.loss.name, **loss_kwargs).to(device)
    # The Gaussian NLL takes the model's variances too (UnCRtainTS, cloudfree.losses.nll).
    variance = bool(getattr(loss_fn, "needs_variance", False))

    # ---- data (rank 0 first: it may index a root or create the mask cache) -----------------
    if not dist.is_main:
        D.barrier()
    train_ds, val_ds = build_datasets(cfg, contract.include_sar, run_dir)
    if dist.is_main:
        D.barrier()
    sampler = ResumableDistributedSampler(
        len(train_ds), num_replicas=world, rank=dist.rank, shuffle=True, seed=cfg.train.seed
    )
    val_loader = None
    if val_ds is not None:
        # Unpadded shards: every validation patch is counted exactly once over the ranks
        # (validate() reduces sums and counts, so uneven shards need no padding).
        val_sampler = ShardSampler(len(val_ds), world, dist.rank)
        val_loader = build_loader(val_ds, val_sampler, 1, cfg.data.num_workers, device)
    return _Run(
        cfg=cfg, dist=dist, run_dir=run_dir, net=net, contract=contract, model=model,
        optimizer=optimizer,
        loss_fn=loss_fn, adversary=adversary, train_ds=train_ds, sampler=sampler,
        val_loader=val_loader, batch_per_rank=cfg.train.batch_size // world,
        bf16=training_bf16(device, cfg.train.precision),
        channels_last=channels_last, variance=variance,
    )  # fmt: skip


def _resume(run: _Run) -> _State:
    """The state of the run folder's latest complete checkpoint, loaded into ``run``'s model,
    optimiser, sampler and discriminator (and this rank's RNGs); a fresh state if the folder
    holds none yet (a run that stopped before its first checkpoint)."""
    state = _State()
    if find_latest(run.run_dir) is None:
        return state
    ckpt = load_checkpoint(
        run.run_dir, run.model, run.optimizer, map_location=run.dist.device, rank=run.dist.rank
    )
    state.step, state.epoch = int(ckpt["step"]), int(ckpt["epoch"])
    if ckpt["sampler_state"]:
        run.sampler.load_state_dict(ckpt["sampler_state"])
    extra = ckpt["extra"]
    state.best_val = float(extra.get("best_val_loss", math.inf))
    state.seen_total, state.skipped_total = int(extra.get("seen", 0)), int(extra.get("skipped", 0))
    state.last_loss = float(extra.get("last_loss", math.nan))
    if run.adversary is not None:
        if ckpt["aux"] is None or "adversary" not in ckpt["aux"]:
            raise TrainingError(
                f"{ckpt['path']} holds no discriminator state: it was not written by a "
                "pix2pix run; resume it with its own config"
            )
        run.adversary.load_state_dict(ckpt["aux"]["adversary"])
    if run.sampler.epoch_done:
        state.epoch += 1
    if run.dist.is_main:
        print(
            f"resumed {run.run_dir} from {ckpt['path'].name}: step {state.step}, epoch {state.epoch}"
        )
    return state


def _train_epoch(run: _Run, state: _State, logger: Any, bar: Any) -> None:
    """The steps of epoch ``state.epoch`` still to do (all of them, or the rest after a resume),
    with the periodic log lines and mid-epoch checkpoints."""
    cfg, sampler, epoch = run.cfg, run.sampler, state.epoch
    # The LR of this epoch: constant in the paper; pix2pix decays it linearly at the end.
    lr = cfg.optim.lr * lr_factor(epoch, cfg.train.epochs, cfg.optim.decay_epochs)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    if run.adversary is not None:
        run.adversary.set_lr(lr)
    sampler.set_epoch(epoch)  # keeps a resumed mid-epoch position
    run.train_ds.set_epoch(epoch)  # new random crops each epoch (spec section 2)
    loader = build_loader(
        run.train_ds, sampler, run.batch_per_rank, cfg.data.num_workers, run.dist.device
    )
    debug_indices: list[int] | None = (
        [] if os.environ.get(DEBUG_INDICES_ENV) and epoch == 0 else None
    )
    start_pos = sampler.position
    for batch in loader:
        n = min(run.batch_per_rank, sampler.num_samples - sampler.position)
        if debug_indices is not None:
            debug_indices.extend(sampler.epoch_indices()[sampler.position : sampler.position + n])
        state.skipped_win += n if batch is None else int(batch["skipped"])
        state.seen_win += n
        loss_value, grad_norm = _train_step(run, state, batch, n)
        if state.step % cfg.train.log_every == 0 or sampler.epoch_done:
            rate = _log_window(run, state, logger, grad_norm)
            bar.set_postfix(loss=f"{loss_value:.4f}", patches_s=f"{rate:.1f}")
        bar.update(1)
        if state.step % cfg.train.checkpoint_every == 0 and not sampler.epoch_done:
            _checkpoint(run, state)
    if debug_indices is not None and start_pos == 0:
        path = run.run_dir / f"indices_rank{run.dist.rank}.json"
        path.write_text(json.dumps(debug_indices))


def _train_step(
    run: _Run, state: _State, batch: dict[str, Any] | None, n: int
) -> tuple[float, torch.Tensor]:
    """One optimiser step on ``batch`` (None: every patch of this rank's batch was unreadable).

    Returns:
        ``(loss, grad_norm)``: the step's loss over the ranks that had data, and the gradient
        norm before clipping.
    """
    cfg, world = run.cfg, run.dist.world_size
    if batch is None and world == 1:
        loss = None  # nothing to learn from, and no other rank to keep in step with
    else:
        loss = _step_loss(run, batch)
        loss.backward()
    # Loss over the ranks that had data; gradients rescaled to their mean (DDP averaged over
    # all ranks, the all-bad ones contributing zeros).
    loss_value, ranks_with_data = _sync_step(run.model, None if batch is None else loss, world)
    grad_norm = clip_gradients(run.model, cfg.optim.grad_clip_norm)  # after backward
    if not math.isfinite(loss_value):
        latest = find_latest(run.run_dir)
        raise TrainingError(
            f"non-finite training loss ({loss_value}) at step {state.step + 1} (epoch "
            f"{state.epoch}); stopped before updating the weights. The last good checkpoint "
            f"is intact: {latest if latest else 'none was written yet'}. Lower optim.lr or "
            f"set optim.grad_clip_norm, then resume with --resume {run.run_dir}"
        )
    # No rank had data: no update at all (as a single process skips it), so Nadam's moments
    # and momentum schedule do not move on zero gradients.
    if ranks_with_data > 0:
        run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.sampler.advance(n)
    state.step += 1
    state.steps_this_call += 1
    state.steps_log += 1
    if ranks_with_data > 0:
        state.last_loss = loss_value
        state.window_losses.append(loss_value)
    return loss_value, grad_norm


def _step_loss(run: _Run, batch: dict[str, Any] | None) -> torch.Tensor:
    """One forward pass and the loss to back-propagate, for a real batch or a dummy one.

    ``batch=None`` (only under DDP): this rank's batch was all unreadable, but it must still
    join the gradient all-reduce, so it runs the same forward on a zero input and returns a
    zero loss (zero gradient; ``_sync_step`` then averages over the ranks that had data).
    """
    inputs, target, mask = _step_inputs(run, batch)
    s2, s1 = inputs.get("s2_cloudy"), inputs.get("s1")
    if s2 is None and batch is not None:  # a temporal model: the least cloudy input date
        s2 = batch["s2_cloudy"].to(run.dist.device, non_blocking=True)
    loss = None
    with bf16_autocast(run.dist.device, run.bf16):
        pred = forward(run.model, inputs, variance=run.variance, contract=run.contract)
        if run.adversary is not None:
            # junyanz's order: update D on this prediction, then G against the updated D
            # (cloudfree.train.gan). pix2pix is a one-date model: s2_cloudy is its input.
            assert s2 is not None
            cond = cast("Pix2PixGenerator", run.net).condition(s2, s1)
            run.adversary.discriminator_step(cond, pred, target, _sync_step)
            real = pred.detach() if target is None else target
            loss = run.adversary.generator_loss(cond, pred, real)
    if target is None:
        return (pred if loss is None else loss).float().sum() * 0.0
    if loss is None:
        # The loss in fp32: means over millions of pixels lose precision in bf16.
        assert s2 is not None
        loss = run.loss_fn(pred.float(), target, s2.float(), mask)
    return loss


def _step_inputs(
    run: _Run, batch: dict[str, Any] | None
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, torch.Tensor | None]:
    """``(inputs, target, mask)`` on the device, ``inputs`` the model's batch keys
    (:func:`~cloudfree.models.contract.model_inputs`); for ``batch=None`` one zero patch of the
    crop size with no target and no mask."""
    device = run.dist.device
    mf = torch.channels_last if run.channels_last else torch.contiguous_format
    if batch is None:
        c, t = run.cfg.data.crop_size, run.cfg.data.input_t
        zeros = torch.zeros(1, NUM_S2_BANDS, c, c)
        dummy = {"s2_cloudy": zeros, "s1": torch.zeros(1, NUM_S1_BANDS, c, c),
                 "s2_inpainted": zeros, "mask": torch.zeros(1, c, c),
                 "s2_series": torch.zeros(1, t, NUM_S2_BANDS, c, c),
                 "s1_series": torch.zeros(1, t, NUM_S1_BANDS, c, c),
                 **{k: torch.zeros(1, t) for k in ("dates", "s2_days", "s1_days")}}  # fmt: skip
        return model_inputs(run.contract, dummy, device, mf), None, None
    target = batch["s2"].to(device, non_blocking=True)
    mask = batch["mask"].to(device, non_blocking=True) if "mask" in batch else None
    return model_inputs(run.contract, batch, device, mf), target, mask


def _fold_counts(run: _Run, state: _State) -> None:
    """Add every rank's window counts to the (all-rank) totals, and reset the windows."""
    # seen_win is the same on every rank (all ranks draw the same count per step), so either
    # every rank joins this all-reduce or none does.
    if state.seen_win == 0:
        return
    counts = torch.tensor(
        [state.seen_win, state.skipped_win], dtype=torch.float64, device=run.dist.device
    )
    if run.dist.world_size > 1:
        torch.distributed.all_reduce(counts, op=torch.distributed.ReduceOp.SUM)
    state.seen_total += round(counts[0].item())
    state.skipped_total += round(counts[1].item())
    state.seen_win, state.skipped_win = 0, 0


def _check_bad_fraction(run: _Run, state: _State) -> None:
    """Stop once too many drawn patches were unreadable. Every rank evaluates the same
    all-reduced counts, so all stop at the same step."""
    seen, skipped, limit = state.seen_total, state.skipped_total, run.cfg.data.max_bad_fraction
    if seen >= min(MIN_SAMPLES_FOR_BAD_CHECK, run.sampler.total_size) and skipped > limit * seen:
        raise TrainingError(
            f"{skipped} of {seen} training patches were unreadable ({skipped / seen:.1%} > "
            f"data.max_bad_fraction={limit}); fix or re-index the data (cloudfree index "
            "--check lists bad files), or raise data.max_bad_fraction"
        )


def _log_window(run: _Run, state: _State, logger: Any, grad_norm: torch.Tensor) -> float:
    """One ``train/*`` log line for the steps since the last one; returns their throughput
    (patches/s, all ranks)."""
    _fold_counts(run, state)
    _check_bad_fraction(run, state)
    now = time.perf_counter()
    rate = state.steps_log * run.cfg.train.batch_size / max(now - state.t_log, 1e-9)
    losses = state.window_losses
    logger.scalars(
        state.step,
        {
            "loss": sum(losses) / len(losses) if losses else state.last_loss,
            "lr": run.optimizer.param_groups[0]["lr"],
            "grad_norm": float(grad_norm.item()),
            "patches_per_s": rate,
            "skipped": float(state.skipped_total),
        },
        prefix="train",
    )
    state.t_log, state.steps_log, state.window_losses = now, 0, []
    return rate


def _checkpoint(run: _Run, state: _State, is_best: bool = False) -> None:
    """Rank 0 writes a checkpoint of ``state`` (every rank's RNG states gathered into it)."""
    # Fold the counts first, so a resume from this checkpoint loses none of them.
    _fold_counts(run, state)
    rngs = D.all_gather_object(capture_rng_state())  # each rank restores its own
    if run.dist.is_main:
        save_checkpoint(
            run.run_dir,
            model=run.model,
            optimizer=run.optimizer,
            step=state.step,
            epoch=state.epoch,
            sampler_state=run.sampler.state_dict(),
            extra={
                "best_val_loss": state.best_val,
                "seen": state.seen_total,
                "skipped": state.skipped_total,
                # The summary's train_loss of a run resumed at its end, or killed after this.
                "last_loss": state.last_loss,
            },
            keep_last=run.cfg.train.keep_last,
            is_best=is_best,
            rng_states=rngs,
            aux=None if run.adversary is None else {"adversary": run.adversary.state_dict()},
        )
    D.barrier()


def _validate(run: _Run, state: _State, logger: Any) -> bool:
    """Validate at the end of an epoch, log it (and rank 0's panels); whether it is the best
    validation loss so far."""
    from cloudfree.train.validate import validate

    cfg = run.cfg
    metrics = validate(
        run.model, run.val_loader, run.loss_fn, run.dist, scaling=cfg.data.scaling,
        precision=cfg.train.precision,
    )  # fmt: skip
    logger.scalars(state.step, metrics, prefix="val")
    is_best = metrics["val_loss"] < state.best_val
    state.best_val = min(state.best_val, metrics["val_loss"])
    if run.dist.is_main:
        _log_panels(run, logger, state.step)
    run.model.train()
    return is_best


@torch.no_grad()
def _log_panels(run: _Run, logger: Any, step: int) -> None:
    """Cloudy | prediction | target RGB panels of the first validation batch (rank 0 only)."""
    from cloudfree.train.panels import rgb_panels

    batch = next((b for b in run.val_loader if b is not None), None)
    if batch is None:
        return
    net, device = run.net, run.dist.device  # no DDP forward: only rank 0 runs this
    net.eval()
    inputs = model_inputs(run.contract, batch, device)
    with bf16_autocast(device, run.bf16):
        pred = forward(net, inputs, contract=run.contract)
    logger.image(step, "val/panels", rgb_panels(batch, pred.float().cpu(), run.cfg.data.scaling))
