"""Optimiser and gradient clipping of the DSen2-CR recipe (spec section 7).

The paper trains with Keras 2.2.4 ``Nadam(lr=7e-5, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
schedule_decay=0.004)`` and no LR schedule. ``torch.optim.NAdam`` with ``momentum_decay =
schedule_decay`` performs the same update (momentum cache mu_t = beta1 (1 - 0.5 * 0.96^(t psi)),
the product of the mu's as the first-moment bias correction, eps added to sqrt(v_hat));
``tests/train/test_optim.py`` checks this against Keras's formulas step by step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from cloudfree.config import OPTIMIZER_NAMES, OptimConfig

Params = Iterable[Tensor] | Iterable[dict]


def build_optimizer(params: Params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser ``cfg`` names, over ``params`` (tensors or param-group dicts).

    Args:
        params: what ``torch.optim`` accepts, e.g. ``model.parameters()``.
        cfg: ``OptimConfig``; its defaults are the paper's Nadam.

    Returns:
        ``"nadam"``: ``torch.optim.NAdam(lr, betas, eps, momentum_decay)`` with no weight decay,
        as in the paper; ``"adam"``: ``torch.optim.Adam(lr, betas, eps)`` (pix2pix).

    Raises:
        ValueError: an optimiser name not in ``cloudfree.config.OPTIMIZER_NAMES``.
    """
    if cfg.name == "adam":
        # pix2pix (spec section 9, assumed): plain Adam, no weight decay, as junyanz's.
        return torch.optim.Adam(
            params, lr=cfg.lr, betas=(float(cfg.betas[0]), float(cfg.betas[1])), eps=cfg.eps
        )
    if cfg.name != "nadam":
        raise ValueError(f"unknown optimiser {cfg.name!r}; expected one of {list(OPTIMIZER_NAMES)}")
    return torch.optim.NAdam(
        params,
        lr=cfg.lr,
        betas=(float(cfg.betas[0]), float(cfg.betas[1])),
        eps=cfg.eps,
        momentum_decay=cfg.momentum_decay,
        # Keras 2.2.4 Nadam has no weight decay: the L2-coupled torch option stays at 0.
        weight_decay=0.0,
    )


def lr_factor(epoch: int, epochs: int, decay_epochs: int) -> float:
    """Multiplier of the base LR in ``epoch`` (0-based): constant, then a linear decay.

    junyanz's ``"linear"`` policy (``networks.get_scheduler``) with ``n_epochs = epochs -
    decay_epochs`` and ``n_epochs_decay = decay_epochs``, ``epoch_count = 1``::

        1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1)

    so the last epoch still trains at ``1 / (decay_epochs + 1)`` of the base rate. A pure
    function of the epoch: a resumed run sets the same LR without scheduler state.
    ``decay_epochs = 0`` is the paper's constant LR (factor 1).
    """
    if decay_epochs <= 0:
        return 1.0
    n_epochs = epochs - decay_epochs
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(decay_epochs + 1)


def clip_gradients(
    model_or_params: nn.Module | Iterable[Tensor] | Tensor, max_norm: float | None
) -> Tensor:
    """Clip the global L2 norm of the gradients to ``max_norm``; return the norm BEFORE clipping.

    Call it AFTER ``loss.backward()`` (and after gradient all-reduce under DDP, which ``backward``
    already did) and before ``optimizer.step()``. The upstream torch port called
    ``clip_grad_norm_`` before ``backward()``, where it clipped nothing (spec section 4).

    Args:
        model_or_params: a module, an iterable of parameters, or one tensor. Parameters without
            a gradient are ignored.
        max_norm: clip threshold (> 0), or ``None`` to leave the gradients untouched and only
            measure their norm (for logging). The paper does not clip.

    Returns:
        0-dim float32 tensor on the gradients' device: the total L2 norm over all gradients
        before clipping (0 when no parameter has a gradient). It is not ``.item()``-ed, so
        calling this costs no host-device sync; it may be inf or NaN if a gradient is.

    Raises:
        ValueError: ``max_norm`` is not ``None`` and not a finite number > 0.
    """
    if max_norm is not None and not (math.isfinite(max_norm) and max_norm > 0):
        raise ValueError(
            f"max_norm must be None (no clipping) or a finite number > 0, got {max_norm}"
        )
    params: list[Tensor]
    if isinstance(model_or_params, nn.Module):
        params = list(model_or_params.parameters())
    elif isinstance(model_or_params, Tensor):
        params = [model_or_params]
    else:
        params = list(model_or_params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        device = params[0].device if params else torch.device("cpu")
        return torch.zeros((), dtype=torch.float32, device=device)
    if max_norm is not None:
        # Returns the total norm of the gradients as they were before scaling.
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    else:
        norms = torch.stack([torch.linalg.vector_norm(g.detach(), 2.0).float() for g in grads])
        norm = torch.linalg.vector_norm(norms, 2.0)
    return norm.to(torch.float32)
