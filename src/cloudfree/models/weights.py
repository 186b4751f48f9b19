"""Model weights as safetensors files that know which model they belong to.

A file written by :func:`save_weights` holds the state dict plus, in the safetensors header
metadata, the registry name (``cloudfree.model``) and constructor arguments
(``cloudfree.config``, JSON) of the model, so :func:`load_weights` rebuilds it without the
caller knowing its size. Loading is all-or-nothing: a missing or unexpected tensor, or a shape
mismatch, raises with the full list (users of the original Keras release got silently
"empty" models: dsen2-cr #22, EMRDM #14).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cloudfree import __version__
from cloudfree.errors import DataError

#: Reserved metadata keys (everything else in the header is the caller's metadata).
MODEL_KEY = "cloudfree.model"
CONFIG_KEY = "cloudfree.config"
VERSION_KEY = "cloudfree.version"
_RESERVED = (MODEL_KEY, CONFIG_KEY, VERSION_KEY, "format")
#: How many names each list in a mismatch message shows before "... and N more".
_SHOW = 12


def _safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError as e:  # pragma: no cover - safetensors is a core dependency
        raise ImportError(
            "reading and writing weights needs safetensors: pip install safetensors"
        ) from e
    return safetensors.torch


def model_spec(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """``(registry name, constructor kwargs)`` of a model, as saved with its weights.

    The model must expose ``registry_name`` (str) and ``config`` (a dataclass or a dict), as
    :class:`~cloudfree.models.dsen2cr.DSen2CR` does.
    """
    name = getattr(model, "registry_name", None)
    config = getattr(model, "config", None)
    if not isinstance(name, str) or config is None:
        raise TypeError(
            f"{type(model).__name__} has no 'registry_name' and 'config'; save_weights needs "
            "them to record how to rebuild the model (or use load_state with your own model)"
        )
    if is_dataclass(config) and not isinstance(config, type):
        config = asdict(config)
    if not isinstance(config, Mapping):
        raise TypeError(f"model config must be a dataclass or a dict, got {type(config)}")
    return name, dict(config)


def save_weights(
    model: nn.Module, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model``'s state dict to a safetensors file, atomically.

    Args:
        model: a registered model (see :func:`model_spec`); its tensors are saved in their
            current dtype, moved to the CPU and made contiguous (channels_last is undone).
        path: output ``.safetensors`` file; replaced only once complete.
        metadata: extra string-keyed entries for the header (e.g. the training run, the
            source checkpoint); non-string values are stored as JSON.

    Returns:
        The path written.
    """
    from cloudfree.io import atomic_path

    name, config = model_spec(model)
    header: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if key in _RESERVED:
            raise ValueError(f"metadata key {key!r} is reserved; reserved keys: {_RESERVED}")
        header[str(key)] = value if isinstance(value, str) else json.dumps(value)
    header.update(
        {
            MODEL_KEY: name,
            CONFIG_KEY: json.dumps(config, sort_keys=True),
            VERSION_KEY: __version__,
            "format": "pt",
        }
    )
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        _safetensors().save_file(tensors, os.fspath(tmp), metadata=header)
    return Path(path)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The header metadata of a safetensors file (model name, config JSON, caller's entries).

    Raises:
        DataError: the file is missing or not a safetensors file.
    """
    _check_file(path)
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own SafetensorError / OSError types
        raise DataError(path, f"not a readable safetensors file: {e}", _EXPECTED) from e


_EXPECTED = "weights written by cloudfree (save_weights or 'cloudfree convert-keras')"


def _check_file(path: str | os.PathLike[str]) -> None:
    if not os.path.isfile(path):
        raise DataError(path, "weights file does not exist", _EXPECTED)


def _read_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    _check_file(path)
    try:
        return _safetensors().load_file(os.fspath(path), device="cpu")
    except Exception as e:
        raise DataError(path, f"not a readable safetensors file: {e}", _EXPECTED) from e


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOW])
    return shown + (f", ... and {len(names) - _SHOW} more" if len(names) > _SHOW else "")


def check_state(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike[str] | None
) -> None:
    """Raise unless ``state`` has exactly the model's tensor names and shapes.

    Raises:
        DataError: naming ``source`` and listing missing keys, unexpected keys and shape
            mismatches (each list abbreviated after a dozen names), or the tensors that hold
            NaN or inf.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or wrong):
        _check_finite(state, source)
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensors: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors: {_listing(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches: {_listing(wrong)}")
    raise DataError(
        source,
        f"weights do not fit {type(model).__name__} ({'; '.join(problems)})",
        "weights saved from a model of the same architecture and size; load_weights(path) "
        "rebuilds the right model from the file's metadata",
    )


def _check_finite(state: Mapping[str, torch.Tensor], source: str | os.PathLike[str] | None) -> None:
    """Raise unless every floating-point tensor of ``state`` is finite: NaN or inf weights
    (a training that diverged, a corrupt conversion) predict NaN everywhere, which a GeoTIFF
    of integers would hold as 0."""
    bad = [
        k
        for k, t in state.items()
        if torch.is_floating_point(t) and not bool(torch.isfinite(t).all())
    ]
    if bad:
        raise DataError(
            source,
            f"{len(bad)} of {len(state)} weight tensors hold NaN or inf ({_listing(bad)}): the "
            "weights of a training that diverged, or a damaged file",
            "finite weights; take an earlier checkpoint of the run (checkpoints/step-*), or "
            "train again with a lower optim.lr",
        )


def load_state(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a safetensors file into an existing model, all or nothing.

    Tensors are copied into the model's parameters (keeping their device and dtype).

    Returns:
        ``model``.

    Raises:
        DataError: unreadable file, or weights that do not fit exactly (see :func:`check_state`);
            the model is left untouched in that case.
    """
    state = _read_tensors(path)
    check_state(model, state, path)
    model.load_state_dict(state, strict=True)
    return model


def load_weights(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> nn.Module:
    """Rebuild the model recorded in a safetensors file and load its weights.

    Args:
        path: a file written by :func:`save_weights` (or ``cloudfree convert-keras``).
        map_location: device to put the model on (``"cpu"``, ``"cuda"``, ...).

    Returns:
        The model, in eval mode, on ``map_location``.

    Raises:
        DataError: the file is missing, unreadable, has no cloudfree metadata, names an
            unknown model, or its tensors do not fit the model it names.
    """
    from cloudfree.models.registry import build_model, list_models

    meta = read_metadata(path)
    name = meta.get(MODEL_KEY)
    if name is None or CONFIG_KEY not in meta:
        raise DataError(
            path,
            "has no cloudfree model metadata, so the model to build is unknown",
            "a file written by save_weights; for other files build the model yourself and "
            "call load_state(model, path)",
        )
    try:
        config = json.loads(meta[CONFIG_KEY])
    except json.JSONDecodeError as e:
        raise DataError(path, f"corrupt model config in metadata: {e}", _EXPECTED) from e
    if name not in list_models():
        raise DataError(path, f"names unknown model {name!r}", f"one of {list_models()}")
    try:
        model = build_model(name, **config)
    except (TypeError, ValueError) as e:
        raise DataError(
            path, f"its config {config} does not fit model {name!r}: {e}", _EXPECTED
        ) from e
    load_state(model, path)
    return model.to(map_location).eval()
