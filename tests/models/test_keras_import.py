"""Keras 2.2 HDF5 -> DSen2CR: files written here with h5py in the layouts Keras 2.2.4 writes.

The converted model is checked against a forward pass computed independently in numpy from the
Keras-layout arrays (kh, kw, in, out), with Keras' channels_first DSen2-CR graph.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch
from numpy.lib.stride_tricks import sliding_window_view

from cloudfree.errors import DataError
from cloudfree.models import DSen2CR, load_weights
from cloudfree.models.keras_import import convert_keras, keras_state_dict, read_keras_layout

h5py = pytest.importorskip("h5py")

STYLES = ("save_weights", "model_save", "multi_gpu")


def _keras_weights(include_sar: bool, num_layers: int, width: int, seed: int = 0) -> list:
    """Random [(kernel (3, 3, in, out), bias (out,))] in Keras order: head, blocks, tail."""
    rng = np.random.default_rng(seed)
    shapes = [(15 if include_sar else 13, width)]
    shapes += [(width, width)] * (2 * num_layers) + [(width, 13)]
    return [
        (
            (rng.uniform(-1, 1, (3, 3, cin, cout)) * np.sqrt(3 / (9 * cin))).astype(np.float32),
            rng.uniform(-0.1, 0.1, cout).astype(np.float32),
        )
        for cin, cout in shapes
    ]


def _layer_names(n_convs: int, first: int) -> tuple[list[str], list[str | None]]:
    """Layer names of the DSen2-CR Keras graph, and the conv name (or None) of each."""
    names: list[str] = ["input_1", "input_2", "concatenate_1"]
    convs: list[str | None] = [None, None, None]
    lam = add = act = 1
    for i in range(n_convs):
        names.append(f"conv2d_{first + i}")
        convs.append(names[-1])
        if i == 0 or (i % 2 == 1 and i < n_convs - 1):  # ReLU after head and first block conv
            names.append(f"activation_{act}")
            act += 1
            convs.append(None)
        elif i < n_convs - 1:  # second block conv: x0.1 then add
            names += [f"lambda_{lam}", f"add_{add}"]
            lam, add = lam + 1, add + 1
            convs += [None, None]
    names.append(f"add_{add}")  # long skip
    convs.append(None)
    return names, convs


def _set_list_attr(group, name: str, values: list[str], chunks: int = 1) -> None:
    # Keras writes lists of byte strings; an empty list becomes an empty float array, and long
    # lists are split into name0, name1, ... (save_attributes_to_hdf5_group).
    data = [v.encode("utf8") for v in values]
    if chunks == 1:
        group.attrs[name] = data if data else np.zeros(0)
        return
    for i, part in enumerate(np.array_split(np.array(data), chunks)):
        group.attrs[f"{name}{i}"] = part


def _write_layers(root, weights: list, first: int, chunks: int = 1, data: bool = True) -> None:
    names, convs = _layer_names(len(weights), first)
    _set_list_attr(root, "layer_names", names, chunks)
    it = iter(weights)
    for layer, conv in zip(names, convs, strict=True):
        g = root.create_group(layer)
        if conv is None:
            _set_list_attr(g, "weight_names", [])
            continue
        k, b = next(it)
        wn = [f"{conv}/kernel:0", f"{conv}/bias:0"]
        _set_list_attr(g, "weight_names", wn)
        for name, arr in zip(wn, (k, b), strict=True):
            if data:
                g.create_dataset(name, data=arr)
            else:  # shape only: HDF5 allocates no storage, reads give the fill value
                g.create_dataset(name, shape=arr.shape, dtype="float32")


def write_keras(
    path: Path, weights: list, style: str = "save_weights", first: int = 1, chunks: int = 1
) -> Path:
    """Write ``weights`` as Keras 2.2.4 would for the DSen2-CR graph, in one of STYLES."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        if style == "save_weights":
            _write_layers(f, weights, first, chunks)
        elif style == "model_save":
            f.attrs["model_config"] = b'{"class_name": "Model"}'
            mw = f.create_group("model_weights")
            mw.attrs["keras_version"] = b"2.2.4"
            _write_layers(mw, weights, first, chunks)
            ow = f.create_group("optimizer_weights")  # Nadam moments: same shapes, ignored
            names = [f"training/Nadam/Variable_{i}:0" for i in range(len(weights))]
            _set_list_attr(ow, "weight_names", names)
            for name, (k, _) in zip(names, weights, strict=True):
                ow.create_dataset(name, data=np.ones_like(k))
        elif style == "multi_gpu":
            # multi_gpu_model: inputs, slicing lambdas, the inner model (all weights), merge.
            _set_list_attr(f, "layer_names", ["input_1", "input_2", "lambda_1", "model_1"])
            for name in ("input_1", "input_2", "lambda_1"):
                _set_list_attr(f.create_group(name), "weight_names", [])
            inner = f.create_group("model_1")
            wn = []
            for i, (k, b) in enumerate(weights):
                for leaf, arr in (("kernel:0", k), ("bias:0", b)):
                    wn.append(f"conv2d_{first + i}/{leaf}")
                    inner.create_dataset(wn[-1], data=arr)
            _set_list_attr(inner, "weight_names", wn)
        else:
            raise ValueError(style)
    return path


def _np_conv(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Keras Conv2D, padding 'same', channels_first: x (C, H, W), k (3, 3, C, O) -> (O, H, W)."""
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    win = sliding_window_view(xp, (3, 3), axis=(1, 2))  # (C, H, W, 3, 3)
    return np.einsum("chwab,abco->ohw", win, k) + b[:, None, None]


def keras_forward(weights: list, s2: np.ndarray, s1: np.ndarray | None) -> np.ndarray:
    """The Keras DSen2-CR graph in float64 numpy (spec section 4)."""
    w = [(k.astype(np.float64), b.astype(np.float64)) for k, b in weights]
    x = np.concatenate([s2, s1]) if s1 is not None else s2
    x = np.maximum(_np_conv(x, *w[0]), 0)
    for i in range((len(w) - 2) // 2):
        r = np.maximum(_np_conv(x, *w[1 + 2 * i]), 0)
        x = x + _np_conv(r, *w[2 + 2 * i]) * 0.1
    return _np_conv(x, *w[-1]) + s2


def test_numpy_conv_reference_agrees_with_scipy() -> None:
    rng = np.random.default_rng(3)
    x, k, b = rng.normal(size=(3, 7, 6)), rng.normal(size=(3, 3, 3, 2)), rng.normal(size=2)
    ref = [
        sum(scipy.signal.correlate(x[c], k[:, :, c, o], mode="same") for c in range(3)) + b[o]
        for o in range(2)
    ]
    np.testing.assert_allclose(_np_conv(x, k, b), np.stack(ref), atol=1e-12)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("include_sar", [True, False])
def test_converted_model_reproduces_keras_forward(
    tmp_path: Path, style: str, include_sar: bool
) -> None:
    weights = _keras_weights(include_sar, num_layers=2, width=8)
    # Conv names numbered from 7 (a second model built in one Keras session): conv2d_10 sorts
    # before conv2d_7 as text, so only the saved order maps the layers right.
    src = write_keras(tmp_path / "keras.hdf5", weights, style, first=7)
    summary = convert_keras(src, tmp_path / "out.safetensors")
    assert summary["model"] == ("dsen2cr" if include_sar else "dsen2cr-nosar")
    assert (summary["num_layers"], summary["feature_size"]) == (2, 8)
    assert summary["include_sar"] is include_sar
    assert summary["tensors"] == 12
    assert summary["keras_version"] == "2.2.4"

    model = load_weights(tmp_path / "out.safetensors")
    rng = np.random.default_rng(5)
    s2 = rng.uniform(0, 2, (13, 12, 12))
    s1 = rng.uniform(0, 2, (2, 12, 12)) if include_sar else None
    expected = keras_forward(weights, s2, s1)
    with torch.no_grad():
        got = model(
            torch.from_numpy(s2[None]).float(),
            None if s1 is None else torch.from_numpy(s1[None]).float(),
        )[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_chunked_layer_names_attribute(tmp_path: Path) -> None:
    weights = _keras_weights(True, num_layers=1, width=4)
    src = write_keras(tmp_path / "k.h5", weights, chunks=3)
    layout, state = keras_state_dict(src)
    assert layout.config.num_layers == 1
    np.testing.assert_array_equal(state["tail.bias"].numpy(), weights[-1][1])
    np.testing.assert_array_equal(
        state["body.0.conv2.weight"].numpy(), weights[2][0].transpose(3, 2, 0, 1)
    )


@pytest.mark.parametrize("include_sar", [True, False])
def test_full_size_layout_maps_by_shape(tmp_path: Path, include_sar: bool) -> None:
    # The paper's B = 16, F = 256 file, with datasets that have shapes but no stored data.
    cin = 15 if include_sar else 13
    fake = [(np.empty((3, 3, cin, 256), np.float32), np.empty(256, np.float32))]
    fake += [(np.empty((3, 3, 256, 256), np.float32), np.empty(256, np.float32))] * 32
    fake += [(np.empty((3, 3, 256, 13), np.float32), np.empty(13, np.float32))]
    path = tmp_path / "full.hdf5"
    with h5py.File(path, "w") as f:
        _write_layers(f, fake, first=1, data=False)
    assert path.stat().st_size < 1_000_000  # no weight data was written

    layout = read_keras_layout(path)
    assert (layout.config.include_sar, layout.config.num_layers) == (include_sar, 16)
    assert layout.config.feature_size == 256
    assert len(layout.convs) == 34
    assert layout.torch_keys[:3] == ("head", "body.0.conv1", "body.0.conv2")
    assert layout.torch_keys[-2:] == ("body.15.conv2", "tail")
    assert [c.name for c in layout.convs[:2]] == ["conv2d_1", "conv2d_2"]
    with torch.device("meta"):
        params = dict(DSen2CR.from_config(layout.config).named_parameters())
    assert sum(p.numel() for p in params.values()) == (18_947_341 if include_sar else 18_942_733)
    for conv, key in zip(layout.convs, layout.torch_keys, strict=True):
        kh, kw, ci, co = conv.kernel_shape
        assert tuple(params[f"{key}.weight"].shape) == (co, ci, kh, kw)
        assert tuple(params[f"{key}.bias"].shape) == conv.bias_shape


def test_include_sar_mismatch(tmp_path: Path) -> None:
    src = write_keras(tmp_path / "k.h5", _keras_weights(False, 1, 4))
    with pytest.raises(DataError, match="include_sar=False, but include_sar=True"):
        convert_keras(src, tmp_path / "o.safetensors", include_sar=True)
    assert convert_keras(src, tmp_path / "o.safetensors", include_sar=False)["tensors"] == 8


def test_missing_conv_layer(tmp_path: Path) -> None:
    weights = _keras_weights(True, 2, 8)
    del weights[3]  # one body conv gone: 5 convs
    src = write_keras(tmp_path / "k.h5", weights)
    with pytest.raises(DataError, match="has 5 Conv2D layers") as e:
        convert_keras(src, tmp_path / "o.safetensors")
    assert "even number" in str(e.value)
    assert not (tmp_path / "o.safetensors").exists()


def test_listed_layer_group_missing(tmp_path: Path) -> None:
    src = write_keras(tmp_path / "k.h5", _keras_weights(True, 1, 4))
    with h5py.File(src, "a") as f:
        del f["conv2d_2"]
    with pytest.raises(DataError, match="layer 'conv2d_2' is listed in layer_names but missing"):
        convert_keras(src, tmp_path / "o.safetensors")


def test_wrong_shape(tmp_path: Path) -> None:
    weights = _keras_weights(True, 2, 8)
    weights[2] = (weights[2][0][:, :, :, :7], weights[2][1][:7])
    src = write_keras(tmp_path / "k.h5", weights)
    with pytest.raises(DataError, match=r"Conv2D 'conv2d_3' has kernel \(3, 3, 8, 7\)") as e:
        convert_keras(src, tmp_path / "o.safetensors")
    assert "needs (3, 3, 8, 8)" in str(e.value)


def test_bad_head_and_foreign_weights(tmp_path: Path) -> None:
    weights = _keras_weights(True, 1, 4)
    weights[0] = (np.zeros((3, 3, 14, 4), np.float32), weights[0][1])
    with pytest.raises(DataError, match=r"head kernel is \(3, 3, 14, 4\)"):
        read_keras_layout(write_keras(tmp_path / "a.h5", weights))

    path = write_keras(tmp_path / "b.h5", _keras_weights(True, 1, 4))
    with h5py.File(path, "a") as f:  # a batch-norm layer inserted after the head
        g = f["activation_1"]
        _set_list_attr(g, "weight_names", ["batch_normalization_1/gamma:0"])
        g.create_dataset("batch_normalization_1/gamma:0", data=np.ones(4, np.float32))
    with pytest.raises(DataError, match="unexpected weight 'batch_normalization_1/gamma:0'"):
        read_keras_layout(path)


def test_not_a_keras_file(tmp_path: Path) -> None:
    h5 = tmp_path / "other.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    with pytest.raises(DataError, match="not a Keras weights file"):
        convert_keras(h5, tmp_path / "o.safetensors")
    txt = tmp_path / "weights.hdf5"
    txt.write_text("not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        convert_keras(txt, tmp_path / "o.safetensors")
    with pytest.raises(DataError, match="does not exist"):
        convert_keras(tmp_path / "nope.hdf5", tmp_path / "o.safetensors")


def test_missing_h5py_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "cloudfree\[keras\]"'):
        convert_keras(tmp_path / "k.h5", tmp_path / "o.safetensors")


def test_cli_converts_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cloudfree.cli import main

    src = write_keras(tmp_path / "keras.hdf5", _keras_weights(True, num_layers=2, width=8))
    out = tmp_path / "dsen2cr.safetensors"
    assert main(["convert-keras", str(src), str(out)]) == 0
    assert (
        "dsen2cr: num_layers=2 feature_size=8 include_sar=True; 12 tensors"
        in capsys.readouterr().out
    )
    assert load_weights(out).config.include_sar is True
    # asking for the no-SAR variant of a SAR checkpoint is refused with exit code 1, no output
    out2 = tmp_path / "nosar.safetensors"
    assert main(["convert-keras", str(src), str(out2), "--no-sar"]) == 1
    assert "error" in capsys.readouterr().err and not out2.exists()
