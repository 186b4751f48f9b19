"""A trained network as a method, and one patch through any method in file units."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cloudfree.bands import NUM_S2_BANDS
from cloudfree.methods.base import Method, check_batch
from cloudfree.models.contract import contract_of, forward, model_inputs
from cloudfree.models.runtime import resolve_device


class ModelMethod(Method):
    """A trained network (DSen2-CR or any registered model) as a :class:`Method`.

    The model is put in its inference form with
    :func:`cloudfree.models.runtime.prepare_for_inference` and run inside
    :func:`~cloudfree.models.runtime.inference_context` (no autograd), fp32; or compiled by
    OpenVINO (:mod:`cloudfree.models.openvino`) where ``backend`` resolves to it.

    Args:
        model: a network; its :class:`~cloudfree.models.contract.ModelContract` (what it
            reads, its scaling, its variance, its extra inputs, a time axis) decides the call
            (:func:`cloudfree.models.contract.forward`).
        name: label of the method.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        path: the weights file it was loaded from, if any (kept for reports).
        precision: ``"auto"`` (fp32), ``"fp32"`` or ``"bf16"`` (autocast,
            :func:`cloudfree.models.runtime.inference_context`).
        backend: ``"auto"``, ``"torch"`` or ``"openvino"``
            (:func:`cloudfree.models.runtime.resolve_backend`); the one used is ``backend``.
        series: the caller feeds series (evaluation on SEN12MS-CR-TS, composites): a temporal
            model is accepted (:attr:`Method.temporal`; it reads ``s2_series``, ...). Without
            it a temporal model is refused, since the caller has one image.
    """

    def __init__(
        self,
        model: nn.Module,
        name: str,
        device: str | torch.device = "auto",
        path: Path | None = None,
        precision: str = "auto",
        backend: str = "auto",
        series: bool = False,
    ) -> None:
        from cloudfree.models.runtime import prepare_for_inference, resolve_backend

        self.device = resolve_device(device)
        self.precision = precision
        self.name = name
        self.path = path
        self.contract = contract_of(model)
        self.temporal = self.contract.temporal
        if self.temporal and not series:
            raise ValueError(
                f"{name} is a temporal model (it reads a series of dates): run it on a series "
                "(cloudfree composite), not on one image"
            )
        self.include_sar = self.contract.include_sar
        self.scaling = self.contract.scaling
        self.predicts_variance = self.contract.predicts_variance
        #: batch keys the model takes besides s2_cloudy and s1 (the hybrid's inpainted image)
        self.extra_inputs = self.contract.extra_inputs
        self.backend = resolve_backend(backend, model, self.device, precision)
        if self.backend == "openvino":
            from cloudfree.models.openvino import compile_openvino

            self.model: nn.Module = compile_openvino(model, self.include_sar)
        else:
            self.model = prepare_for_inference(model, self.device, precision)

    def _run(self, batch: Mapping[str, Any], variance: bool = False) -> torch.Tensor:
        from cloudfree.models.runtime import inference_context

        if not self.temporal:  # a series is checked by the model itself
            check_batch(batch, self.include_sar)
        inputs = model_inputs(self.contract, batch, self.device)
        with inference_context(self.device, self.precision):
            out = forward(self.model, inputs, variance=variance, contract=self.contract)
        # Copied outside inference mode: a plain tensor that callers may modify in place
        # (inference tensors refuse in-place updates outside inference mode).
        return out.to("cpu", torch.float32).clone()

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Run the model on a batch; see :meth:`Method.predict`."""
        return self._run(batch)

    def predict_variance(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance from one forward pass; see :meth:`Method.predict_variance`."""
        if not self.predicts_variance:
            return super().predict_variance(batch)
        out = self._run(batch, variance=True)
        return out[:, :NUM_S2_BANDS], out[:, NUM_S2_BANDS:]


def predict_dn(
    method: Method,
    cloudy: np.ndarray,
    s1: np.ndarray | None,
    mask: np.ndarray,
    variance: bool = False,
) -> Any:
    """One patch through ``method`` as ``evaluate`` feeds it, in file units.

    Args:
        method: any method of :func:`load_method`.
        cloudy: (13, H, W) cloudy S2, DN; s1: (2, H, W) S1 in dB, or None (used only if the
            method takes S1); mask: (H, W) cloud/shadow mask, nonzero = masked.

        variance: also return the predicted variance (a method that
            :attr:`~Method.predicts_variance`).

    Returns:
        (13, H, W) float32 prediction, DN (the network value times the protocol's scale);
        with ``variance``, ``(prediction, variance in DN squared)``.
    """
    from cloudfree.bands import get_scaling
    from cloudfree.data.preprocess import normalize_s1, normalize_s2

    scaling = get_scaling(method.scaling)
    batch = {"s2_cloudy": torch.from_numpy(normalize_s2(cloudy, scaling))[None],
             "mask": torch.from_numpy(np.ascontiguousarray(mask))[None]}  # fmt: skip
    if method.include_sar and s1 is not None:
        batch["s1"] = torch.from_numpy(normalize_s1(s1, scaling))[None]
    scale = np.float32(scaling.s2_scale)
    if not variance:
        return method.predict(batch)[0].numpy() * scale
    mean, var = method.predict_variance(batch)
    return mean[0].numpy() * scale, var[0].numpy() * scale**2
