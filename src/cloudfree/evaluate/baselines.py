"""The non-learned baselines of issue 5: ``identity`` and ``mask-fill``.

- ``identity``: the cloudy input is the prediction. Its reprod error is 0 by construction and
  its recon error measures how much the clouds change the image: the floor any method must beat.
- ``mask-fill``: classical inpainting of the cloud/shadow area from the clear surroundings, one
  band at a time, with OpenCV's fast-marching method (``cv2.inpaint``, ``INPAINT_TELEA``; A.
  Telea, "An image inpainting technique based on the fast marching method", J. Graphics Tools
  2004). No SAR, no learning: what a cloud mask plus interpolation alone achieves.

OpenCV (``opencv-python-headless``) is an optional dependency, imported only when ``mask-fill``
predicts; ``s2cloudless`` (the ``masks`` extra) already pulls it in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import torch

from cloudfree.data.bands import get_scaling
from cloudfree.evaluate.methods import BASELINES, Method, check_batch

#: Neighbourhood radius of the inpainting, pixels (OpenCV's ``inpaintRadius``). 5 px is 50 m:
#: wide enough to average out single noisy pixels at the cloud edge, small enough to stay local.
MASK_FILL_RADIUS: Final[int] = 5


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as e:
        raise ImportError(
            "the 'mask-fill' baseline needs OpenCV: pip install opencv-python-headless"
        ) from e
    return cv2


class IdentityMethod(Method):
    """The cloudy input as the prediction (no SAR)."""

    def __init__(self, scaling: str = "dsen2cr") -> None:
        self.name = "identity"
        self.include_sar = False
        self.scaling = scaling

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """A float32 CPU copy of ``batch["s2_cloudy"]``; see :meth:`Method.predict`."""
        return check_batch(batch, False).detach().to("cpu", torch.float32).clone()


class MaskFillMethod(Method):
    """Per-band inpainting of the cloud/shadow area from the clear pixels (no SAR).

    The mask is ``batch["mask"]`` when given (nonzero = cloud or shadow), else the DSen2-CR
    cloud/shadow mask (:func:`cloudfree.masks.csm.cloud_shadow_mask`, spec section 3) of the
    input's DN, ``round(value * s2_scale)`` as uint16. Clear pixels are returned exactly as the
    input. A patch with no masked pixel, or with no clear pixel (nothing to fill from), is
    returned unchanged.

    Args:
        radius: OpenCV's inpainting radius, pixels (>= 1).
        scaling: the network scaling of ``s2_cloudy`` (``"dsen2cr"``: DN / 2000).
    """

    def __init__(self, radius: int = MASK_FILL_RADIUS, scaling: str = "dsen2cr") -> None:
        if radius < 1:
            raise ValueError(f"radius must be >= 1 pixel, got {radius}")
        self.name = "mask-fill"
        self.include_sar = False
        self.scaling = scaling
        self.radius = int(radius)

    def masks(self, batch: Mapping[str, Any]) -> np.ndarray:
        """The (B, H, W) bool cloud/shadow mask used for ``batch`` (True = fill)."""
        x = check_batch(batch, False)
        if "mask" in batch:
            return np.asarray(torch.as_tensor(batch["mask"]).cpu()) != 0
        from cloudfree.masks.csm import cloud_shadow_mask

        scale = get_scaling(self.scaling).s2_scale
        dn = np.rint(x.detach().to("cpu", torch.float64).numpy() * scale)
        return cloud_shadow_mask(np.clip(dn, 0, 65535).astype(np.uint16)) != 0

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Inpaint the masked pixels of each band; see :meth:`Method.predict`."""
        cv2 = _cv2()
        x = check_batch(batch, False).detach().to("cpu", torch.float32)
        masks = self.masks(batch)
        out = x.numpy().copy()
        scale = np.float32(get_scaling(self.scaling).s2_scale)
        for i, m in enumerate(masks):
            if not m.any() or m.all():  # nothing to fill, or nothing to fill from
                continue
            m8 = m.astype(np.uint8)
            for band in out[i]:
                # Inpainted in DN: Telea's result depends on the value scale, and on values of
                # order 1 (DN / 2000) it is wrong by far more than the signal (measured on a
                # linear ramp in [0.3, 0.68]: max error 1.4 at scale 1, 0.028 at >= 1000).
                filled = cv2.inpaint(band * scale, m8, self.radius, cv2.INPAINT_TELEA)
                band[m] = filled[m] / scale
        return torch.from_numpy(out)


def make_baseline(name: str, scaling: str = "dsen2cr") -> Method:
    """The baseline called ``name`` (one of :data:`~cloudfree.evaluate.methods.BASELINES`).

    Raises:
        ValueError: unknown name.
    """
    if name == "identity":
        return IdentityMethod(scaling=scaling)
    if name == "mask-fill":
        return MaskFillMethod(scaling=scaling)
    raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")
