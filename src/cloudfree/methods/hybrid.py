"""The hybrid chain as one callable: cloud mask -> inpainting -> network (issue 11).

:class:`HybridMethod` is what ``load_method`` returns for hybrid weights
(:mod:`cloudfree.models.hybrid`), so ``cloudfree evaluate --checkpoint`` and ``cloudfree predict
--checkpoint`` with them just work. For a batch it

1. takes ``batch["mask"]``, the DSen2-CR cloud/shadow mask of the raw cloudy DN (spec
   section 3) that every batch carries (:func:`cloudfree.masks.patch.batch_mask`: the scene
   mask in ``predict``, the patch mask in ``evaluate``);
2. takes ``batch["s2_inpainted"]`` when the batch carries it (the cache of packed shards, as
   training reads it), or inpaints the input with the model's own method
   (``model.config.inpaint``, :mod:`cloudfree.inpaint`) exactly as ``cloudfree pack --inpaint``
   did for its training data (DN, the same mask, the method's default settings);
3. runs the network on (inpainted, cloudy, S1, mask).

Training does steps 1-2 once per patch at pack time (:mod:`cloudfree.data.packed.inpaint_cache`) and
step 3 in the training loop; the steps are the same functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cloudfree.masks.patch import batch_mask
from cloudfree.methods.base import check_batch
from cloudfree.methods.baselines import InpaintMethod
from cloudfree.methods.model import ModelMethod


def hybrid_inpainter(model: nn.Module, sd_weights: str | None = None, device: str = "auto") -> Any:
    """The :class:`~cloudfree.inpaint.base.Inpainter` that makes a hybrid model's input.

    Raises:
        ValueError: a hybrid trained on Stable Diffusion inpainting without ``sd_weights``.
    """
    from cloudfree.inpaint.registry import get_inpainter

    method = str(getattr(model, "config").inpaint)  # noqa: B009 (a hybrid model's config)
    if method == "stable-diffusion":
        if sd_weights is None:
            raise ValueError(
                "this hybrid model was trained on Stable Diffusion inpainting and inpaints its "
                "input with it: pass the pipeline's folder (--sd-weights DIR)"
            )
        return get_inpainter(method, weights=sd_weights, device=device)
    return get_inpainter(method)


class HybridMethod(ModelMethod):
    """Hybrid weights as a :class:`~cloudfree.methods.base.Method` (module docstring).

    Args: those of :class:`~cloudfree.methods.model.ModelMethod`, plus ``sd_weights`` (the
    Stable Diffusion pipeline folder, for hybrids trained on its inpainting).
    """

    needs_mask = True

    def __init__(
        self,
        model: nn.Module,
        name: str,
        device: str | torch.device = "auto",
        path: Path | None = None,
        precision: str = "auto",
        sd_weights: str | None = None,
    ) -> None:
        super().__init__(model, name, device, path, precision)
        self.inpaint = InpaintMethod(
            hybrid_inpainter(model, sd_weights, str(self.device)), scaling=self.scaling
        )

    def inputs(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """``batch`` with its mask as uint8 and ``"s2_inpainted"`` added where missing (steps
        1-2). Raises ValueError for a batch without ``"mask"``."""
        check_batch(batch, self.include_sar)
        out = dict(batch)
        out["mask"] = torch.from_numpy(batch_mask(batch))
        if "s2_inpainted" not in out:
            out["s2_inpainted"] = self.inpaint.predict(out)
        return out

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Mask, inpaint and run the network; see :meth:`Method.predict`."""
        return super().predict(self.inputs(batch))
