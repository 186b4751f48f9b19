"""Training losses, by name: ``build_loss("carl")`` or ``build_loss("l1")`` (spec section 5).

Every reconstruction loss is an ``nn.Module`` with the forward signature ``(pred, target,
cloudy, mask) -> scalar tensor`` on network-scale tensors, so configs can name the loss and the
training loop calls all of them alike. A loss with ``needs_variance = True`` (the Gaussian NLL)
gets the model's means and variances, ``model(..., return_variance=True)``. ``"pix2pix"`` (spec section 9) is the
exception: an adversarial objective with a generator and a discriminator loss, which the loop
drives through :mod:`cloudfree.train.gan`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from cloudfree.losses.carl import CARLLoss, TargetL1Loss, binarize_mask
from cloudfree.losses.nll import GaussianNLLLoss, L2Loss
from cloudfree.losses.pix2pix import Pix2PixLoss

#: Loss classes by the name a training config uses.
LOSSES: dict[str, type[nn.Module]] = {
    "carl": CARLLoss,
    "l1": TargetL1Loss,
    "l2": L2Loss,
    "mgnll": GaussianNLLLoss,
    "pix2pix": Pix2PixLoss,
}


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
    try:
        cls = LOSSES[name.lower()]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}") from None
    return cls(**kwargs)


__all__ = [
    "LOSSES",
    "CARLLoss",
    "GaussianNLLLoss",
    "L2Loss",
    "Pix2PixLoss",
    "TargetL1Loss",
    "binarize_mask",
    "build_loss",
]
