"""The training loop: one process (CPU or one GPU) or many under ``torchrun``, same code.

Read it top to bottom: set-up (process group, seeds, run folder, data, model, optimiser,
resume), then one loop over epochs and steps, then the summary. Every rank runs every line;
only rank 0 logs and writes checkpoints, and the collectives (``barrier``, the loss all-reduce,
DDP's gradient all-reduce) keep the ranks in step.

Exact resume: everything random is a function of (seed, epoch, sample index) (crops in
``cloudfree.data.sample``, shuffling in the sampler) or is restored from the checkpoint (weights,
Nadam state, sampler position, every rank's RNG states), so a run killed at any moment and
resumed from its last complete checkpoint redoes the lost steps identically: on CPU with
``train.deterministic`` the final weights are bitwise those of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cloudfree.config import Config, save_config
from cloudfree.errors import CloudfreeError
from cloudfree.models.inputs import extra_tensors, reads_sar
from cloudfree.models.runtime import bf16_autocast, training_bf16
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

#: The bad-patch threshold is checked only once this many patches were drawn (or the whole
#: training split, if smaller): one bad patch among the first few is no evidence of a bad set.
MIN_SAMPLES_FOR_BAD_CHECK = 64
#: Environment variable: when set, each rank writes the indices it trained on in its first
#: epoch to ``run_dir/indices_rank{r}.json`` (to test that ranks cover the data disjointly).
DEBUG_INDICES_ENV = "CLOUDFREE_DEBUG_INDICES"


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
    try:
        # Strict fp32 unless train.tf32 (the paper presets: off), for the whole run.
        with tf32_mode(cfg.train.tf32):
            return _train(cfg, resume, dist)
    except torch.cuda.OutOfMemoryError as e:
        raise TrainingError(_oom_message(cfg)) from e
    finally:
        D.cleanup()
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1:]


def _train(cfg: Config, resume: str | Path | None, dist: D.DistInfo) -> dict[str, Any]:  # noqa: C901, PLR0912, PLR0915
    """The body of :func:`train`, on a process that has joined its group (if any)."""
    from tqdm import tqdm

    from cloudfree.losses import build_loss
    from cloudfree.models import build_model
    from cloudfree.train.run_log import RunLogger
    from cloudfree.train.validate import validate

    device, world, rank = dist.device, dist.world_size, dist.rank
    if cfg.train.batch_size % world != 0:
        raise ValueError(
            f"config train.batch_size={cfg.train.batch_size} (the global batch) must be "
            f"divisible by the number of processes ({world}); e.g. "
            f"train.batch_size={max(1, cfg.train.batch_size // world) * world}"
        )
    batch_per_rank = cfg.train.batch_size // world
    _seed_everything(cfg.train.seed, cfg.train.deterministic)
    bf16 = training_bf16(device, cfg.train.precision)

    # ---- initial weights (train.init): read and checked before anything is written --------
    init = None
    if cfg.train.init is not None and (resume is None or find_latest(Path(resume)) is None):
        from cloudfree.train.init import read_init

        with torch.device("meta"):
            probe = build_model(cfg.model.name, **cfg.model.build_kwargs())
        init = read_init(cfg.train.init, probe)

    # ---- run folder -----------------------------------------------------------------------
    run_dir = _make_run_dir(cfg, resume)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume is None or not (run_dir / "config.yaml").is_file():
            save_config(cfg, run_dir)
    D.barrier()

    # ---- model, loss, optimiser (same seed on every rank: identical initial weights) -------
    model = build_model(cfg.model.name, **cfg.model.build_kwargs())
    if init is not None:
        model.load_state_dict(init.state, strict=True)
        if dist.is_main:
            from cloudfree.io import atomic_path

            with atomic_path(run_dir / "init.json") as tmp:
                tmp.write_text(json.dumps(init.record(), indent=2) + "\n", encoding="utf-8")
            print(f"initialised from {cfg.train.init} ({init.path}, sha256 {init.sha256})")
        del init  # the state dict's memory is not held for the whole run
    net = model  # the plain module (before compile / DDP), for its attributes
    include_sar = reads_sar(model)
    channels_last = cfg.train.channels_last and device.type == "cuda"
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
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
    fwd = {"return_variance": True} if getattr(loss_fn, "needs_variance", False) else {}

    # ---- data (rank 0 first: it may index a root or create the mask cache) -----------------
    if not dist.is_main:
        D.barrier()
    train_ds, val_ds = build_datasets(cfg, include_sar, run_dir)
    if dist.is_main:
        D.barrier()
    sampler = ResumableDistributedSampler(
        len(train_ds), num_replicas=world, rank=rank, shuffle=True, seed=cfg.train.seed
    )
    val_loader = None
    if val_ds is not None:
        # Unpadded shards: every validation patch is counted exactly once over the ranks
        # (validate() reduces sums and counts, so uneven shards need no padding).
        val_sampler = ShardSampler(len(val_ds), world, rank)
        val_loader = build_loader(val_ds, val_sampler, 1, cfg.data.num_workers, device)

    # ---- resume ----------------------------------------------------------------------------
    step, epoch, best_val = 0, 0, math.inf
    seen_total, skipped_total = 0, 0  # patches drawn / skipped as bad, over all ranks
    if resume is not None and find_latest(run_dir) is not None:
        state = load_checkpoint(run_dir, model, optimizer, map_location=device, rank=rank)
        step, epoch = int(state["step"]), int(state["epoch"])
        if state["sampler_state"]:
            sampler.load_state_dict(state["sampler_state"])
        extra = state["extra"]
        best_val = float(extra.get("best_val_loss", math.inf))
        seen_total, skipped_total = int(extra.get("seen", 0)), int(extra.get("skipped", 0))
        if adversary is not None:
            if state["aux"] is None or "adversary" not in state["aux"]:
                raise TrainingError(
                    f"{state['path']} holds no discriminator state: it was not written by a "
                    "pix2pix run; resume it with its own config"
                )
            adversary.load_state_dict(state["aux"]["adversary"])
        if sampler.epoch_done:
            epoch += 1
        if dist.is_main:
            print(f"resumed {run_dir} from {state['path'].name}: step {step}, epoch {epoch}")

    if cfg.train.compile:
        model = torch.compile(model)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    steps_per_epoch = math.ceil(sampler.num_samples / batch_per_rank)
    total_steps = steps_per_epoch * cfg.train.epochs
    min_seen = min(MIN_SAMPLES_FOR_BAD_CHECK, sampler.total_size)
    logger = RunLogger(run_dir, enabled=dist.is_main)
    bar = tqdm(total=total_steps, initial=step, disable=not dist.is_main, unit="step")
    debug_indices: list[int] | None = [] if os.environ.get(DEBUG_INDICES_ENV) else None

    seen_win, skipped_win = 0, 0  # this rank's counts since the last fold into the totals

    def fold_counts() -> None:
        """Add every rank's window counts to the (all-rank) totals, and reset the windows."""
        nonlocal seen_total, skipped_total, seen_win, skipped_win
        # seen_win is the same on every rank (all ranks draw the same count per step), so
        # either every rank joins this all-reduce or none does.
        if seen_win == 0:
            return
        counts = torch.tensor([seen_win, skipped_win], dtype=torch.float64, device=device)
        if world > 1:
            torch.distributed.all_reduce(counts, op=torch.distributed.ReduceOp.SUM)
        seen_total += round(counts[0].item())
        skipped_total += round(counts[1].item())
        seen_win, skipped_win = 0, 0

    def checkpoint(is_best: bool = False) -> None:
        # Fold the counts first, so a resume from this checkpoint loses none of them.
        fold_counts()
        rngs = D.all_gather_object(capture_rng_state())  # each rank restores its own
        if dist.is_main:
            save_checkpoint(
                run_dir,
                model=model,
                optimizer=optimizer,
                step=step,
                epoch=epoch,
                sampler_state=sampler.state_dict(),
                extra={"best_val_loss": best_val, "seen": seen_total, "skipped": skipped_total},
                keep_last=cfg.train.keep_last,
                is_best=is_best,
                rng_states=rngs,
                aux=None if adversary is None else {"adversary": adversary.state_dict()},
            )
        D.barrier()

    def check_bad_fraction() -> None:
        # Every rank evaluates the same all-reduced counts, so all stop at the same step.
        if seen_total >= min_seen and skipped_total > cfg.data.max_bad_fraction * seen_total:
            raise TrainingError(
                f"{skipped_total} of {seen_total} training patches were unreadable "
                f"({skipped_total / seen_total:.1%} > data.max_bad_fraction="
                f"{cfg.data.max_bad_fraction}); fix or re-index the data (cloudfree index "
                "--check lists bad files), or raise data.max_bad_fraction"
            )

    # ---- the loop --------------------------------------------------------------------------
    model.train()
    last_loss, window_losses = float("nan"), []
    t_start, steps_this_call = time.perf_counter(), 0
    t_log, steps_log = t_start, 0
    for epoch in range(epoch, cfg.train.epochs):  # noqa: B020 (resume: continue this epoch)
        # The LR of this epoch: constant in the paper; pix2pix decays it linearly at the end.
        lr = cfg.optim.lr * lr_factor(epoch, cfg.train.epochs, cfg.optim.decay_epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if adversary is not None:
            adversary.set_lr(lr)
        sampler.set_epoch(epoch)  # keeps a resumed mid-epoch position
        train_ds.set_epoch(epoch)  # new random crops each epoch (spec section 2)
        loader = build_loader(train_ds, sampler, batch_per_rank, cfg.data.num_workers, device)
        start_pos = sampler.position
        for batch in loader:
            n = min(batch_per_rank, sampler.num_samples - sampler.position)
            if debug_indices is not None and epoch == 0:
                pos = sampler.position
                debug_indices.extend(sampler.epoch_indices()[pos : pos + n])
            skipped_win += n if batch is None else int(batch["skipped"])
            seen_win += n
            if batch is None and world == 1:
                loss = None  # every patch of the batch was bad: nothing to learn from
            else:
                if batch is None:
                    # DDP: this rank must still join the gradient all-reduce; a zero loss
                    # on a dummy input contributes zero gradient.
                    c = cfg.data.crop_size
                    s2 = torch.zeros(1, 13, c, c, device=device)
                    s1 = torch.zeros(1, 2, c, c, device=device) if include_sar else None
                    dummy = {"s2_inpainted": s2, "mask": torch.zeros(1, c, c, device=device)}
                    extras = extra_tensors(net, dummy, device)
                    with bf16_autocast(device, bf16):
                        pred = (
                            model(s2, s1, **extras, **fwd)
                            if include_sar
                            else model(s2, **extras, **fwd)
                        )
                        if adversary is not None:
                            cond = unwrap_model(model).condition(s2, s1)
                            adversary.discriminator_step(cond, pred, None, _sync_step)
                            pred = adversary.generator_loss(cond, pred, pred.detach())
                    loss = pred.float().sum() * 0.0
                else:
                    mf = torch.channels_last if channels_last else torch.contiguous_format
                    s2 = batch["s2_cloudy"].to(device, non_blocking=True, memory_format=mf)
                    target = batch["s2"].to(device, non_blocking=True)
                    mask = batch["mask"].to(device, non_blocking=True) if "mask" in batch else None
                    extras = extra_tensors(net, batch, device)  # the hybrid's inpainted image
                    with bf16_autocast(device, bf16):
                        if include_sar:
                            s1 = batch["s1"].to(device, non_blocking=True, memory_format=mf)
                            pred = model(s2, s1, **extras, **fwd)
                        else:
                            s1 = None
                            pred = model(s2, **extras, **fwd)
                        if adversary is not None:
                            # junyanz's order: update D on this prediction, then G against
                            # the updated D (cloudfree.train.gan).
                            cond = unwrap_model(model).condition(s2, s1)
                            adversary.discriminator_step(cond, pred, target, _sync_step)
                            loss = adversary.generator_loss(cond, pred, target)
                    if adversary is None:
                        # The loss in fp32: means over millions of pixels lose precision in bf16.
                        loss = loss_fn(pred.float(), target, s2.float(), mask)
                loss.backward()
            # Loss over the ranks that had data; gradients rescaled to their mean (DDP
            # averaged over all ranks, the all-bad ones contributing zeros).
            loss_value, ranks_with_data = _sync_step(model, None if batch is None else loss, world)
            grad_norm = clip_gradients(model, cfg.optim.grad_clip_norm)  # after backward
            if not math.isfinite(loss_value):
                latest = find_latest(run_dir)
                raise TrainingError(
                    f"non-finite training loss ({loss_value}) at step {step + 1} (epoch "
                    f"{epoch}); stopped before updating the weights. The last good checkpoint "
                    f"is intact: {latest if latest else 'none was written yet'}. Lower "
                    "optim.lr or set optim.grad_clip_norm, then resume with --resume "
                    f"{run_dir}"
                )
            # No rank had data: no update at all (as a single process skips it), so Nadam's
            # moments and momentum schedule do not move on zero gradients.
            if ranks_with_data > 0:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sampler.advance(n)
            step += 1
            steps_this_call += 1
            steps_log += 1
            if ranks_with_data > 0:
                last_loss = loss_value
                window_losses.append(loss_value)

            if step % cfg.train.log_every == 0 or sampler.epoch_done:
                fold_counts()
                check_bad_fraction()
                now = time.perf_counter()
                rate = steps_log * cfg.train.batch_size / max(now - t_log, 1e-9)
                mean_loss = sum(window_losses) / len(window_losses) if window_losses else last_loss
                logger.scalars(
                    step,
                    {
                        "loss": mean_loss,
                        "lr": optimizer.param_groups[0]["lr"],
                        "grad_norm": float(grad_norm.item()),
                        "patches_per_s": rate,
                        "skipped": float(skipped_total),
                    },
                    prefix="train",
                )
                t_log, steps_log, window_losses = now, 0, []
                bar.set_postfix(loss=f"{loss_value:.4f}", patches_s=f"{rate:.1f}")
            bar.update(1)
            if step % cfg.train.checkpoint_every == 0 and not sampler.epoch_done:
                checkpoint()

        if debug_indices is not None and epoch == 0 and start_pos == 0:
            (run_dir / f"indices_rank{rank}.json").write_text(json.dumps(debug_indices))

        # ---- epoch end: validate, then checkpoint (best by validation loss) ---------------
        is_best = False
        if val_loader is not None:
            metrics = validate(
                model, val_loader, loss_fn, dist, scaling=cfg.data.scaling,
                precision=cfg.train.precision,
            )  # fmt: skip
            logger.scalars(step, metrics, prefix="val")
            is_best = metrics["val_loss"] < best_val
            best_val = min(best_val, metrics["val_loss"])
            if dist.is_main:
                _log_panels(model, val_loader, logger, step, cfg, device, bf16, include_sar)
            model.train()
        checkpoint(is_best=is_best)
    bar.close()

    elapsed = time.perf_counter() - t_start
    if world > 1:
        (run_dir / f"param_hash_rank{rank}.txt").write_text(_param_hash(model) + "\n")
    D.barrier()
    logger.close()
    summary = {
        "run_dir": str(run_dir),
        "steps": step,
        "epochs": cfg.train.epochs,
        "train_loss": last_loss,
        "best_val_loss": None if math.isinf(best_val) else best_val,
        "patches_per_s": steps_this_call * cfg.train.batch_size / max(elapsed, 1e-9),
        "skipped": skipped_total,
    }
    if dist.is_main:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@torch.no_grad()
def _log_panels(
    model: nn.Module,
    loader: Any,
    logger: Any,
    step: int,
    cfg: Config,
    device: torch.device,
    bf16: bool,
    include_sar: bool,
) -> None:
    """Cloudy | prediction | target RGB panels of the first validation batch (rank 0 only)."""
    from cloudfree.train.panels import rgb_panels

    batch = next((b for b in loader if b is not None), None)
    if batch is None:
        return
    net = unwrap_model(model)  # no DDP forward: only rank 0 runs this
    net.eval()
    s2 = batch["s2_cloudy"].to(device)
    extras = extra_tensors(net, batch, device)
    with bf16_autocast(device, bf16):
        pred = net(s2, batch["s1"].to(device), **extras) if include_sar else net(s2, **extras)
    logger.image(step, "val/panels", rgb_panels(batch, pred.float().cpu(), cfg.data.scaling))
