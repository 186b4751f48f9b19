"""Safetensors weights: exact round trip, rebuilt from metadata, all-or-nothing loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from cloudfree.errors import DataError
from cloudfree.models import DSen2CR, build_model, load_state, load_weights, save_weights
from cloudfree.models.weights import CONFIG_KEY, MODEL_KEY, read_metadata


def _tiny(include_sar: bool = True, num_layers: int = 2, feature_size: int = 8) -> DSen2CR:
    model = DSen2CR(include_sar=include_sar, num_layers=num_layers, feature_size=feature_size)
    with torch.no_grad():  # non-zero biases, so a bias lost on the way would show
        for p in model.parameters():
            p.add_(torch.rand_like(p))
    return model


@pytest.mark.parametrize("include_sar", [True, False])
def test_round_trip_is_exact(tmp_path: Path, include_sar: bool) -> None:
    torch.manual_seed(0)
    model = _tiny(include_sar=include_sar, num_layers=3, feature_size=16)
    path = save_weights(model, tmp_path / "w.safetensors", metadata={"epoch": 3, "note": "x"})
    loaded = load_weights(path)
    assert isinstance(loaded, DSen2CR)
    assert loaded.config == model.config
    assert not loaded.training
    a, b = model.state_dict(), loaded.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    s2 = torch.rand(1, 13, 16, 16)
    s1 = torch.rand(1, 2, 16, 16) if include_sar else None
    with torch.no_grad():
        assert torch.equal(model.eval()(s2, s1), loaded(s2, s1))
    meta = read_metadata(path)
    assert meta[MODEL_KEY] == ("dsen2cr" if include_sar else "dsen2cr-nosar")
    assert json.loads(meta[CONFIG_KEY]) == {
        "include_sar": include_sar,
        "num_layers": 3,
        "feature_size": 16,
    }
    assert meta["epoch"] == "3" and meta["note"] == "x"
    # Written atomically: nothing but the final file is left in the folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_channels_last_model_saves_and_loads_into_existing_model(tmp_path: Path) -> None:
    model = _tiny().to(memory_format=torch.channels_last)
    path = save_weights(model, tmp_path / "cl.safetensors")
    target = DSen2CR(num_layers=2, feature_size=8)
    assert load_state(target, path) is target
    for k, v in model.state_dict().items():
        assert torch.equal(target.state_dict()[k], v), k


def test_load_state_refuses_other_width_and_lists_mismatches(tmp_path: Path) -> None:
    path = save_weights(_tiny(feature_size=8), tmp_path / "w.safetensors")
    model = DSen2CR(num_layers=2, feature_size=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DataError, match="shape mismatches") as e:
        load_state(model, path)
    msg = str(e.value)
    assert "w.safetensors" in msg
    assert "head.weight (8, 15, 3, 3) vs model (16, 15, 3, 3)" in msg
    # Nothing was loaded: never a silently half-loaded model.
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_load_state_lists_missing_and_unexpected_keys(tmp_path: Path) -> None:
    path = save_weights(_tiny(num_layers=2), tmp_path / "w.safetensors")
    with pytest.raises(DataError, match="missing tensors: body.2.conv1.weight") as e:
        load_state(DSen2CR(num_layers=3, feature_size=8), path)
    assert "4 missing tensors" in str(e.value)
    with pytest.raises(
        DataError, match="4 unexpected tensors: body.1.conv1.bias, body.1.conv1.weight"
    ):
        load_state(DSen2CR(num_layers=1, feature_size=8), path)
    with pytest.raises(DataError, match=r"head.weight \(8, 15, 3, 3\) vs model \(8, 13, 3, 3\)"):
        load_state(DSen2CR(include_sar=False, num_layers=2, feature_size=8), path)


def test_load_weights_needs_metadata(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in _tiny().state_dict().items()}, str(path))
    with pytest.raises(DataError, match="no cloudfree model metadata"):
        load_weights(path)
    # ...but the tensors still load into a model built by hand.
    load_state(DSen2CR(num_layers=2, feature_size=8), path)


def test_load_weights_rejects_unknown_model_or_config(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in _tiny().state_dict().items()}
    unknown = tmp_path / "unknown.safetensors"
    save_file(tensors, str(unknown), metadata={MODEL_KEY: "pix3pix", CONFIG_KEY: "{}"})
    with pytest.raises(DataError, match="unknown model 'pix3pix'"):
        load_weights(unknown)
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={MODEL_KEY: "dsen2cr", CONFIG_KEY: '{"depth": 2}'})
    with pytest.raises(DataError, match="does not fit model 'dsen2cr'"):
        load_weights(bad)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_weights(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a safetensors file")
    with pytest.raises(DataError, match="not a readable safetensors file"):
        load_weights(junk)
    with pytest.raises(DataError, match="not a readable safetensors file"):
        load_state(DSen2CR(num_layers=1, feature_size=4), junk)


def test_save_refuses_unregistered_models_and_reserved_keys(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="registry_name"):
        save_weights(nn.Conv2d(1, 1, 1), tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="reserved"):
        save_weights(_tiny(), tmp_path / "y.safetensors", metadata={MODEL_KEY: "other"})
    assert list(tmp_path.iterdir()) == []


def test_registry_name_survives_round_trip(tmp_path: Path) -> None:
    model = build_model("dsen2cr-nosar", num_layers=1, feature_size=4)
    loaded = load_weights(save_weights(model, tmp_path / "n.safetensors"), map_location="cpu")
    assert loaded.registry_name == "dsen2cr-nosar" and not loaded.include_sar
