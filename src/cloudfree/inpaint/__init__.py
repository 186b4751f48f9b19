"""Inpainting of the cloud/shadow area of Sentinel-2 images (issue 11).

Fill the masked pixels of 13-band L1C images from what is clear: classical fills
(``mask-fill``: OpenCV's Telea; ``biharmonic``: scikit-image; ``push-pull``: multiscale
normalised convolution), ``sar-match`` (the spectra of clear pixels that look alike in
Sentinel-1) and ``stable-diffusion`` (diffusers' inpainting pipeline from local weights, extra
``[inpaint]``). The first stage of the hybrid model (:mod:`cloudfree.models.hybrid`), and a
command of its own (``cloudfree inpaint``, :mod:`cloudfree.predict.inpaint`)::

    from cloudfree.inpaint import inpaint
    filled = inpaint(s2_dn, mask, method="mask-fill")        # (13, H, W) or (B, 13, H, W)

Importing this package imports numpy only; OpenCV, scikit-image, torch and diffusers are
imported by the methods that use them, when they run.
"""

from cloudfree.inpaint.base import Inpainter, dilate_mask
from cloudfree.inpaint.registry import DEFAULT_METHOD, INPAINT_METHODS, get_inpainter, inpaint

__all__ = [
    "DEFAULT_METHOD",
    "INPAINT_METHODS",
    "Inpainter",
    "dilate_mask",
    "get_inpainter",
    "inpaint",
]
