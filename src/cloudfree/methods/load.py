"""Build a method from a name, a weights file, a checkpoint or a run folder (:func:`load_method`).

A baseline of :data:`cloudfree.inpaint.registry.BASELINES` (``"stable-diffusion"`` given its
weights folder), a name of the weights registry (:mod:`cloudfree.weights`), a ``.safetensors``
file, a checkpoint folder or a training run folder (:mod:`cloudfree.runs`). Hybrid weights
(:mod:`cloudfree.models.hybrid`) load as a :class:`~cloudfree.methods.hybrid.HybridMethod`.
"""

from __future__ import annotations

from pathlib import Path

from cloudfree.errors import DataError, UnknownNameError
from cloudfree.inpaint.registry import BASELINES, SD_BASELINE
from cloudfree.methods.base import Method
from cloudfree.methods.model import ModelMethod
from cloudfree.runs import short_name, weights_file

_ACCEPTED = (
    f"one of the baselines {', '.join(repr(b) for b in BASELINES)} ({SD_BASELINE!r} with "
    "--sd-weights DIR); a name of the weights registry ('cloudfree weights list'); a "
    ".safetensors weights file "
    "(cloudfree.models.save_weights, 'cloudfree convert-keras'); a checkpoint folder holding "
    "model.safetensors (e.g. run/checkpoints/best); or a training run folder holding "
    "checkpoints/ (its best/ checkpoint, else its latest)"
)


def load_method(
    spec: str,
    device: str = "auto",
    precision: str = "auto",
    sd_weights: str | None = None,
    backend: str = "auto",
    series: bool = False,
) -> Method:
    """The method named by ``spec``.

    Args:
        spec: a baseline of :data:`BASELINES` (:mod:`cloudfree.methods.baselines`), or
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
        series: the caller runs it on series: the temporal methods by name
            (:data:`~cloudfree.methods.temporal.TEMPORAL_METHODS`) and temporal models are
            accepted besides the one-date ones.

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
    if series:
        from cloudfree.methods.temporal import TEMPORAL_METHODS, TemporalMethod

        if spec in TEMPORAL_METHODS:
            return TemporalMethod(spec)
    if spec in BASELINES or spec == SD_BASELINE:
        from cloudfree.methods.baselines import make_baseline

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
            return _model_method(named, spec, device, precision, sd_weights, backend, series)
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
    return _model_method(weights, name, device, precision, sd_weights, backend, series)


def _model_method(
    weights: Path,
    name: str,
    device: str,
    precision: str,
    sd_weights: str | None,
    backend: str = "auto",
    series: bool = False,
) -> Method:
    from cloudfree.models.contract import contract_of
    from cloudfree.models.weights import load_weights

    model = load_weights(weights)
    if contract_of(model).needs_inpainting:
        from cloudfree.methods.hybrid import HybridMethod

        return HybridMethod(model, name, device, weights, precision, sd_weights=sd_weights)
    return ModelMethod(model, name=name, device=device, path=weights, precision=precision,
                       backend=backend, series=series)  # fmt: skip
