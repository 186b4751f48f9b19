"""A method given the mask of another masker than the patch's own (``evaluate --mask-backend``).

Every batch carries the DSen2-CR mask of its raw cloudy DN (:func:`cloudfree.masks.patch.
batch_mask`): what training, CARL and the paper's evaluation protocol use. Whole-scene commands
mask with the default masker (:mod:`cloudfree.masks.backends`) instead, so the methods that read
a mask (the inpainting baselines, the hybrids) see another mask there. :class:`OtherMask`
gives a method, in evaluation, the mask a whole-scene command would give it (the same masker,
growth included, :func:`cloudfree.masks.scene.mask_array`), computed on each patch's DN,
while the protocol keeps splitting the patch into its cloudy and clear areas with the paper's
mask: methods are compared on the same areas whatever mask they were given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cloudfree.arrays import as_numpy
from cloudfree.bands import get_scaling
from cloudfree.methods.base import Method


class OtherMask(Method):
    """``method`` fed the mask of ``backend`` (grown by ``dilate``) instead of the batch's.

    Args:
        method: the method to run; backend: a ``--mask-backend`` name (``auto`` resolved);
        dilate: growth of the mask (None: the masker's default); level: the patches' product
            level (``"l1c"`` for SEN12MS-CR).

    Every other attribute (``include_sar``, ``scaling``, ``path``...) is the method's.
    """

    def __init__(
        self, method: Method, backend: str, dilate: str | float | None = None, level: str = "l1c"
    ) -> None:
        from cloudfree.masks.backends import resolve_backend

        self.method = method
        self.mask_backend = resolve_backend(backend)
        self.dilate, self.level = dilate, level
        self.name = f"{method.name} ({self.mask_backend} mask)"
        self.include_sar = method.include_sar
        self.scaling = method.scaling
        self.needs_mask = method.needs_mask
        self.predicts_variance = method.predicts_variance

    def __getattr__(self, name: str) -> Any:  # device, path, model... of the method
        if name == "method":  # not set yet (during __init__): no recursion
            raise AttributeError(name)
        return getattr(self.method, name)

    def masks(self, batch: Mapping[str, Any]) -> np.ndarray:
        """The (B, H, W) uint8 masks of :attr:`mask_backend` on the batch's cloudy DN."""
        from cloudfree.masks.scene import mask_array

        scale = get_scaling(self.scaling).s2_scale
        # The DN of the patch back from the network value, rounded (as evaluate's own mask):
        # the file's integers, exactly, for every DN the scaling does not clip.
        dn = np.rint(as_numpy(batch["s2_cloudy"]).astype(np.float64) * scale).astype(np.float32)
        return np.stack(
            [mask_array(x, self.mask_backend, self.level, dilate=self.dilate) for x in dn]
        )

    def _batch(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        return {**batch, "mask": torch.from_numpy(self.masks(batch))}

    def unchanged(self, mask: np.ndarray) -> np.ndarray | None:
        return self.method.unchanged(mask)

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.method.predict(self._batch(batch))

    def predict_variance(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.method.predict_variance(self._batch(batch))
