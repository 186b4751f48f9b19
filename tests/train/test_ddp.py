"""Two CPU processes (gloo): same final parameters, disjoint data, all-bad batches on a rank."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from cloudfree.config import load_config
from cloudfree.data.packed.pack import pack
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import read_index, write_index
from cloudfree.data.synthetic.release import synthesize
from cloudfree.models import build_model
from cloudfree.runs import find_latest
from cloudfree.train.checkpoint import load_checkpoint
from cloudfree.train.loop import DEBUG_INDICES_ENV, _param_hash, _sync_step
from cloudfree.train.optim import build_optimizer
from cloudfree.train.run_log import read_metrics_csv

REPO = Path(__file__).resolve().parents[2]


def _torchrun(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """``cloudfree train --config debug_tiny`` on 2 CPU ranks; skips on rendezvous trouble."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "cloudfree.cli", "train", "--config", "debug_tiny", f"train.out_dir={tmp_path}",
        "train.device=cpu", *overrides,
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        DEBUG_INDICES_ENV: "1",
        "OMP_NUM_THREADS": "1",
    }
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip("torchrun did not finish in 180 s (rendezvous or a very busy machine)")
    if done.returncode != 0 and "rendezvous" in done.stderr.lower() and "timeout" in done.stderr:
        pytest.skip(f"torchrun rendezvous timed out: {done.stderr[-500:]}")
    assert done.returncode == 0, done.stderr[-4000:]
    return done


@pytest.mark.slow
def test_torchrun_two_cpu_ranks(tmp_path: Path) -> None:
    synthesize(tmp_path / "root", n=8, seed=0, size=64)
    write_index(build_index(tmp_path / "root"), tmp_path / "index.csv")
    pack(tmp_path / "index.csv", tmp_path / "packed", workers=0)
    done = _torchrun(tmp_path, f"data.packed={tmp_path / 'packed'}", "train.run_name=ddp")
    run_dir = tmp_path / "ddp"
    assert done.stdout.count(f"run folder: {run_dir}") == 1  # only rank 0 reports

    # Both ranks end with identical parameters, and rank 0's checkpoint holds them.
    h0 = (run_dir / "param_hash_rank0.txt").read_text().strip()
    h1 = (run_dir / "param_hash_rank1.txt").read_text().strip()
    assert h0 == h1
    model = build_model("dsen2cr", num_layers=2, feature_size=16)
    latest = find_latest(run_dir)
    # Global batch 4 = 2 per rank; 6 training patches = 3 per rank -> 2 steps/epoch, 2 epochs.
    assert latest is not None and latest.name == "step-00000004"
    load_checkpoint(latest, model)
    assert _param_hash(model) == h0

    # Each rank trained on its own half of the first epoch's permutation: no overlap, all
    # 6 training patches covered.
    r0 = json.loads((run_dir / "indices_rank0.json").read_text())
    r1 = json.loads((run_dir / "indices_rank1.json").read_text())
    assert len(r0) == len(r1) == 3
    assert not set(r0) & set(r1)
    assert sorted(r0 + r1) == list(range(6))

    # Validation shards are unpadded: the one validation patch is counted once, not once per
    # rank (a padding sampler would give rank 1 a copy of it).
    val_patches = [v for _, split, name, v in read_metrics_csv(run_dir / "metrics.csv")
                   if split == "val" and name == "val_patches"]  # fmt: skip
    assert val_patches == [1.0, 1.0]  # one validation per epoch


@pytest.mark.slow
def test_torchrun_all_bad_batches(tmp_path: Path) -> None:
    synthesize(tmp_path / "root", n=8, seed=0, size=64)
    result = build_index(tmp_path / "root")
    write_index(result, tmp_path / "index.csv")
    # 1 patch per rank and step. Seed 42 shuffles the 6 training patches into rank 0: [0, 2, 1]
    # and rank 1: [3, 4, 5] in epoch 0, [4, 5, 2] and [0, 1, 3] in epoch 1. With patches 0 and
    # 3 unreadable, epoch 0's first step has no data on any rank (no update), and epoch 1's
    # first and last steps have data on rank 0 only (its gradient, not half of it).
    index = read_index(tmp_path / "index.csv")  # the training dataset's row order
    train_rows = index.select("train", require=("s2_cloudy", "s2", "s1"))
    for i in (0, 3):
        index.resolve(train_rows[i], "s2_cloudy").write_bytes(b"not a GeoTIFF")
    _torchrun(tmp_path, f"data.index={tmp_path / 'index.csv'}", "train.run_name=bad",
              "train.batch_size=2", "data.max_bad_fraction=0.5")  # fmt: skip
    run_dir = tmp_path / "bad"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["skipped"] == 4
    h0 = (run_dir / "param_hash_rank0.txt").read_text().strip()
    assert h0 == (run_dir / "param_hash_rank1.txt").read_text().strip()
    model = build_model("dsen2cr", num_layers=2, feature_size=16)
    opt = build_optimizer(model.parameters(), load_config("debug_tiny").optim)
    state = load_checkpoint(run_dir, model, opt)
    assert _param_hash(model) == h0
    assert state["extra"]["seen"] == 12 and state["extra"]["skipped"] == 4
    # 6 steps, one without data on any rank: Nadam stepped 5 times.
    assert {int(st["step"]) for st in opt.state_dict()["state"].values()} == {5}


#: Each rank's input to a 3 -> 1 linear layer (None: this rank's whole batch was bad).
_CASES = {
    "one_bad": ([[1.0, 2.0, -1.0], [0.5, 0.0, 2.0]], None),
    "both_good": ([[1.0, 2.0, -1.0], [0.5, 0.0, 2.0]], [[-2.0, 1.0, 0.0]]),
    "all_bad": (None, None),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loss(net: nn.Module, x: list[list[float]]) -> torch.Tensor:
    return (net(torch.tensor(x)) ** 2).mean()


def _linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(3, 1)


def _sync_worker(rank: int, port: int, results: dict) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    try:
        for case, inputs in _CASES.items():
            ddp = nn.parallel.DistributedDataParallel(_linear())
            x = inputs[rank]
            if x is None:  # as the loop: a zero loss on a dummy input, to join the all-reduce
                ddp(torch.zeros(1, 3)).sum().mul(0.0).backward()
                loss = None
            else:
                loss = _loss(ddp, x)
                loss.backward()
            value, k = _sync_step(ddp, loss, 2)
            grads = [p.grad.clone() for p in ddp.parameters()]
            results[(case, rank)] = (value, k, grads)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_sync_step_averages_over_ranks_with_data() -> None:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        results = manager.dict()
        mp.start_processes(
            _sync_worker, args=(_free_port(), results), nprocs=2, start_method="spawn"
        )
        results = dict(results)

    def single(x: list[list[float]]) -> tuple[float, list[torch.Tensor]]:
        net = _linear()
        loss = _loss(net, x)
        loss.backward()
        return loss.item(), [p.grad for p in net.parameters()]

    for case, inputs in _CASES.items():
        (v0, k0, g0), (v1, k1, g1) = results[(case, 0)], results[(case, 1)]
        assert (v0, k0) == (v1, k1), case  # every rank takes the same decision
        for a, b in zip(g0, g1, strict=True):
            assert torch.equal(a, b), case
        good = [single(x) for x in inputs if x is not None]
        assert k0 == len(good), case
        if not good:  # no rank had data: zero gradients, and the loop skips optimizer.step
            assert v0 == 0.0 and all(not g.any() for g in g0)
            continue
        # The gradient and loss of the ranks that had data, as if the others were absent
        # (not scaled by 1/2 because the bad rank counted in DDP's average).
        assert v0 == pytest.approx(sum(v for v, _ in good) / len(good), rel=1e-6)
        for i, g in enumerate(g0):
            ref = sum(gs[i] for _, gs in good) / len(good)
            torch.testing.assert_close(g, ref, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_torchrun_pix2pix_two_cpu_ranks(tmp_path: Path) -> None:
    """The adversarial step under DDP: both networks all-reduce, ranks stay identical."""
    synthesize(tmp_path / "root", n=8, seed=0, size=64)
    write_index(build_index(tmp_path / "root"), tmp_path / "index.csv")
    pack(tmp_path / "index.csv", tmp_path / "packed", workers=0)
    _torchrun(
        tmp_path, f"data.packed={tmp_path / 'packed'}", "train.run_name=gan",
        "model.name=pix2pix", "loss.name=pix2pix", "optim.name=adam", "optim.lr=2e-4",
        "model.num_layers=5", "model.feature_size=8", "data.crop_size=32",
    )  # fmt: skip
    run_dir = tmp_path / "gan"
    h0 = (run_dir / "param_hash_rank0.txt").read_text().strip()
    assert h0 == (run_dir / "param_hash_rank1.txt").read_text().strip()
    gen = build_model("pix2pix", num_downs=5, ngf=8)
    info = load_checkpoint(find_latest(run_dir), gen)
    assert _param_hash(gen) == h0
    assert info["aux"]["adversary"]["optimizer"]["state"]  # the discriminator was trained
