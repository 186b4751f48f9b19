"""The non-learned baselines: ``identity`` and the inpainting methods.

- ``identity``: the cloudy input is the prediction. Its reprod error is 0 by construction and
  its recon error measures how much the clouds change the image: the floor any method must beat.
- ``mask-fill``, ``biharmonic``, ``push-pull``, ``sar-match`` (and ``stable-diffusion`` given its
  weights): inpainting of the cloud/shadow area from the clear pixels
  (:mod:`cloudfree.inpaint`): what a cloud mask plus a fill achieves, with no learning.
  ``mask-fill`` is OpenCV's Telea method (issue 5's baseline; extra ``[baselines]``).

Each runs on the network-scale batch of :mod:`cloudfree.methods`: values are turned
back into DN (``value * s2_scale``), inpainted, and scaled back; pixels the method does not
fill are returned exactly as the input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cloudfree.bands import get_scaling
from cloudfree.data.preprocess import denormalize_s1
from cloudfree.inpaint.base import Inpainter
from cloudfree.inpaint.classical import MASK_FILL_RADIUS
from cloudfree.inpaint.registry import BASELINES
from cloudfree.masks.patch import batch_mask
from cloudfree.methods.base import Method, check_batch


class IdentityMethod(Method):
    """The cloudy input as the prediction (no SAR)."""

    def __init__(self, scaling: str = "dsen2cr") -> None:
        self.name = "identity"
        self.include_sar = False
        self.scaling = scaling

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """A float32 CPU copy of ``batch["s2_cloudy"]``; see :meth:`Method.predict`."""
        return check_batch(batch, False).detach().to("cpu", torch.float32).clone()


class InpaintMethod(Method):
    """An inpainting method (:mod:`cloudfree.inpaint`) as a :class:`Method`.

    The mask is ``batch["mask"]`` (nonzero = cloud or shadow), the mask of the raw cloudy DN
    every batch carries (:func:`cloudfree.masks.patch.batch_mask`). ``sar-match`` reads ``batch["s1"]`` (network scale,
    turned back into dB).

    Args:
        inpainter: the configured method.
        scaling: the network scaling of ``s2_cloudy`` (``"dsen2cr"``: DN / 2000).
    """

    needs_mask = True

    def __init__(self, inpainter: Inpainter, scaling: str = "dsen2cr") -> None:
        self.inpainter = inpainter
        self.name = inpainter.name
        self.include_sar = inpainter.needs_sar
        self.scaling = scaling

    def masks(self, batch: Mapping[str, Any]) -> np.ndarray:
        """The (B, H, W) bool cloud/shadow mask used for ``batch`` (True = cloud or shadow);
        what is filled is its :meth:`~cloudfree.inpaint.base.Inpainter.fill_region`."""
        check_batch(batch, False)
        return batch_mask(batch) != 0

    def unchanged(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) bool: the pixels this method returns as the input for a window's ``mask``."""
        return ~self.inpainter.fill_region(mask)

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Inpaint the masked pixels; see :meth:`Method.predict`."""
        x = check_batch(batch, self.include_sar).detach().to("cpu", torch.float32).numpy()
        scaling = get_scaling(self.scaling)
        scale = np.float32(scaling.s2_scale)
        s1 = None
        if self.include_sar:
            s1n = torch.as_tensor(batch["s1"]).detach().to("cpu", torch.float32).numpy()
            s1 = np.stack([denormalize_s1(s, scaling) for s in s1n])
        dn = x * scale
        filled = self.inpainter(dn, batch_mask(batch), s1)
        out = x.copy()
        changed = filled != dn
        # Only filled pixels are rescaled: the others stay the input's exact values.
        out[changed] = filled[changed] / scale
        return torch.from_numpy(out)


class MaskFillMethod(InpaintMethod):
    """OpenCV's Telea inpainting of the cloud/shadow area, band by band (``mask-fill``).

    Args:
        radius: OpenCV's inpainting radius, pixels (>= 1).
        scaling: the network scaling of ``s2_cloudy``.
    """

    def __init__(self, radius: int = MASK_FILL_RADIUS, scaling: str = "dsen2cr") -> None:
        from cloudfree.inpaint.classical import MaskFill

        super().__init__(MaskFill(radius=radius), scaling=scaling)


def make_baseline(name: str, scaling: str = "dsen2cr", **options: Any) -> Method:
    """The baseline called ``name`` (one of :data:`~cloudfree.inpaint.registry.BASELINES`, or
    ``"stable-diffusion"`` with ``weights=DIR``).

    Args:
        name: the baseline.
        scaling: the network scaling of the batches it will see.
        **options: options of an inpainting method (:func:`cloudfree.inpaint.get_inpainter`).

    Raises:
        ValueError: unknown name.
    """
    if name == "identity":
        return IdentityMethod(scaling=scaling)
    if name == "mask-fill" and not options:
        return MaskFillMethod(scaling=scaling)
    from cloudfree.inpaint.registry import INPAINT_METHODS, get_inpainter

    if name in INPAINT_METHODS:
        return InpaintMethod(get_inpainter(name, **options), scaling=scaling)
    raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")
