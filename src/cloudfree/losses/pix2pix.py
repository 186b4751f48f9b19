"""pix2pix objective and optimisers for the baseline of the DSen2-CR paper (spec section 9).

ASSUMPTION (spec section 9, UNVERIFIED: the paper gives no settings): the standard pix2pix
ones, Isola et al. 2017 eq. 4 as implemented by ``junyanz/pytorch-CycleGAN-and-pix2pix``
(``models/pix2pix_model.py``, ``GANLoss``)::

    L_G = GAN(D(c, G(c)), real) + lambda_l1 * mean|G(c) - T|        lambda_l1 = 100
    L_D = 0.5 * (GAN(D(c, T), real) + GAN(D(c, G(c)).detach, fake))  (halved: slows D)

with GAN = BCE-with-logits (``gan_mode="vanilla"``) or mean squared error against 1/0
(``"lsgan"``). The optimisers (Adam lr 2e-4, betas (0.5, 0.999) for both networks) are the
``pix2pix`` preset's ``optim`` section (``cloudfree.config``), the training step is
``cloudfree.train.gan``. Images are in the DSen2-CR scale (S2 DN / 2000); the L1 term is taken
there, as the DSen2-CR losses are.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from cloudfree.losses.registry import GAN_MODES


def _check_logits(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point() or x.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty floating tensor of discriminator logits "
            f"(B, 1, H', W'), got dtype {x.dtype} and shape {tuple(x.shape)}"
        )


class Pix2PixLoss(nn.Module):
    """Generator and discriminator losses of pix2pix (conditional GAN + L1).

    Args:
        lambda_l1: weight of the L1 term in the generator loss (pix2pix: 100).
        gan_mode: ``"vanilla"`` (BCE with logits, pix2pix's default) or ``"lsgan"`` (MSE).

    Raises:
        ValueError: negative or non-finite ``lambda_l1``, unknown ``gan_mode``.
    """

    def __init__(self, lambda_l1: float = 100.0, gan_mode: str = "vanilla") -> None:
        super().__init__()
        lam = float(lambda_l1)
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"lambda_l1 must be a finite number >= 0, got {lambda_l1!r}")
        if gan_mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode {gan_mode!r}; expected one of {list(GAN_MODES)}")
        self.lambda_l1 = lam
        self.gan_mode = gan_mode

    def gan_loss(self, logits: Tensor, target_is_real: bool) -> Tensor:
        """Mean GAN loss of ``logits`` against an all-1 (real) or all-0 (fake) label map."""
        _check_logits("logits", logits)
        label = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
        if self.gan_mode == "vanilla":
            return F.binary_cross_entropy_with_logits(logits, label)
        return F.mse_loss(logits, label)

    def generator_loss(
        self, d_fake_logits: Tensor, pred: Tensor, target: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Generator objective: fool D, and stay close to the target in L1.

        Args:
            d_fake_logits: (B, 1, H', W') discriminator logits on ``(condition, pred)``, *not*
                detached (the gradient flows back to the generator through D).
            pred: (B, 13, H, W) generated image, DN / 2000 scale.
            target: (B, 13, H, W) cloud-free target, same scale.

        Returns:
            ``(total, parts)``: total = gan + lambda_l1 * l1 (0-dim tensor); parts
            ``{"gan": ..., "l1": ...}`` with the *unweighted* terms, detached for logging.
        """
        if pred.shape != target.shape:
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the "
                "same shape (B, 13, H, W)"
            )
        gan = self.gan_loss(d_fake_logits, True)
        l1 = (pred - target).abs().mean()
        total = gan + self.lambda_l1 * l1
        return total, {"gan": gan.detach(), "l1": l1.detach()}

    def discriminator_loss(self, d_real_logits: Tensor, d_fake_logits: Tensor) -> Tensor:
        """Discriminator objective ``0.5 * (GAN(real, 1) + GAN(fake, 0))``.

        Args:
            d_real_logits: (B, 1, H', W') logits on ``(condition, target)``.
            d_fake_logits: (B, 1, H', W') logits on ``(condition, pred.detach())``.

        Returns:
            0-dim tensor.
        """
        # Halved as in pix2pix, "to slow down the rate at which D learns relative to G".
        return 0.5 * (self.gan_loss(d_real_logits, True) + self.gan_loss(d_fake_logits, False))

    def extra_repr(self) -> str:
        return f"lambda_l1={self.lambda_l1}, gan_mode={self.gan_mode!r}"
