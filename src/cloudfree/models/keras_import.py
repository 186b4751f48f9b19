"""Import the released Keras DSen2-CR checkpoints (Keras 2.2.4 HDF5) into :class:`DSen2CR`.

The four published models (SAR / no SAR x CARL / L1, ``ameraner/dsen2-cr`` README) are Keras
HDF5 files in one of three layouts, all handled here:

- ``model.save_weights``: root attribute ``layer_names``; each layer is a group with attribute
  ``weight_names`` (``b"conv2d_1/kernel:0"``, ...), the arrays at ``<layer>/<weight name>``;
- ``model.save`` / ``ModelCheckpoint``: the same under the group ``model_weights`` (the
  ``optimizer_weights`` group is ignored);
- a model wrapped by ``multi_gpu_model``: the same, with every weight nested in the one layer
  group of the inner model.

Mapping (spec section 4): the Conv2D layers in saved order are head, two per residual block,
tail (Keras 2.2 saves layers in topological order, and the network is a chain). Kernels are
stored (kh, kw, in, out) and become torch (out, in, kh, kw) by ``transpose(3, 2, 0, 1)``;
biases are copied. Keras and torch both compute a cross-correlation, and the input channel order
is already optical-then-SAR, so nothing else changes. ``include_sar``, ``num_layers`` and
``feature_size`` are read off the shapes (head in-channels 15 or 13, number of convs, width).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS
from cloudfree.errors import DataError
from cloudfree.models.dsen2cr import KERNEL_SIZE, DSen2CR, DSen2CRConfig

_EXPECTED = (
    "a DSen2-CR Keras checkpoint: Conv2D layers with a head kernel (3, 3, 15 or 13, F), "
    "2*B body kernels (3, 3, F, F) and a tail kernel (3, 3, F, 13), each with a bias"
)
_INSTALL = 'reading Keras HDF5 checkpoints needs h5py: pip install "cloudfree[keras]"'


@dataclass(frozen=True)
class KerasConv:
    """One Conv2D layer of a Keras checkpoint.

    Attributes:
        name: Keras layer name (``"conv2d_7"``).
        kernel: HDF5 path of the kernel dataset, shape (kh, kw, in, out).
        bias: HDF5 path of the bias dataset, shape (out,).
        kernel_shape: shape of the kernel as stored.
        bias_shape: shape of the bias as stored.
    """

    name: str
    kernel: str
    bias: str
    kernel_shape: tuple[int, ...]
    bias_shape: tuple[int, ...]


@dataclass(frozen=True)
class KerasLayout:
    """What a Keras checkpoint holds, read from shapes only (no weights loaded).

    Attributes:
        config: the DSen2-CR configuration the shapes imply.
        convs: the Conv2D layers in saved (= forward) order.
        torch_keys: the ``DSen2CR`` parameter prefix of each conv (``"head"``,
            ``"body.0.conv1"``, ..., ``"tail"``), aligned with ``convs``.
        keras_version: the ``keras_version`` attribute of the file, if any.
    """

    config: DSen2CRConfig
    convs: tuple[KerasConv, ...]
    torch_keys: tuple[str, ...]
    keras_version: str | None


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as e:
        raise ImportError(_INSTALL) from e
    return h5py


def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes | np.bytes_) else str(value)


def _attr_list(group: Any, name: str) -> list[str] | None:
    """A list attribute, also when Keras split it into ``name0``, ``name1``... (> 64 kB)."""
    if name in group.attrs:
        return [_text(v) for v in np.atleast_1d(group.attrs[name])]
    values: list[Any] = []
    chunk = 0
    while f"{name}{chunk}" in group.attrs:
        values.extend(np.atleast_1d(group.attrs[f"{name}{chunk}"]))
        chunk += 1
    return [_text(v) for v in values] if chunk else None


def _weights_root(f: Any, path: str | os.PathLike[str]) -> tuple[Any, list[str]]:
    """The group holding ``layer_names`` (the file root, or ``model_weights`` for model.save)."""
    for group in (f, f.get("model_weights")):
        if group is None:
            continue
        names = _attr_list(group, "layer_names")
        if names is not None:
            return group, names
    raise DataError(
        path,
        f"is HDF5 but not a Keras weights file (no 'layer_names' attribute; top-level "
        f"entries: {sorted(f.keys())[:10]})",
        "a Keras 2.2 HDF5 file written by model.save_weights, model.save or ModelCheckpoint",
    )


def _list_weights(root: Any, layer_names: list[str], path: str | os.PathLike[str]) -> list[tuple]:
    """``(layer, weight name, dataset)`` for every saved weight, in saved order."""
    out = []
    for layer in layer_names:
        if layer not in root:
            raise DataError(
                path, f"layer {layer!r} is listed in layer_names but missing", _EXPECTED
            )
        group = root[layer]
        for wname in _attr_list(group, "weight_names") or []:
            if wname not in group:
                raise DataError(
                    path, f"weight {wname!r} of layer {layer!r} is listed but missing", _EXPECTED
                )
            out.append((layer, wname, group[wname]))
    return out


def _pair_convs(weights: list[tuple], path: str | os.PathLike[str]) -> list[KerasConv]:
    """Group the saved weights into (kernel, bias) pairs; anything else is an error."""
    convs: list[KerasConv] = []
    pending: tuple[str, Any] | None = None  # (conv name, kernel dataset) awaiting its bias
    for layer, wname, ds in weights:
        # "conv2d_3/kernel:0" -> conv "conv2d_3"; nested (multi-GPU) names keep the inner name.
        conv_name = wname.rsplit("/", 1)[0] if "/" in wname else layer
        if len(ds.shape) == 4:
            if pending is not None:
                raise DataError(path, f"Conv2D {pending[0]!r} has no bias", _EXPECTED)
            pending = (conv_name, ds)
        elif len(ds.shape) == 1 and pending is not None and pending[0] == conv_name:
            kernel = pending[1]
            convs.append(
                KerasConv(conv_name, kernel.name, ds.name, tuple(kernel.shape), tuple(ds.shape))
            )
            pending = None
        else:
            raise DataError(
                path,
                f"unexpected weight {wname!r} of layer {layer!r} with shape {tuple(ds.shape)} "
                "(DSen2-CR has only Conv2D kernels and biases: no batch norm, no dense layers)",
                _EXPECTED,
            )
    if pending is not None:
        raise DataError(path, f"Conv2D {pending[0]!r} has no bias", _EXPECTED)
    return convs


def _describe(convs: list[KerasConv]) -> str:
    shown = [f"{c.name} {c.kernel_shape}" for c in convs]
    if len(shown) > 6:
        shown = shown[:3] + [f"... {len(shown) - 5} more ..."] + shown[-2:]
    return f"{len(convs)} Conv2D layers: " + ", ".join(shown)


def _infer_config(
    convs: list[KerasConv], path: str | os.PathLike[str], include_sar: bool | None
) -> DSen2CRConfig:
    """Read include_sar / num_layers / feature_size off the shapes and check every conv."""
    found = _describe(convs)
    if len(convs) < 2 or len(convs) % 2:
        raise DataError(
            path,
            f"has {found}",
            f"{_EXPECTED}: an even number >= 2 of Conv2D layers (34 for the paper's B = 16)",
        )
    k = KERNEL_SIZE
    head = convs[0].kernel_shape
    if (
        len(head) != 4
        or head[:2] != (k, k)
        or head[2] not in (NUM_S2_BANDS + NUM_S1_BANDS, NUM_S2_BANDS)
    ):
        raise DataError(path, f"head kernel is {head}; file has {found}", _EXPECTED)
    found_sar = head[2] == NUM_S2_BANDS + NUM_S1_BANDS
    if include_sar is not None and include_sar != found_sar:
        raise DataError(
            path,
            f"head kernel {head} has {head[2]} input channels, i.e. include_sar={found_sar}, "
            f"but include_sar={include_sar} was asked for",
            "the checkpoint of the variant asked for, or include_sar=None to infer it",
        )
    config = DSen2CRConfig(
        include_sar=found_sar, num_layers=(len(convs) - 2) // 2, feature_size=head[3]
    )
    for conv, (cin, cout) in zip(convs, config.conv_shapes(), strict=True):
        if conv.kernel_shape != (k, k, cin, cout) or conv.bias_shape != (cout,):
            raise DataError(
                path,
                f"Conv2D {conv.name!r} has kernel {conv.kernel_shape} and bias {conv.bias_shape} "
                f"where a DSen2-CR with {config} needs {(k, k, cin, cout)} and {(cout,)}; "
                f"file has {found}",
                _EXPECTED,
            )
    return config


def _torch_conv_keys(config: DSen2CRConfig) -> tuple[str, ...]:
    """Parameter prefixes of DSen2CR's convs in forward order (built on the meta device)."""
    with torch.device("meta"):
        model = DSen2CR.from_config(config)
    return tuple(n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d))


def read_keras_layout(
    weights_path: str | os.PathLike[str], include_sar: bool | None = None
) -> KerasLayout:
    """Inspect a Keras DSen2-CR checkpoint: configuration and layer mapping, no weights read.

    Raises:
        DataError: not an HDF5 / Keras file, or not a DSen2-CR checkpoint (the message lists
            the Conv2D layers found and what was expected).
        ImportError: h5py is not installed.
    """
    h5py = _h5py()
    if not os.path.isfile(weights_path):
        raise DataError(weights_path, "file does not exist", "a Keras .hdf5 / .h5 checkpoint")
    try:
        f = h5py.File(weights_path, "r")
    except OSError as e:
        raise DataError(weights_path, f"not a readable HDF5 file: {e}", _EXPECTED) from e
    with f:
        root, layer_names = _weights_root(f, weights_path)
        convs = _pair_convs(_list_weights(root, layer_names, weights_path), weights_path)
        config = _infer_config(convs, weights_path, include_sar)
        version = f.attrs.get("keras_version", root.attrs.get("keras_version"))
    return KerasLayout(
        config=config,
        convs=tuple(convs),
        torch_keys=_torch_conv_keys(config),
        keras_version=None if version is None else _text(version),
    )


def keras_state_dict(
    weights_path: str | os.PathLike[str], include_sar: bool | None = None
) -> tuple[KerasLayout, dict[str, torch.Tensor]]:
    """Read a Keras DSen2-CR checkpoint as ``(layout, DSen2CR state dict)`` (float32, CPU).

    ``layout.config`` is the configuration of the model the state dict fits.
    """
    layout = read_keras_layout(weights_path, include_sar)
    h5py = _h5py()
    state: dict[str, torch.Tensor] = {}
    with h5py.File(weights_path, "r") as f:
        for conv, key in zip(layout.convs, layout.torch_keys, strict=True):
            kernel = np.asarray(f[conv.kernel], dtype=np.float32)
            # Keras (kh, kw, in, out) -> torch (out, in, kh, kw).
            state[f"{key}.weight"] = torch.from_numpy(
                np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
            )
            state[f"{key}.bias"] = torch.from_numpy(np.asarray(f[conv.bias], dtype=np.float32))
    return layout, state


def convert_keras(
    weights_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    include_sar: bool | None = None,
) -> dict[str, Any]:
    """Convert a released Keras DSen2-CR checkpoint to a cloudfree safetensors file.

    Args:
        weights_path: Keras 2.2 HDF5 file (``save_weights``, ``model.save`` / ModelCheckpoint,
            or a ``multi_gpu_model`` wrapper).
        out_path: ``.safetensors`` file to write (atomically); ``load_weights(out_path)``
            rebuilds the model.
        include_sar: check that the file is the SAR (True) or no-SAR (False) variant; None
            infers it from the head kernel.

    Returns:
        Summary: ``model`` (registry name), ``num_layers``, ``feature_size``, ``include_sar``,
        ``tensors`` (number converted), ``source``, ``out``, ``keras_version``.

    Raises:
        DataError: not a DSen2-CR checkpoint (says what was found and what was expected).
        ImportError: h5py is missing (``pip install "cloudfree[keras]"``).
    """
    from cloudfree.models.weights import check_state, save_weights

    layout, state = keras_state_dict(weights_path, include_sar)
    config = layout.config
    # Built on the meta device and given the converted tensors: no wasted initialisation.
    with torch.device("meta"):
        model = DSen2CR.from_config(config)
    check_state(model, state, weights_path)
    model.load_state_dict(state, strict=True, assign=True)
    save_weights(
        model,
        out_path,
        metadata={
            "source": Path(weights_path).name,
            "converted_from": "keras",
            "keras_version": layout.keras_version or "unknown",
        },
    )
    return {
        "model": config.name,
        "num_layers": config.num_layers,
        "feature_size": config.feature_size,
        "include_sar": config.include_sar,
        "tensors": len(state),
        "source": str(weights_path),
        "out": str(out_path),
        "keras_version": layout.keras_version,
    }
