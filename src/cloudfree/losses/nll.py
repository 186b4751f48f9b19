"""UnCRtainTS's losses (Ebel et al. 2023): L2, and the diagonal Gaussian negative log-likelihood.

Both take the shared forward signature ``(pred, target, cloudy, mask)`` of
:mod:`cloudfree.losses` (``cloudy`` and ``mask`` unused: UnCRtainTS weights every pixel alike).

The NLL of a pixel with per-band means ``mu``, variances ``var`` (a diagonal covariance) and
target ``y`` over the ``k = 13`` bands is (upstream ``losses.multi_diag_gaussian_nll``, mode
"diag", ``full=True``)::

    k/2 log(2 pi) + 1/2 sum_b log var_b + 1/2 sum_b (mu_b - y_b)^2 / var_b

averaged over the pixels of the batch (a sum over the bands, a mean over pixels). ``pred`` is
(B, 26, H, W): the 13 means then the 13 variances (``UnCRtainTS(..., return_variance=True)``).

Units: upstream computes the losses on values scaled by ``scale_by`` (10): there the NLL is
this one plus ``k log(scale_by)`` (29.93 nats for 10; the gradients are the same) and the L2
``scale_by**2`` times this one (Adam's steps do not change with the loss scale). Here both are
computed in reflectance, the scale of the model's outputs and of the other losses' metrics.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cloudfree.bands import NUM_S2_BANDS
from cloudfree.losses.carl import _check_image

#: Floor of the variances in the loss, reflectance squared (upstream clamps at 1e-8 in its
#: scaled units; the model's own floor, 1e-3 / scale_by**2, is higher).
VAR_EPS: float = 1e-10


class L2Loss(nn.Module):
    """Mean squared error over every pixel and band (UnCRtainTS's "l2", ``nn.MSELoss``)."""

    needs_variance = False

    def __init__(self, num_bands: int = NUM_S2_BANDS) -> None:
        super().__init__()
        self.num_bands = num_bands

    def forward(
        self, pred: Tensor, target: Tensor, cloudy: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """``mean((pred - target)^2)``; pred, target (B, 13, H, W)."""
        _check_image("target", target, None, self.num_bands)
        _check_image("pred", pred, target, self.num_bands)
        return torch.mean(torch.square(pred - target))


class GaussianNLLLoss(nn.Module):
    """The diagonal multivariate Gaussian NLL of UnCRtainTS ("MGNLL", covmode "diag").

    ``pred`` is (B, 2 * 13, H, W): means, then variances (> 0), reflectance units.
    """

    needs_variance = True

    def __init__(self, num_bands: int = NUM_S2_BANDS) -> None:
        super().__init__()
        self.num_bands = num_bands

    def forward(
        self, pred: Tensor, target: Tensor, cloudy: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """Mean over pixels of the per-pixel NLL (module docstring); a 0-dim tensor."""
        k = self.num_bands
        _check_image("target", target, None, k)
        if pred.ndim != 4 or pred.shape[1] != 2 * k or pred.shape[2:] != target.shape[2:]:
            raise ValueError(
                f"pred must be (B, {2 * k}, H, W): {k} means then {k} variances (a model called "
                f"with return_variance=True), got {tuple(pred.shape)}"
            )
        mean, var = pred[:, :k], pred[:, k:]
        # The clamp is outside autograd, as upstream's (gradients flow as if unclamped).
        var = var + (var.detach().clamp(min=VAR_EPS) - var.detach())
        per_pixel = 0.5 * (torch.log(var) + torch.square(mean - target) / var).sum(dim=1)
        return per_pixel.mean() + 0.5 * k * math.log(2 * math.pi)
