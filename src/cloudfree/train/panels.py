"""True-colour panels of cloudy input, prediction and target, for TensorBoard during training.

Each sample becomes one row ``[cloudy | prediction | target]`` of RGB images (B4, B3, B2), rows
stacked top to bottom; panels and rows are separated by :data:`GAP` white pixels.

The stretch is fixed, not per image: reflectance x :data:`RGB_GAIN` (2.5, so reflectance 0.4
and above is white, the usual display range of Sentinel-2 L1C true colour), clipped to [0, 1],
then ``floor(x * 255 + 0.5)`` (round half up) to uint8. A fixed gain keeps the panels of
different steps comparable: a prediction that gets darker looks darker, and clouds saturate.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cloudfree.bands import get_scaling, s2_index
from cloudfree.render import DEFAULT_GAIN, TRUE_COLOUR

# The bands and fixed gain of every true-colour picture of the project (cloudfree.render).
RGB_BANDS = TRUE_COLOUR
RGB_GAIN = DEFAULT_GAIN
#: White pixels between panels and between rows.
GAP: int = 2


def reflectance_to_rgb8(rgb: Tensor) -> Tensor:
    """Fixed stretch: (..., 3, H, W) reflectance -> uint8 ``floor(clip(r * 2.5, 0, 1) * 255 + 0.5)``.

    NaN becomes 0 (black).
    """
    x = torch.nan_to_num(rgb.to(torch.float64) * RGB_GAIN, nan=0.0).clamp(0.0, 1.0)
    return torch.floor(x * 255.0 + 0.5).to(torch.uint8)


def _check(name: str, x: object, ref: Tensor | None) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 13:
        raise ValueError(f"{name} has shape {tuple(x.shape)}, expected (B, 13, H, W)")
    if ref is not None and x.shape != ref.shape:
        raise ValueError(f"{name} has shape {tuple(x.shape)} but pred has {tuple(ref.shape)}")
    return x


def rgb_panels(batch: dict, pred: Tensor, scaling: str, max_items: int = 4) -> Tensor:
    """One image of ``[cloudy | prediction | target]`` rows for the first samples of a batch.

    Args:
        batch: a training/validation batch with ``"s2_cloudy"`` and ``"s2"`` (B, 13, H, W) in
            the network scale of ``scaling``; any device.
        pred: (B, 13, H, W) prediction in the same scale; any device.
        scaling: the scaling protocol's name (``cloudfree.bands.get_scaling``), which
            converts network values to reflectance: ``value * reflectance_per_unit``.
        max_items: at most this many samples (rows) are drawn.

    Returns:
        (3, n*H + (n-1)*GAP, 3*W + 2*GAP) uint8 on the CPU, n = min(B, max_items); gaps white.

    Raises:
        ValueError: missing keys, wrong shapes, or ``max_items < 1``.
    """
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}")
    for key in ("s2_cloudy", "s2"):
        if key not in batch:
            raise ValueError(f"batch has no {key!r} (keys: {sorted(batch)})")
    pred = _check("pred", pred, None)
    cloudy = _check("batch['s2_cloudy']", batch["s2_cloudy"], pred)
    target = _check("batch['s2']", batch["s2"], pred)
    to_refl = get_scaling(scaling).reflectance_per_unit
    idx = [s2_index(b) for b in RGB_BANDS]
    n = min(pred.shape[0], max_items)
    _, _, h, w = pred.shape

    def rgb(x: Tensor) -> Tensor:  # (n, 3, H, W) uint8 on the CPU
        return reflectance_to_rgb8(x[:n, idx].detach().cpu().to(torch.float64) * to_refl)

    cols = [rgb(cloudy), rgb(pred), rgb(target)]
    out = torch.full((3, n * h + (n - 1) * GAP, 3 * w + 2 * GAP), 255, dtype=torch.uint8)
    for i in range(n):
        y = i * (h + GAP)
        for j, col in enumerate(cols):
            x = j * (w + GAP)
            out[:, y : y + h, x : x + w] = col[i]
    return out
