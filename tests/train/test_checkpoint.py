"""Tests for cloudfree.train.checkpoint: atomic save, resume, pruning, best, crash safety."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.errors import DataError
from cloudfree.models import DSen2CR
from cloudfree.runs import find_latest
from cloudfree.train import checkpoint as ck
from cloudfree.train.checkpoint import load_checkpoint, save_checkpoint


def _model() -> DSen2CR:
    return DSen2CR(include_sar=False, num_layers=1, feature_size=4)


def _optim(model: torch.nn.Module) -> torch.optim.NAdam:
    return torch.optim.NAdam(model.parameters(), lr=1e-2, momentum_decay=4e-3)


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    # Data drawn from the global RNG, so a resumed run only matches if the RNG was restored.
    x = torch.rand(2, 13, 8, 8)
    y = torch.rand(2, 13, 8, 8)
    opt.zero_grad()
    torch.nn.functional.l1_loss(model(x), y).backward()
    opt.step()


def _save(run: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int, **kw) -> Path:
    return save_checkpoint(
        run,
        model=model,
        optimizer=opt,
        step=step,
        epoch=kw.pop("epoch", 0),
        sampler_state=kw.pop("sampler_state", {"epoch": 0, "position": step}),
        **kw,
    )


def test_resume_equals_uninterrupted_bitwise(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _model()
    opt = _optim(model)
    for _ in range(3):
        _step(model, opt)
    path = _save(tmp_path, model, opt, 3, extra={"best_val": np.float32(0.25)})
    for _ in range(2):
        _step(model, opt)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    torch.manual_seed(123)  # a different init and RNG stream, both overwritten by the restore
    resumed = _model()
    resumed_opt = _optim(resumed)
    info = load_checkpoint(tmp_path, resumed, resumed_opt)
    assert info["path"] == path and info["step"] == 3 and info["epoch"] == 0
    assert info["sampler_state"] == {"epoch": 0, "position": 3}
    assert info["extra"] == {"best_val": 0.25}
    for _ in range(2):
        _step(resumed, resumed_opt)
    for k, v in resumed.state_dict().items():
        assert torch.equal(v, expected[k]), k


def test_rng_states_restored(tmp_path: Path) -> None:
    # The global numpy RNG on purpose: it is the state the checkpoint must restore.
    model = _model()
    _save(tmp_path, model, _optim(model), 1)
    after = (torch.rand(4), np.random.rand(3), random.random())  # noqa: NPY002
    torch.rand(10)
    np.random.rand(5)  # noqa: NPY002
    random.random()
    load_checkpoint(tmp_path, _model())
    again = (torch.rand(4), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(after[0], again[0])
    assert np.array_equal(after[1], again[1]) and after[2] == again[2]


def test_per_rank_rng_states(tmp_path: Path) -> None:
    model = _model()
    torch.manual_seed(1)
    s0 = ck.capture_rng_state()
    r0 = torch.rand(3)
    torch.manual_seed(2)
    s1 = ck.capture_rng_state()
    r1 = torch.rand(3)
    _save(tmp_path, model, _optim(model), 1, rng_states=[s0, s1])
    load_checkpoint(tmp_path, _model(), rank=1)
    assert torch.equal(torch.rand(3), r1)
    load_checkpoint(tmp_path, _model(), rank=0)
    assert torch.equal(torch.rand(3), r0)


def test_layout_latest_and_keep_last(tmp_path: Path) -> None:
    model = _model()
    opt = _optim(model)
    for step in (10, 20, 30, 40, 50):
        _save(tmp_path, model, opt, step, keep_last=3)
    ckpts = tmp_path / "checkpoints"
    names = sorted(p.name for p in ckpts.iterdir())
    assert names == ["latest", "step-00000030", "step-00000040", "step-00000050"]
    assert (ckpts / "latest").read_text().strip() == "step-00000050"
    assert find_latest(tmp_path) == ckpts / "step-00000050"
    assert {p.name for p in (ckpts / "step-00000050").iterdir()} == {
        "model.safetensors",
        "state.pt",
    }


def test_best_is_kept_after_pruning(tmp_path: Path) -> None:
    model = _model()
    opt = _optim(model)
    _save(tmp_path, model, opt, 1, keep_last=1, is_best=True, extra={"val": 0.5})
    best_weights = {k: v.clone() for k, v in model.state_dict().items()}
    for step in (2, 3, 4):
        _step(model, opt)
        _save(tmp_path, model, opt, step, keep_last=1, extra={"val": 0.9})
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["best", "latest", "step-00000004"]
    fresh = _model()
    info = load_checkpoint(ckpts / "best", fresh)
    assert info["step"] == 1 and info["extra"] == {"val": 0.5}
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, best_weights[k])
    # A new best replaces the old one.
    _save(tmp_path, model, opt, 5, keep_last=1, is_best=True, extra={"val": 0.1})
    assert load_checkpoint(ckpts / "best", _model())["step"] == 5
    assert sorted(p.name for p in ckpts.iterdir()) == ["best", "latest", "step-00000005"]


@pytest.mark.parametrize("target", ["torch.save", "save_weights"])
def test_crash_during_save_keeps_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    model = _model()
    opt = _optim(model)
    _save(tmp_path, model, opt, 1)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    _step(model, opt)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    if target == "torch.save":
        monkeypatch.setattr(ck.torch, "save", boom)
    else:
        monkeypatch.setattr("cloudfree.models.weights.save_weights", boom)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, model, opt, 2)
    monkeypatch.undo()
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step-00000001"]
    assert find_latest(tmp_path) == ckpts / "step-00000001"
    fresh = _model()
    assert load_checkpoint(tmp_path, fresh)["step"] == 1
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, good[k])


def test_killed_save_leftovers_are_ignored_and_cleaned(tmp_path: Path) -> None:
    model = _model()
    opt = _optim(model)
    _save(tmp_path, model, opt, 1)
    ckpts = tmp_path / "checkpoints"
    # What a process killed mid-save leaves: a temp dir with a partial file, never renamed.
    leftover = ckpts / ".tmp-step-00000002-abc"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"partial")
    # A step dir missing its state file (e.g. copied by hand) is not complete either.
    (ckpts / "step-00000009").mkdir()
    (ckpts / "step-00000009" / "model.safetensors").write_bytes(b"x")
    assert find_latest(tmp_path) == ckpts / "step-00000001"
    (ckpts / "latest").unlink()
    assert find_latest(tmp_path) == ckpts / "step-00000001"
    _save(tmp_path, model, opt, 2)
    assert not leftover.exists()


def test_latest_pointing_to_missing_dir_falls_back(tmp_path: Path) -> None:
    model = _model()
    opt = _optim(model)
    for step in (1, 2):
        _save(tmp_path, model, opt, step)
    ckpts = tmp_path / "checkpoints"
    (ckpts / "latest").write_text("step-00000007\n")
    assert find_latest(tmp_path) == ckpts / "step-00000002"
    (ckpts / "latest").write_text("garbage")
    assert find_latest(tmp_path) == ckpts / "step-00000002"
    assert load_checkpoint(tmp_path, _model())["step"] == 2


def test_resave_same_step_replaces_it(tmp_path: Path) -> None:
    model = _model()
    opt = _optim(model)
    _save(tmp_path, model, opt, 4, extra={"v": 1})
    _save(tmp_path, model, opt, 4, extra={"v": 2})
    assert load_checkpoint(tmp_path, _model())["extra"] == {"v": 2}


def test_unwraps_compiled_and_ddp_like_wrappers(tmp_path: Path) -> None:
    model = _model()

    class Wrapper(torch.nn.Module):  # what torch.compile returns: the model as _orig_mod
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self._orig_mod = inner

    wrapped = Wrapper(model)
    assert ck.unwrap_model(wrapped) is model
    _save(tmp_path, wrapped, _optim(model), 1)
    target = _model()
    load_checkpoint(tmp_path, Wrapper(target))
    for k, v in target.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])


def test_errors(tmp_path: Path) -> None:
    model = _model()
    opt = _optim(model)
    with pytest.raises(DataError, match="does not exist"):
        load_checkpoint(tmp_path / "nope", model)
    with pytest.raises(DataError, match="no complete checkpoint"):
        load_checkpoint(tmp_path, model)
    _save(tmp_path, model, opt, 1)
    with pytest.raises(DataError, match="do not fit"):  # strict weights
        load_checkpoint(tmp_path, DSen2CR(include_sar=False, num_layers=2, feature_size=4))
    with pytest.raises(DataError, match="optimizer state"):
        other = torch.nn.Linear(2, 2)
        load_checkpoint(tmp_path, _model(), torch.optim.NAdam(other.parameters()))
    with pytest.raises(TypeError, match=r"extra\['f'\]"):
        _save(tmp_path, model, opt, 2, extra={"f": object()})
    with pytest.raises(ValueError, match="keep_last"):
        _save(tmp_path, model, opt, 2, keep_last=0)
    assert find_latest(tmp_path) == tmp_path / "checkpoints" / "step-00000001"
