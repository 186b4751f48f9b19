"""Start training from given weights (``cloudfree train --init NAME_OR_FILE``): fine-tuning.

The weights must be of exactly the model the config builds: the same registry name (so the
same input bands: a no-SAR checkpoint cannot start a SAR model) and the same constructor
arguments (blocks, width, ...). Anything else is refused before the run folder is made, with
the overrides that would make the config match; the tensors are then checked all-or-nothing
(:func:`cloudfree.models.weights.check_state`). Adapting the paper's model to a region is then
``cloudfree train --init dsen2cr-sar-carl data.packed=... optim.lr=1e-5 train.epochs=1``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cloudfree.errors import DataError, UnknownNameError

_KERAS = (".hdf5", ".h5")
_ACCEPTED = (
    "a weights name ('cloudfree weights list'), a .safetensors file, a Keras .hdf5 DSen2-CR "
    "checkpoint, a checkpoint folder or a training run folder"
)


@dataclass(frozen=True)
class InitWeights:
    """Weights read and checked for a model, ready to load.

    Attributes:
        spec: what the user gave (``train.init``).
        path: the file read.
        sha256: its SHA-256 (recorded in the run folder's ``init.json``).
        state: the state dict (CPU tensors).
    """

    spec: str
    path: Path
    sha256: str
    state: dict[str, torch.Tensor]

    def record(self) -> dict[str, Any]:
        """What ``init.json`` holds."""
        return {"init": self.spec, "weights": str(self.path.resolve()), "sha256": self.sha256}


def resolve_init(spec: str) -> Path:
    """The weights file named by ``spec`` (see the module docstring for what is accepted).

    Raises:
        DataError: a registry entry that is not downloaded (the message gives the fetch
            command), a folder without checkpoints, a file of another kind.
        UnknownNameError: neither a path nor a name (the message suggests the closest names).
    """
    from cloudfree.inpaint.registry import BASELINES
    from cloudfree.runs import weights_file
    from cloudfree.weights import find_weights, list_weights

    path = Path(spec).expanduser()
    if not path.exists():
        named = find_weights(spec)
        if named is not None:
            return named
        if spec in BASELINES:
            raise UnknownNameError(
                f"train.init={spec!r} is a non-learned baseline: there are no weights to start "
                f"from; expected {_ACCEPTED}"
            )
        import difflib

        close = difflib.get_close_matches(spec, [w.name for w in list_weights()], 3, 0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(
            f"train.init={spec!r}: no such file, folder or weights name{hint} (expected "
            f"{_ACCEPTED})"
        )
    if path.is_dir():
        return weights_file(path)
    if path.suffix == ".safetensors" or path.suffix.lower() in _KERAS:
        return path
    raise DataError(path, "is not a weights file", _ACCEPTED)


def _describe(name: str, config: dict[str, Any]) -> str:
    return f"{name} ({', '.join(f'{k}={v}' for k, v in sorted(config.items()))})"


def read_init(spec: str, model: nn.Module) -> InitWeights:
    """Read the weights ``spec`` for ``model`` and check they fit it exactly.

    Args:
        spec: see :func:`resolve_init`.
        model: the model being trained, or the same built on the meta device (its registry
            name, config and tensor shapes are what is compared).

    Raises:
        DataError: the weights are of another model or size (naming every difference and the
            config overrides that match them), or their tensors do not fit exactly.
    """
    from cloudfree.config import ModelConfig
    from cloudfree.models.weights import (
        CONFIG_KEY,
        MODEL_KEY,
        check_state,
        model_spec,
        read_metadata,
    )
    from cloudfree.weights.fetch import sha256_of

    model_name, config = model_spec(model)
    path = resolve_init(spec)
    if path.suffix.lower() in _KERAS:
        from cloudfree.models.keras_import import keras_state_dict

        layout, state = keras_state_dict(path)
        name, theirs = layout.config.name, asdict(layout.config)
    else:
        import safetensors.torch

        meta = read_metadata(path)
        if MODEL_KEY not in meta or CONFIG_KEY not in meta:
            raise DataError(path, "has no cloudfree model metadata", _ACCEPTED)
        name, theirs = meta[MODEL_KEY], json.loads(meta[CONFIG_KEY])
        state = safetensors.torch.load_file(str(path), device="cpu")
    if name != model_name or theirs != config:
        differ = sorted(k for k in {*theirs, *config} if theirs.get(k) != config.get(k))
        settable = {f.name for f in fields(ModelConfig)}  # include_sar is in model.name
        fix = ([f"model.name={name}"] if name != model_name else []) + [
            f"model.{k}={theirs[k]}" for k in differ if k in theirs and k in settable
        ]
        raise DataError(
            path,
            f"train.init={spec!r} holds {_describe(name, theirs)}, but the config trains "
            f"{_describe(model_name, config)}",
            f"weights of the model being trained; to fine-tune these, train their model: "
            f"{' '.join(fix)}",
        )
    check_state(model, state, path)
    return InitWeights(spec=spec, path=path, sha256=sha256_of(path), state=state)
