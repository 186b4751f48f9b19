"""Tests for cloudfree.train.distributed: single-process fallback and a real 2-process gloo group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cloudfree.train import distributed as d

_TORCHRUN_VARS = d.TORCHRUN_ENV + ("LOCAL_WORLD_SIZE", "GROUP_RANK", "TORCHELASTIC_RUN_ID")


@pytest.fixture
def no_torchrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in _TORCHRUN_VARS:
        monkeypatch.delenv(key, raising=False)


def test_single_process_fallback(no_torchrun_env: None) -> None:
    info = d.init_distributed(device="cpu")
    assert info == d.DistInfo(
        rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), backend=None
    )
    assert info.is_main and not info.distributed
    assert not torch.distributed.is_initialized()
    assert d.get_rank() == 0 and d.get_world_size() == 1 and d.is_main()
    d.barrier()  # no-op, must not raise
    x = torch.tensor([1.0, 3.0], requires_grad=True)
    y = d.all_reduce_mean(x)
    assert torch.equal(y, torch.tensor([1.0, 3.0])) and not y.requires_grad
    assert y.data_ptr() != x.data_ptr()
    assert d.broadcast_object({"a": 1}) == {"a": 1}
    assert d.all_gather_object(5) == [5]
    d.cleanup()


def test_auto_device_without_cuda(no_torchrun_env: None) -> None:
    if torch.cuda.is_available():
        pytest.skip("checks the CPU fallback of device='auto'")
    assert d.init_distributed().device == torch.device("cpu")


def test_partial_env_is_an_error(no_torchrun_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="partial torchrun environment"):
        d.init_distributed(device="cpu")


def test_non_integer_env_is_an_error(
    no_torchrun_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"RANK": "zero", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "x"}
    for key, value in {**env, "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match="RANK='zero'"):
        d.init_distributed(device="cpu")


_SCRIPT = """
import json, os, sys
import torch
from cloudfree.train import distributed as d

out_dir = sys.argv[1]
info = d.init_distributed(device="cpu")
# rank r contributes [r, 10 * r]: the mean over 2 ranks is [0.5, 5.0]
mean = d.all_reduce_mean(torch.tensor([float(info.rank), 10.0 * info.rank]))
obj = d.broadcast_object({"from": info.rank, "token": "abc"} if info.rank == 0 else None)
gathered = d.all_gather_object(info.rank * 7)
d.barrier()
result = {
    "rank": info.rank, "local_rank": info.local_rank, "world_size": info.world_size,
    "backend": info.backend, "device": str(info.device), "is_main": d.is_main(),
    "get_rank": d.get_rank(), "get_world_size": d.get_world_size(),
    "mean": mean.tolist(), "obj": obj, "gathered": gathered,
}
with open(os.path.join(out_dir, f"rank{info.rank}.json"), "w") as f:
    json.dump(result, f)
d.cleanup()
"""


@pytest.mark.slow
def test_two_process_gloo_group(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    env = {k: v for k, v in os.environ.items() if k not in _TORCHRUN_VARS}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(tmp_path),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        pytest.skip("torchrun rendezvous timed out (is the loopback interface 'lo' down?)")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r, res in enumerate(results):
        assert res["rank"] == res["get_rank"] == r
        assert res["local_rank"] == r
        assert res["world_size"] == res["get_world_size"] == 2
        assert res["backend"] == "gloo" and res["device"] == "cpu"
        assert res["is_main"] == (r == 0)
        assert res["mean"] == [0.5, 5.0]
        assert res["obj"] == {"from": 0, "token": "abc"}
        assert res["gathered"] == [0, 7]
