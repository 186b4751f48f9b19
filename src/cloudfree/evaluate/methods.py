"""What ``evaluate`` runs: a *method* maps a batch of cloudy samples to cloud-free predictions.

A method is either a named, non-learned baseline (:data:`BASELINES`, built in
:mod:`cloudfree.evaluate.baselines`), or a trained network loaded from its weights: a name of
the weights registry (:mod:`cloudfree.weights`), a file, a checkpoint or a run folder::

    method = load_method("mask-fill")                    # a baseline
    method = load_method("hybrid-nosar")                 # bundled weights, by name
    method = load_method("runs/paper-sar")               # a run folder: best/ or latest checkpoint
    method = load_method("dsen2cr_sar.safetensors")      # a weights file
    pred = method.predict(batch)                         # (B, 13, H, W), network scale, CPU

Hybrid weights (:mod:`cloudfree.models.hybrid`) load as a
:class:`~cloudfree.evaluate.hybrid.HybridMethod`: the chain mask -> inpainting -> network.

``batch`` is a collated batch of :func:`cloudfree.data.sample.make_sample` dicts: ``s2_cloudy``
(B, 13, H, W) float in the network scale of ``method.scaling`` (DN / 2000 for ``"dsen2cr"``),
``s1`` (B, 2, H, W) when ``method.include_sar``, and optionally ``mask`` (B, H, W) uint8, 0 clear /
1 cloud / 2 shadow. Predictions come back in the same scale as ``s2_cloudy``, float32, on the CPU,
so callers convert them to reflectance with ``value * scaling.reflectance_per_unit`` exactly as the input.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import nn

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS
from cloudfree.errors import DataError, UnknownNameError
from cloudfree.models.inputs import reads_sar

#: Names of the non-learned baselines :func:`load_method` accepts: the cloudy input and the
#: inpainting methods of :mod:`cloudfree.inpaint` that need no weights (issues 5 and 11).
BASELINES: Final[tuple[str, ...]] = (
    "identity",
    "mask-fill",
    "biharmonic",
    "push-pull",
    "sar-match",
)
#: The Stable Diffusion inpainting, a baseline once its weights folder is given (``sd_weights``).
SD_BASELINE: Final[str] = "stable-diffusion"

_ACCEPTED = (
    f"one of the baselines {', '.join(repr(b) for b in BASELINES)} ({SD_BASELINE!r} with "
    "--sd-weights DIR); a name of the weights registry ('cloudfree weights list'); a "
    ".safetensors weights file "
    "(cloudfree.models.save_weights, 'cloudfree convert-keras'); a checkpoint folder holding "
    "model.safetensors (e.g. run/checkpoints/best); or a training run folder holding "
    "checkpoints/ (its best/ checkpoint, else its latest)"
)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` if available, else ``cpu``; anything else as ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


class ModelMethod(Method):
    """A trained network (DSen2-CR or any registered model) as a :class:`Method`.

    The model is put in its inference form with
    :func:`cloudfree.models.runtime.prepare_for_inference` and run inside
    :func:`~cloudfree.models.runtime.inference_context` (no autograd), fp32; or compiled by
    OpenVINO (:mod:`cloudfree.models.openvino`) where ``backend`` resolves to it.

    Args:
        model: a model taking ``(s2_cloudy, s1)`` or ``(s2_cloudy,)`` and returning
            (B, 13, H, W) in the scale of ``s2_cloudy``; its ``config.include_sar`` (dataclass
            attribute or dict key; default False) says whether it reads S1.
        name: label of the method.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        path: the weights file it was loaded from, if any (kept for reports).
        precision: ``"auto"`` (fp32), ``"fp32"`` or ``"bf16"`` (autocast,
            :func:`cloudfree.models.runtime.inference_context`).
        backend: ``"auto"``, ``"torch"`` or ``"openvino"``
            (:func:`cloudfree.models.runtime.resolve_backend`); the one used is ``backend``.
    """

    def __init__(
        self,
        model: nn.Module,
        name: str,
        device: str | torch.device = "auto",
        path: Path | None = None,
        precision: str = "auto",
        backend: str = "auto",
    ) -> None:
        from cloudfree.models.runtime import prepare_for_inference, resolve_backend

        self.device = resolve_device(device)
        self.precision = precision
        self.name = name
        self.path = path
        self.include_sar = reads_sar(model)
        self.backend = resolve_backend(backend, model, self.device, precision)
        if self.backend == "openvino":
            from cloudfree.models.openvino import compile_openvino

            self.model: nn.Module = compile_openvino(model, self.include_sar)
        else:
            self.model = prepare_for_inference(model, self.device, precision)
        # The model's own input scaling (UnCRtainTS: "reflectance"), DSen2-CR's otherwise.
        self.scaling = str(getattr(model, "scaling", "dsen2cr"))
        self.predicts_variance = bool(getattr(model, "predicts_variance", False))
        #: batch keys the model takes besides s2_cloudy and s1 (the hybrid's inpainted image)
        self.extra_inputs: tuple[str, ...] = tuple(getattr(model, "extra_inputs", ()))

    def _run(self, batch: Mapping[str, Any], **kwargs: Any) -> torch.Tensor:
        from cloudfree.models.runtime import inference_context

        x = check_batch(batch, self.include_sar)
        s2 = x.to(self.device, torch.float32)
        extras = {k: torch.as_tensor(batch[k]).to(self.device) for k in self.extra_inputs}
        with inference_context(self.device, self.precision):
            if self.include_sar:
                s1 = batch["s1"].to(self.device, torch.float32)
                out = self.model(s2, s1, **extras, **kwargs)
            else:
                out = self.model(s2, **extras, **kwargs)
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
        out = self._run(batch, return_variance=True)
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


def weights_file(path: Path) -> Path:
    """The ``model.safetensors`` of a checkpoint folder or of a run's best / latest checkpoint.

    A run folder's ``checkpoints/best`` is preferred (the checkpoint selected on validation,
    the one to report); without it, its latest complete checkpoint
    (:func:`cloudfree.train.checkpoint.find_latest`).
    """
    from cloudfree.train.checkpoint import BEST, CHECKPOINTS, MODEL_FILE, find_latest

    if (path / MODEL_FILE).is_file():
        return path / MODEL_FILE
    best = path / CHECKPOINTS / BEST / MODEL_FILE
    if best.is_file():
        return best
    latest = find_latest(path)
    if latest is None:
        raise DataError(
            path,
            f"is a folder but holds neither {MODEL_FILE} nor a complete checkpoint under "
            f"{CHECKPOINTS}/",
            _ACCEPTED,
        )
    return latest / MODEL_FILE


def short_name(weights: str | os.PathLike[str]) -> str:
    """The name tables and reports show for a weights file (its full path stays ``method.path``).

    ``<run>/checkpoints/<ck>/model.safetensors`` is ``"<run> (<ck>)"``, another
    ``<folder>/model.safetensors`` is ``"<folder>"``, any other file its stem: ``compare`` and
    ``view`` list methods side by side, and absolute paths made those tables unreadable.
    """
    from cloudfree.train.checkpoint import CHECKPOINTS, MODEL_FILE

    path = Path(weights).resolve()
    if path.name != MODEL_FILE:
        return path.stem
    folder = path.parent
    if folder.parent.name == CHECKPOINTS:
        return f"{folder.parent.parent.name} ({folder.name})"
    return folder.name


def load_method(
    spec: str,
    device: str = "auto",
    precision: str = "auto",
    sd_weights: str | None = None,
    backend: str = "auto",
) -> Method:
    """The method named by ``spec``.

    Args:
        spec: a baseline of :data:`BASELINES` (:mod:`cloudfree.evaluate.baselines`), or
            ``"stable-diffusion"`` with ``sd_weights``; a name of the weights registry
            (:mod:`cloudfree.weights`, e.g. ``"hybrid-nosar"``); a ``.safetensors`` file written
            by :func:`cloudfree.models.save_weights`; a checkpoint folder holding
            ``model.safetensors``; or a training run folder (its ``checkpoints/best``, else its
            latest checkpoint).
        device: where a model runs (``"auto"``: CUDA if available, else CPU); baselines run on
            the CPU (Stable Diffusion on ``device``).
        precision: a model's inference precision (``"auto"`` = fp32, ``"bf16"``).
        sd_weights: folder of a Stable Diffusion inpainting pipeline, for the
            ``"stable-diffusion"`` baseline and hybrids trained on its inpainting.
        backend: a model's inference backend (``"auto"``, ``"torch"``, ``"openvino"``:
            :func:`cloudfree.models.runtime.resolve_backend`).

    Returns:
        The method; a model's ``name`` is short (:func:`short_name`: the registry name, the
        run and checkpoint, or the file's stem), its ``path`` the weights file used.

    Raises:
        UnknownNameError: (a ValueError) ``spec`` is none of the above (the message suggests
            the closest names and lists what is accepted).
        DataError: (a ValueError) a folder without checkpoints, or unreadable weights.
    """
    from cloudfree.models.runtime import BACKENDS

    if backend not in BACKENDS:  # checked for every spec: a hybrid or baseline ignores it
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if spec in BASELINES or spec == SD_BASELINE:
        from cloudfree.evaluate.baselines import make_baseline

        if spec != SD_BASELINE:
            return make_baseline(spec)
        if sd_weights is None:
            raise DataError(
                None,
                f"the {SD_BASELINE!r} baseline needs the folder of a Stable Diffusion inpainting "
                "pipeline: --sd-weights DIR",
            )
        return make_baseline(spec, weights=sd_weights, device=device)
    path = Path(spec)
    if not path.exists():
        from cloudfree.weights import find_weights

        # A registry name (a path that exists is taken as the path).
        named = find_weights(spec)
        if named is not None:
            return _model_method(named, spec, device, precision, sd_weights, backend)
    if path.is_dir():
        weights = weights_file(path)
        name = short_name(weights)
    elif path.is_file() and path.suffix == ".safetensors":
        weights, name = path, short_name(path)
    elif path.exists():
        raise DataError(path, "is not a .safetensors weights file", _ACCEPTED)
    else:
        import difflib

        from cloudfree.weights import list_weights

        known = [*BASELINES, SD_BASELINE, *(w.name for w in list_weights())]
        close = difflib.get_close_matches(spec, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(
            f"unknown method {spec!r} (no such baseline, weights name, file or folder){hint}. "
            f"Expected {_ACCEPTED}"
        )
    return _model_method(weights, name, device, precision, sd_weights, backend)


def _model_method(
    weights: Path,
    name: str,
    device: str,
    precision: str,
    sd_weights: str | None,
    backend: str = "auto",
) -> Method:
    from cloudfree.models.weights import load_weights

    model = load_weights(weights)
    if getattr(model, "extra_inputs", ()):
        from cloudfree.evaluate.hybrid import HybridMethod

        return HybridMethod(model, name, device, weights, precision, sd_weights=sd_weights)
    return ModelMethod(
        model, name=name, device=device, path=weights, precision=precision, backend=backend
    )
