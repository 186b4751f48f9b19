"""The two training losses of DSen2-CR: L_T (plain L1) and L_CARL (cloud-adaptive L1).

Spec section 5 (``[A] Code/tools/image_metrics.py``, Meraner et al. 2020 section 3.3). With P the
prediction, I the cloudy S2 input, T the cloud-free target and m the binary cloud/shadow mask
broadcast over the bands, N = B * C * H * W::

    L_T    = (1/N) sum |P - T|
    L_CARL = (1/N) sum [(1 - m) |P - I| + m |P - T|] + lambda * (1/N) sum |P - T|,  lambda = 1

All tensors are in the network scale of the paper (S2 DN / 2000, so [0, 5] for data), not in
reflectance. Both losses share one forward signature, ``forward(pred, target, cloudy, mask)``,
so the training loop can treat them alike; ``TargetL1Loss`` ignores ``cloudy`` and ``mask``.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from cloudfree.bands import NUM_S2_BANDS


def _shape(x: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in x.shape) + ")"


def _check_image(name: str, x: Tensor, ref: Tensor | None, num_bands: int) -> None:
    """Raise ValueError unless ``x`` is a floating (B, num_bands, H, W) tensor shaped like ``ref``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != num_bands:
        hint = ""
        if x.ndim == 4 and x.shape[1] == num_bands + 2:
            # The [PS] torch port passed the 15-channel network input (S2 + S1) here (spec 12).
            hint = "; pass only the optical bands of the cloudy input, not the S2+S1 stack"
        raise ValueError(
            f"{name} has shape {_shape(x)}, expected (B, {num_bands}, H, W) in the network "
            f"scale (DN / 2000){hint}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} has dtype {x.dtype}, expected a floating-point tensor")
    if ref is not None and x.shape != ref.shape:
        raise ValueError(
            f"{name} has shape {_shape(x)} but pred has shape {_shape(ref)}; they must match"
        )


def binarize_mask(mask: Tensor, pred: Tensor) -> Tensor:
    """The cloud/shadow mask as a (B, 1, H, W) tensor of 0/1 in ``pred``'s dtype.

    Any nonzero value counts as masked: cloud 1 and shadow 2 of cloudfree's uint8 masks, and
    the +1/-1 float convention of the upstream code alike (spec section 3, "For the loss and
    metrics, any nonzero value becomes 1"; the [PS] port kept -1, which is a bug).

    Args:
        mask: (B, H, W) or (B, 1, H, W), any dtype (bool, integer or float).
        pred: the (B, C, H, W) prediction whose batch size, size, dtype and device are used.

    Raises:
        ValueError: the mask does not have the shape of ``pred`` without its band axis.
    """
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    b, _, h, w = pred.shape
    if mask.ndim == 3 and mask.shape == (b, h, w):
        mask = mask.unsqueeze(1)
    elif not (mask.ndim == 4 and mask.shape == (b, 1, h, w)):
        raise ValueError(
            f"mask has shape {_shape(mask)}, expected ({b}, {h}, {w}) or ({b}, 1, {h}, {w}) "
            f"to match pred {_shape(pred)} (nonzero = cloud or shadow)"
        )
    return (mask != 0).to(dtype=pred.dtype, device=pred.device)


class TargetL1Loss(nn.Module):
    """L_T = mean |P - T| over batch, bands and pixels (spec section 5).

    Args:
        num_bands: number of bands C the tensors must have (13 for Sentinel-2 L1C).
    """

    def __init__(self, num_bands: int = NUM_S2_BANDS) -> None:
        super().__init__()
        self.num_bands = num_bands

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        cloudy: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Scalar loss.

        Args:
            pred: (B, C, H, W) float prediction, network scale (DN / 2000).
            target: (B, C, H, W) cloud-free target, same scale.
            cloudy: ignored (checked for shape when given, to catch wiring mistakes).
            mask: ignored (checked for shape when given).

        Returns:
            0-dim tensor, differentiable with respect to ``pred``.
        """
        _check_image("pred", pred, None, self.num_bands)
        _check_image("target", target, pred, self.num_bands)
        if cloudy is not None:
            _check_image("cloudy", cloudy, pred, self.num_bands)
        if mask is not None:
            binarize_mask(mask, pred)
        return (pred - target).abs().mean()


class CARLLoss(nn.Module):
    """Cloud-adaptive regularised loss L_CARL of DSen2-CR (spec section 5).

    ``mean[(1 - m)|P - I| + m|P - T|] + lambda_ * mean|P - T|``: outside clouds and shadows the
    prediction is pulled towards the cloudy input (which is correct there), inside them towards
    the target, and the last term regularises towards the target everywhere.

    Args:
        lambda_: weight of the global target term; the paper uses 1.0.
        num_bands: number of bands C the tensors must have (13 for Sentinel-2 L1C).

    Raises:
        ValueError: ``lambda_`` is negative or not finite.
    """

    def __init__(self, lambda_: float = 1.0, num_bands: int = NUM_S2_BANDS) -> None:
        super().__init__()
        lam = float(lambda_)
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"lambda_ must be a finite number >= 0, got {lambda_!r}")
        self.lambda_ = lam
        self.num_bands = num_bands

    def forward(self, pred: Tensor, target: Tensor, cloudy: Tensor, mask: Tensor) -> Tensor:
        """Scalar loss.

        Args:
            pred: (B, C, H, W) float prediction, network scale (DN / 2000).
            target: (B, C, H, W) cloud-free target, same scale.
            cloudy: (B, C, H, W) cloudy optical input I, same scale (the S2 bands only).
            mask: (B, H, W) or (B, 1, H, W) cloud/shadow mask; nonzero = cloud or shadow.

        Returns:
            0-dim tensor, differentiable with respect to ``pred``.
        """
        _check_image("pred", pred, None, self.num_bands)
        _check_image("target", target, pred, self.num_bands)
        _check_image("cloudy", cloudy, pred, self.num_bands)
        m = binarize_mask(mask, pred)  # (B, 1, H, W), broadcast over the bands
        err_target = (pred - target).abs()
        adaptive = (1.0 - m) * (pred - cloudy).abs() + m * err_target
        return adaptive.mean() + self.lambda_ * err_target.mean()

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_}, num_bands={self.num_bands}"
