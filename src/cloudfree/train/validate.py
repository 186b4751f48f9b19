"""Validation pass: loss and the image-quality metrics of ``cloudfree.metrics``, over all ranks.

Every rank runs its share of the validation set (its unpadded
``cloudfree.train.sampler.ShardSampler`` slice, so every patch is seen once), keeps on
its device the sum of the batch-size-weighted loss, and for each metric the sum and the count
of its defined (non-NaN) per-patch values (a recon metric is undefined on a cloud-free patch,
a reprod metric on a fully clouded one: ``cloudfree.metrics.patch``). One ``all_reduce`` of
these sums and counts at the end gives every rank the same result, the mean over all patches
of the set, as :func:`cloudfree.metrics.aggregate` over the per-patch values of
:func:`cloudfree.metrics.compute` would. Nothing syncs with the host inside the loop.

The sums and counts stay stacked device tensors inside the loop (no host sync, one
``all_reduce``); the division is :class:`cloudfree.metrics.mean.NanMean`'s, the mean that
``evaluate`` takes, fed the reduced totals once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from cloudfree.bands import get_scaling
from cloudfree.metrics.batched import batched_metrics
from cloudfree.metrics.mean import NanMean
from cloudfree.metrics.patch import METRIC_KEYS
from cloudfree.models.contract import contract_of, forward, model_inputs
from cloudfree.models.runtime import bf16_autocast, training_bf16
from cloudfree.train.checkpoint import unwrap_model
from cloudfree.train.distributed import DistInfo

#: Loss signature shared by ``TargetL1Loss`` and ``CARLLoss``: (pred, target, cloudy, mask).
LossFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def _to(x: Tensor, device: torch.device) -> Tensor:
    return x.to(device, non_blocking=True)


def _mask(batch: dict[str, Any], like: Tensor, device: torch.device) -> Tensor:
    """(B, H, W) mask on ``device``; zeros (all clear) when the batch has none."""
    if "mask" in batch and batch["mask"] is not None:
        return _to(batch["mask"], device)
    b, _, h, w = like.shape
    return torch.zeros(b, h, w, dtype=torch.uint8, device=device)


def validate(
    model: nn.Module,
    loader: Iterable[dict[str, Any] | None],
    loss_fn: LossFn,
    dist: DistInfo,
    *,
    scaling: str,
    precision: str,
) -> dict[str, float]:
    """Evaluate ``model`` on ``loader``: mean loss and metrics over every patch of every rank.

    Args:
        model: the network (plain or DDP-wrapped), called as its contract says
            (:func:`cloudfree.models.contract.forward`); put in eval mode for the pass and
            returned to its previous mode afterwards.
        loader: batches from a DataLoader with ``collate_skip_bad``: dicts with ``"s2_cloudy"``
            and ``"s2"`` (B, 13, H, W) in the network scale, optionally ``"s1"`` (B, 2, H, W)
            and ``"mask"`` (B, H, W) uint8 (nonzero = cloud or shadow; zeros if absent).
            None batches (every sample bad) are skipped.
        loss_fn: ``loss_fn(pred, target, cloudy, mask)`` -> mean loss of the batch.
        dist: this process's :class:`DistInfo`; tensors go to ``dist.device``.
        scaling: the scaling protocol's name; network value x its ``reflectance_per_unit`` is the
            reflectance the metrics are computed on.
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"``, run as the training steps (:func:`cloudfree.models.runtime.training_bf16`: bf16 autocast
            for "bf16", and for "auto" on CUDA); the loss and metrics are always fp32.

    Returns:
        ``{"val_loss", "val_<key>" for every key of cloudfree.metrics.METRIC_KEYS,
        "val_patches"}``; the loss is the batch-size-weighted mean, each metric the mean over
        the patches where it is defined (NaN if none); identical on every rank.
    """
    device = dist.device
    bf16 = training_bf16(device, precision)
    to_refl = get_scaling(scaling).reflectance_per_unit
    keys = list(METRIC_KEYS)
    # [loss sum, patches, metric sums (K), metric counts (K)], float64 for exact-ish counts.
    totals = torch.zeros(2 + 2 * len(keys), dtype=torch.float64, device=device)
    was_training = model.training
    # The plain module, not its DDP wrapper: a DDP forward broadcasts buffers (BatchNorm
    # statistics, e.g. pix2pix) from rank 0, a collective that ranks with unequal validation
    # shards would not all join. No gradient is needed here, and the ranks' weights and
    # buffers are already identical.
    net = unwrap_model(model)
    # The Gaussian NLL needs the variances (UnCRtainTS, cloudfree.losses.nll).
    variance = bool(getattr(loss_fn, "needs_variance", False))
    contract = contract_of(net)
    model.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                if batch is None:
                    continue
                inputs = model_inputs(contract, batch, device)
                # a temporal model's batch also holds its least cloudy input date
                cloudy = inputs.get("s2_cloudy")
                if cloudy is None:
                    cloudy = _to(batch["s2_cloudy"], device)
                target = _to(batch["s2"], device)
                mask = _mask(batch, cloudy, device)
                with bf16_autocast(device, bf16):
                    pred = forward(net, inputs, variance=variance, contract=contract)
                pred = pred.float()
                b = pred.shape[0]
                loss = loss_fn(pred, target, cloudy, mask).detach().to(torch.float64)
                pred = pred[:, : target.shape[1]]  # the means (the variances follow them)
                per_patch = batched_metrics(
                    pred * to_refl, target.float() * to_refl, cloudy.float() * to_refl, mask
                )
                vals = torch.stack([per_patch[k].to(torch.float64) for k in keys])  # (K, B)
                ok = ~torch.isnan(vals)
                totals[0] += loss * b
                totals[1] += b
                totals[2 : 2 + len(keys)] += torch.where(ok, vals, 0.0).sum(1)
                totals[2 + len(keys) :] += ok.sum(1)
        if dist.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.all_reduce(totals, op=torch.distributed.ReduceOp.SUM)
    finally:
        model.train(was_training)

    t = totals.cpu().tolist()
    n = int(round(t[1]))
    acc = NanMean(keys)
    acc.add_totals(t[2 : 2 + len(keys)], t[2 + len(keys) :], rows=n)
    out = {"val_loss": t[0] / n if n else math.nan}
    out.update({f"val_{k}": v for k, v in acc.means().items()})
    out["val_patches"] = float(n)
    return out
