"""The method interface: a batch of cloudy samples in, cloud-free predictions out.

``batch`` is a collated batch of :func:`cloudfree.data.sample.make_sample` dicts: ``s2_cloudy``
(B, 13, H, W) float in the network scale of ``method.scaling`` (DN / 2000 for ``"dsen2cr"``),
``s1`` (B, 2, H, W) when ``method.include_sar``, and ``mask`` (B, H, W) uint8, 0 clear /
1 cloud / 2 shadow (:func:`cloudfree.masks.patch.batch_mask`). Predictions come back in the same
scale as ``s2_cloudy``, float32, on the CPU, so callers convert them to reflectance with
``value * scaling.reflectance_per_unit`` exactly as the input.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS


def check_batch(batch: Mapping[str, Any], include_sar: bool) -> torch.Tensor:
    """Validate the input keys of a batch and return its ``s2_cloudy`` tensor.

    Raises:
        ValueError: ``s2_cloudy`` missing or not (B, 13, H, W); ``s1`` missing or not
            (B, 2, H, W) when ``include_sar``; ``mask`` present but not (B, H, W).
    """
    if "s2_cloudy" not in batch:
        raise ValueError(
            f"batch has no 's2_cloudy' (keys: {sorted(batch)}); expected collated samples of "
            "cloudfree.data.sample.make_sample"
        )
    x = torch.as_tensor(batch["s2_cloudy"])
    if x.ndim != 4 or x.shape[1] != NUM_S2_BANDS:
        raise ValueError(
            f"batch['s2_cloudy'] must be (B, {NUM_S2_BANDS}, H, W), got {tuple(x.shape)}"
        )
    b, _, h, w = x.shape
    if include_sar:
        if "s1" not in batch:
            raise ValueError(
                "this method uses SAR but the batch has no 's1'; load the data with S1 "
                "(include_sar=True) or use a method without SAR"
            )
        s1 = batch["s1"]
        if tuple(s1.shape) != (b, NUM_S1_BANDS, h, w):
            raise ValueError(
                f"batch['s1'] must be ({b}, {NUM_S1_BANDS}, {h}, {w}) like s2_cloudy, "
                f"got {tuple(s1.shape)}"
            )
    if "mask" in batch and tuple(batch["mask"].shape) != (b, h, w):
        raise ValueError(
            f"batch['mask'] must be ({b}, {h}, {w}) (0 clear, 1 cloud, 2 shadow), "
            f"got {tuple(batch['mask'].shape)}"
        )
    return x


class Method(abc.ABC):
    """A way of predicting cloud-free Sentinel-2 from a batch (see the module docstring).

    Attributes:
        name: label used in tables and file names (a baseline name or the weights' path).
        include_sar: whether :meth:`predict` reads ``batch["s1"]``.
        scaling: the network scaling protocol of ``s2_cloudy`` and of the prediction
            (``cloudfree.bands.get_scaling``): ``"dsen2cr"``, or a model's own
            (``"reflectance"`` for UnCRtainTS).
    """

    name: str
    include_sar: bool
    scaling: str = "dsen2cr"
    #: whether :meth:`predict` uses ``batch["mask"]`` (computed from the input when absent);
    #: scene prediction computes the scene's mask for such methods.
    needs_mask: bool = False
    #: whether :meth:`predict_variance` gives a per-pixel variance (UnCRtainTS's NLL models).
    predicts_variance: bool = False
    #: whether :meth:`predict` reads a series (``s2_series``, ``masks_series``, ``dates``:
    #: :mod:`cloudfree.methods.temporal`) instead of one ``s2_cloudy``.
    temporal: bool = False

    def unchanged(self, mask: np.ndarray) -> np.ndarray | None:
        """(H, W) bool: the pixels this method returns as the input, for a window's ``mask``
        (0 clear); None if it may change any pixel. Scene prediction copies those pixels from
        the input file, so they stay bit for bit what they were."""
        return None

    @abc.abstractmethod
    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Predict the cloud-free images of a batch.

        Args:
            batch: collated samples (module docstring): ``s2_cloudy`` (B, 13, H, W) in the
                network scale, ``s1`` (B, 2, H, W) if ``include_sar``, optional ``mask`` (B, H, W).

        Returns:
            (B, 13, H, W) float32 CPU tensor in the same scale as ``s2_cloudy`` (not clipped).
        """

    def predict_variance(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The prediction and its per-pixel variance, for a method that
        :attr:`predicts_variance`.

        Returns:
            ``(mean, var)``: two (B, 13, H, W) float32 CPU tensors, the mean as :meth:`predict`
            gives it and the variance in the square of its scale (network value squared).

        Raises:
            ValueError: the method predicts no variance.
        """
        raise ValueError(
            f"{self.name} predicts no variance; uncertainty maps need a model trained with the "
            "Gaussian NLL loss (e.g. UnCRtainTS, loss.name=mgnll; bundled: uncrtaints-demo-sar, "
            "uncrtaints-demo-nosar)"
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, include_sar={self.include_sar}, "
            f"scaling={self.scaling!r})"
        )
