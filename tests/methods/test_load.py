"""load_method: baselines by name, models from weights files, checkpoints and run folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cloudfree.errors import DataError
from cloudfree.inpaint.registry import BASELINES
from cloudfree.methods.base import Method
from cloudfree.methods.baselines import IdentityMethod, MaskFillMethod
from cloudfree.methods.load import load_method
from cloudfree.methods.model import ModelMethod
from cloudfree.models import DSen2CR, save_weights
from cloudfree.train.checkpoint import save_checkpoint


def _model(include_sar: bool, seed: int = 0) -> DSen2CR:
    torch.manual_seed(seed)
    return DSen2CR(include_sar=include_sar, num_layers=1, feature_size=8).eval()


def _batch(include_sar: bool, b: int = 2, size: int = 24) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    batch = {"s2_cloudy": torch.rand(b, 13, size, size, generator=g) * 2}
    if include_sar:
        batch["s1"] = torch.rand(b, 2, size, size, generator=g) * 2
    return batch


def _reference(model: DSen2CR, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(batch["s2_cloudy"], batch.get("s1"))


def _save_run(run: Path, model: DSen2CR, step: int, is_best: bool) -> Path:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return save_checkpoint(
        run, model=model, optimizer=opt, step=step, epoch=0, sampler_state=None, is_best=is_best
    )


def test_baseline_names() -> None:
    assert BASELINES == ("identity", "mask-fill", "biharmonic", "push-pull", "sar-match")
    identity, fill = load_method("identity"), load_method("mask-fill")
    assert isinstance(identity, IdentityMethod) and isinstance(fill, MaskFillMethod)
    for method, name in ((identity, "identity"), (fill, "mask-fill")):
        assert isinstance(method, Method)
        assert (method.name, method.include_sar, method.scaling) == (name, False, "dsen2cr")


@pytest.mark.parametrize("include_sar", [False, True])
def test_weights_file_predicts_like_the_model(tmp_path: Path, include_sar: bool) -> None:
    model = _model(include_sar)
    path = save_weights(model, tmp_path / "tiny.safetensors")
    method = load_method(str(path), device="cpu")
    assert isinstance(method, ModelMethod)
    assert method.include_sar is include_sar
    assert method.name == "tiny" and method.path == path  # tables show the short name
    batch = _batch(include_sar)
    pred = method.predict(batch)
    assert pred.shape == (2, 13, 24, 24)
    assert pred.dtype == torch.float32 and pred.device.type == "cpu"
    torch.testing.assert_close(pred, _reference(model, batch), rtol=1e-5, atol=1e-5)
    pred.add_(1)  # an ordinary tensor, not an inference-mode one


def test_sar_model_needs_s1(tmp_path: Path) -> None:
    path = save_weights(_model(True), tmp_path / "sar.safetensors")
    method = load_method(str(path), device="cpu")
    with pytest.raises(ValueError, match="no 's1'"):
        method.predict(_batch(False))


def test_run_folder_prefers_best_then_latest(tmp_path: Path) -> None:
    best_model, later_model = _model(False, seed=0), _model(False, seed=1)
    run = tmp_path / "run"
    _save_run(run, best_model, step=1, is_best=True)
    step2 = _save_run(run, later_model, step=2, is_best=False)
    batch = _batch(False)
    best_ref, later_ref = _reference(best_model, batch), _reference(later_model, batch)
    assert not torch.allclose(best_ref, later_ref)

    method = load_method(str(run), device="cpu")
    assert method.name == "run (best)"
    torch.testing.assert_close(method.predict(batch), best_ref, rtol=1e-5, atol=1e-5)
    # A checkpoint folder itself.
    method = load_method(str(step2), device="cpu")
    assert method.name == f"run ({step2.name})"
    assert load_method(str(step2 / "model.safetensors"), device="cpu").name == method.name
    torch.testing.assert_close(method.predict(batch), later_ref, rtol=1e-5, atol=1e-5)
    # Without best/: the latest checkpoint.
    run2 = tmp_path / "run2"
    _save_run(run2, best_model, step=1, is_best=False)
    _save_run(run2, later_model, step=2, is_best=False)
    method = load_method(str(run2), device="cpu")
    assert method.name == "run2 (step-00000002)"
    torch.testing.assert_close(method.predict(batch), later_ref, rtol=1e-5, atol=1e-5)


def test_folder_without_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="complete checkpoint"):
        load_method(str(tmp_path))


def test_unknown_spec_lists_what_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown method 'mask_fill'") as err:
        load_method("mask_fill")
    for word in ("'identity'", "'mask-fill'", ".safetensors", "run folder"):
        assert word in str(err.value)
    other = tmp_path / "model.pt"
    other.write_bytes(b"\0")
    with pytest.raises(DataError, match="not a .safetensors"):
        load_method(str(other))
