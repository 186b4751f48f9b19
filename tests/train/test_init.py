"""``cloudfree train --init``: fine-tuning starts from the given weights, or refuses a mismatch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from cloudfree.cli import main
from cloudfree.config import load_config
from cloudfree.errors import DataError, UnknownNameError
from cloudfree.models import build_model, load_weights, save_weights
from cloudfree.train.loop import train
from cloudfree.weights import cache

#: debug_tiny's model: DSen2-CR with SAR, B2 F16.
TINY = {"num_layers": 2, "feature_size": 16}


def _cfg(tmp_path: Path, packed: Path, *overrides: str):  # noqa: ANN202
    # A learning rate of 1e-12: the weights move by ~1e-12, so the run's final weights show
    # where it started.
    return load_config("debug_tiny", [f"train.out_dir={tmp_path}", "train.run_name=run",
                                       f"data.packed={packed}", "optim.lr=1e-12",
                                       "train.epochs=1", *overrides])  # fmt: skip


def _weights(tmp_path: Path, name: str = "dsen2cr", seed: int = 7, **config: int) -> Path:
    torch.manual_seed(seed)
    model = build_model(name, **{**TINY, **config})
    return save_weights(model, tmp_path / f"{name}-{seed}.safetensors")


def _final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_weights(run_dir / "checkpoints" / "best" / "model.safetensors").state_dict()


def test_training_starts_from_the_given_weights(tmp_path: Path, packed: Path) -> None:
    init = _weights(tmp_path)
    summary = train(_cfg(tmp_path, packed, f"train.init={init}"))
    run_dir = Path(summary["run_dir"])
    start = load_weights(init).state_dict()
    final = _final_state(run_dir)
    for key, value in start.items():
        torch.testing.assert_close(final[key], value, rtol=0, atol=1e-8)
    record = json.loads((run_dir / "init.json").read_text())
    assert record["sha256"] == hashlib.sha256(init.read_bytes()).hexdigest()
    assert load_config(run_dir / "config.yaml").train.init == str(init)
    # Without --init the same run starts elsewhere (the seed's random init).
    scratch = train(_cfg(tmp_path, packed, "train.run_name=scratch"))
    other = _final_state(Path(scratch["run_dir"]))
    assert (other["head.weight"] - start["head.weight"]).abs().max() > 1e-3
    assert not (Path(scratch["run_dir"]) / "init.json").exists()
    # Resuming the fine-tuned run continues from its checkpoint, not from the init weights.
    assert main(["train", "--resume", str(run_dir), "train.epochs=2"]) == 0


def test_run_folder_and_keras_file_as_init(tmp_path: Path, packed: Path) -> None:
    pytest.importorskip("h5py")
    from tests.models.test_keras_import import _keras_weights, write_keras

    keras = write_keras(tmp_path / "k.hdf5", _keras_weights(True, 2, 16), "model_save")
    first = Path(train(_cfg(tmp_path, packed, f"train.init={keras}"))["run_dir"])
    kernel = torch.from_numpy(_keras_weights(True, 2, 16)[0][0]).permute(3, 2, 0, 1)
    torch.testing.assert_close(_final_state(first)["head.weight"], kernel, rtol=0, atol=1e-8)
    # A run folder starts the next run from its best checkpoint.
    second = Path(train(_cfg(tmp_path, packed, "train.run_name=two", f"train.init={first}"))
                  ["run_dir"])  # fmt: skip
    torch.testing.assert_close(_final_state(second)["head.weight"], kernel, rtol=0, atol=2e-8)


@pytest.mark.parametrize(
    ("name", "config", "fix"),
    [
        ("dsen2cr-nosar", {}, "model.name=dsen2cr-nosar"),  # other input bands
        ("dsen2cr", {"feature_size": 8}, "model.feature_size=8"),  # other size
    ],
)
def test_mismatch_is_refused_before_anything_is_written(
    tmp_path: Path, packed: Path, name: str, config: dict, fix: str
) -> None:
    init = _weights(tmp_path, name, **config)
    with pytest.raises(DataError, match=fix) as err:
        train(_cfg(tmp_path, packed, f"train.init={init}"))
    assert "but the config trains dsen2cr (feature_size=16, include_sar=True" in str(err.value)
    assert not (tmp_path / "run").exists()


def test_names_and_cli_errors(
    tmp_path: Path, packed: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv(cache.HOME_ENV, str(tmp_path / "home"))
    # A bundled name of another size: refused, naming the overrides that would fit it.
    with pytest.raises(DataError, match="model.feature_size=48 model.num_layers=4"):
        train(_cfg(tmp_path, packed, "train.init=dsen2cr-demo-sar"))
    with pytest.raises(DataError, match="cloudfree weights fetch dsen2cr-sar-carl"):
        train(_cfg(tmp_path, packed, "train.init=dsen2cr-sar-carl"))  # not downloaded
    with pytest.raises(UnknownNameError, match="did you mean 'dsen2cr-sar-carl'"):
        train(_cfg(tmp_path, packed, "train.init=dsen2cr-sar-crl"))
    with pytest.raises(UnknownNameError, match="non-learned baseline"):
        train(_cfg(tmp_path, packed, "train.init=mask-fill"))
    assert not (tmp_path / "run").exists()
    args = ["train", "--config", "debug_tiny", f"train.out_dir={tmp_path}", f"data.packed={packed}"]
    assert main([*args, "--init", "dsen2cr-sar-carl", "--resume", str(tmp_path)]) == 2
    assert "use one of them" in capsys.readouterr().err
    assert main([*args, "--init", "dsen2cr-nosar-l1"]) == 1
    assert "weights fetch dsen2cr-nosar-l1" in capsys.readouterr().err
