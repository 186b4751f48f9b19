"""Classical inpainting of the cloud/shadow area: no learning, no SAR.

- ``mask-fill``: OpenCV's fast-marching method (A. Telea, "An image inpainting technique based
  on the fast marching method", J. Graphics Tools 9(1), 2004), one band at a time: each pixel
  is a weighted extrapolation of the known pixels around it, filled from the hole's edge
  inwards. The project's baseline since issue 5. Needs ``opencv-python-headless``.
- ``biharmonic``: scikit-image's biharmonic inpainting (``inpaint_biharmonic``; Damelin & Hoang,
  "On surface completion and image inpainting by biharmonic functions", 2018), the 13 bands
  jointly: the smoothest surface (least squared Laplacian) through the known pixels. Needs
  ``scikit-image``.
- ``push-pull``: a multiscale normalised-convolution fill (the pull-push of Gortler et al.,
  "The Lumigraph", SIGGRAPH 1996): known pixels and their weights are averaged down a 2x
  pyramid to a single value, then each level's masked part is taken from the bilinearly
  upsampled level below, blended by the share of known pixels. It fills large holes with the
  mean of a context that grows with the hole, without the streaks Telea draws from a
  contaminated cloud edge. Torch only.

Measured on the 27 real cloudy/clear SEN12MS-CR pairs of ``../shared/data`` with the DSen2-CR
mask (reflectance MAE over the patch, ``benchmarks/inpaint.py``): push-pull 0.0957,
biharmonic 0.1001, mask-fill 0.1009, the cloudy input 0.1979; on simulated clouds over the real
clear images 0.0459 / 0.0539 / 0.0485 / 0.0755. Push-pull is also the fastest.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import numpy as np

from cloudfree.inpaint.base import Inpainter

#: Neighbourhood radius of Telea's method, pixels (OpenCV's ``inpaintRadius``). 5 px is 50 m:
#: wide enough to average out single noisy pixels at the cloud edge, small enough to stay local.
MASK_FILL_RADIUS: Final[int] = 5


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as e:
        raise ImportError(
            "the 'mask-fill' inpainting needs OpenCV: pip install opencv-python-headless "
            '(or pip install "cloudfree[baselines]")'
        ) from e
    return cv2


class MaskFill(Inpainter):
    """Telea's fast-marching inpainting, band by band, in DN (``mask-fill``).

    Args:
        radius: OpenCV's inpainting radius, pixels (>= 1).
        dilate: see :class:`~cloudfree.inpaint.base.Inpainter`.
    """

    name: ClassVar[str] = "mask-fill"

    def __init__(self, radius: int = MASK_FILL_RADIUS, dilate: int | None = None) -> None:
        super().__init__(dilate)
        if radius < 1:
            raise ValueError(f"radius must be >= 1 pixel, got {radius}")
        self.radius = int(radius)

    def fill(self, x: np.ndarray, mask: np.ndarray, s1: np.ndarray | None) -> np.ndarray:
        """See :meth:`Inpainter.fill`. Telea works in DN: its result depends on the value
        scale, and on values of order 1 (DN / 2000) it is wrong by far more than the signal
        (measured on a linear ramp in [0.3, 0.68]: max error 1.4 at scale 1, 0.028 at >= 1000)."""
        cv2 = _cv2()
        out = x.copy()
        for img, m in zip(out, mask, strict=True):
            m8 = m.astype(np.uint8)
            for band in img:
                band[m] = cv2.inpaint(band, m8, self.radius, cv2.INPAINT_TELEA)[m]
        return out


class Biharmonic(Inpainter):
    """scikit-image's biharmonic inpainting of the 13 bands jointly (``biharmonic``)."""

    name: ClassVar[str] = "biharmonic"

    def fill(self, x: np.ndarray, mask: np.ndarray, s1: np.ndarray | None) -> np.ndarray:
        """See :meth:`Inpainter.fill`. The fill is linear in the values, so DN are fine."""
        try:
            from skimage.restoration import inpaint_biharmonic
        except ImportError as e:
            raise ImportError(
                "the 'biharmonic' inpainting needs scikit-image: pip install scikit-image "
                '(or pip install "cloudfree[baselines]")'
            ) from e
        out = x.copy()
        for img, m in zip(out, mask, strict=True):
            # One sparse biharmonic system per masked region, solved for all bands at once.
            res = inpaint_biharmonic(img.astype(np.float64), m, channel_axis=0)
            img[:, m] = res[:, m]
        return out


def push_pull(x: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Pull-push fill of the unknown pixels of a batch (see the module docstring).

    Args:
        x: (N, C, H, W) float values; unknown pixels may hold anything finite.
        known: (N, H, W) bool; every image needs at least one known pixel.

    Returns:
        (N, C, H, W) float32: ``x`` at known pixels, the fill elsewhere.
    """
    import torch
    import torch.nn.functional as F

    w = torch.from_numpy(known.astype(np.float32))[:, None]
    v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) * w
    levels = []
    # Pull: halve until one pixel remains. ceil_mode keeps odd edges; PyTorch divides an edge
    # window by the pixels inside the image, and the same for v and w, so v / w stays the mean
    # of the known values and w their share.
    while v.shape[-2] > 1 or v.shape[-1] > 1:
        levels.append((v, w))
        v = F.avg_pool2d(v, 2, ceil_mode=True)
        w = F.avg_pool2d(w, 2, ceil_mode=True)
    est = v / w.clamp_min(1e-12)
    # Push: a level's own known mean where it has one, weighted by its known share, the
    # upsampled coarser estimate for the rest (v = w * known mean).
    for v, w in reversed(levels):
        up = F.interpolate(est, size=v.shape[-2:], mode="bilinear", align_corners=False)
        est = v + (1.0 - w) * up
    return est.numpy()


class PushPull(Inpainter):
    """Multiscale normalised-convolution (pull-push) fill of the 13 bands (``push-pull``)."""

    name: ClassVar[str] = "push-pull"

    def fill(self, x: np.ndarray, mask: np.ndarray, s1: np.ndarray | None) -> np.ndarray:
        """See :meth:`Inpainter.fill`."""
        return push_pull(x, ~mask)
