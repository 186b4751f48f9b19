"""Names of the training losses and GAN objectives, without importing torch.

The configuration checks a loss name when a config is read (``cloudfree.config``), before
anything needs torch; :func:`cloudfree.losses.build_loss` imports the class a name points to.
"""

from __future__ import annotations

from typing import Final

#: Loss classes by the name a training config uses, as ``"module:class"`` so that naming or
#: checking a loss imports no torch (:data:`cloudfree.losses.LOSSES` holds the classes).
LOSS_CLASSES: Final[dict[str, str]] = {
    "carl": "cloudfree.losses.carl:CARLLoss",  # L_CARL (spec section 5)
    "l1": "cloudfree.losses.carl:TargetL1Loss",  # L_T
    "l2": "cloudfree.losses.nll:L2Loss",  # UnCRtainTS's L2
    "mgnll": "cloudfree.losses.nll:GaussianNLLLoss",  # UnCRtainTS's diagonal Gaussian NLL
    "pix2pix": "cloudfree.losses.pix2pix:Pix2PixLoss",  # cGAN + L1 (spec section 9)
}
#: Loss names a config may use.
LOSS_NAMES: Final[tuple[str, ...]] = tuple(LOSS_CLASSES)
#: GAN objectives of the pix2pix loss, as in junyanz ``GANLoss`` (``wgangp`` needs a gradient
#: penalty: not here).
GAN_MODES: Final[tuple[str, ...]] = ("vanilla", "lsgan")
