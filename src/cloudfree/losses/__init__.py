"""Training losses, by name: ``build_loss("carl")`` or ``build_loss("l1")`` (spec section 5).

Every reconstruction loss is an ``nn.Module`` with the forward signature ``(pred, target,
cloudy, mask) -> scalar tensor`` on network-scale tensors, so configs can name the loss and the
training loop calls all of them alike. A loss with ``needs_variance = True`` (the Gaussian NLL)
gets the model's means and variances, ``model(..., return_variance=True)``. ``"pix2pix"`` (spec section 9) is the
exception: an adversarial objective with a generator and a discriminator loss, which the loop
drives through :mod:`cloudfree.train.gan`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cloudfree.losses.registry import LOSS_CLASSES, LOSS_NAMES

if TYPE_CHECKING:
    from torch import nn

#: Public classes and where they live; imported (with torch) on first use.
_LAZY: dict[str, str] = {
    "CARLLoss": "cloudfree.losses.carl",
    "TargetL1Loss": "cloudfree.losses.carl",
    "binarize_mask": "cloudfree.losses.carl",
    "GaussianNLLLoss": "cloudfree.losses.nll",
    "L2Loss": "cloudfree.losses.nll",
    "Pix2PixLoss": "cloudfree.losses.pix2pix",
}


def _loss_class(name: str) -> type[nn.Module]:
    module, cls = LOSS_CLASSES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def __getattr__(name: str) -> Any:
    # Lazy: naming a loss (config checks) must not import torch.
    if name == "LOSSES":
        return {n: _loss_class(n) for n in LOSS_NAMES}
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate a loss by name, e.g. ``build_loss("carl", lambda_=1.0)``.

    Args:
        name: a key of ``LOSSES`` (case-insensitive): ``"carl"``, ``"l1"``, ``"l2"``,
            ``"mgnll"`` (UnCRtainTS's Gaussian NLL, :mod:`cloudfree.losses.nll`) or ``"pix2pix"``.
        **kwargs: constructor arguments of that loss.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        TypeError: an argument the loss does not take.
    """
    if name.lower() not in LOSS_CLASSES:
        raise KeyError(f"unknown loss {name!r}; expected one of {sorted(LOSS_NAMES)}")
    return _loss_class(name.lower())(**kwargs)


__all__ = [
    "LOSSES",
    "LOSS_NAMES",
    "CARLLoss",
    "GaussianNLLLoss",
    "L2Loss",
    "Pix2PixLoss",
    "TargetL1Loss",
    "binarize_mask",
    "build_loss",
]
