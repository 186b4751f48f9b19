"""validate(): loss and metrics against per-patch references, bad batches, ranks agreeing."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS
from cloudfree.data.collate import collate_skip_bad
from cloudfree.losses import CARLLoss
from cloudfree.metrics import METRIC_KEYS, aggregate, compute
from cloudfree.models import DSen2CR
from cloudfree.train.distributed import DistInfo
from cloudfree.train.sampler import ShardSampler
from cloudfree.train.validate import validate

CPU = DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), backend=None)
#: dsen2cr protocol: network value x 2000 / 10000 = reflectance.
TO_REFL = 0.2
SIZE = 16


def _batches(with_s1: bool, seed: int = 0) -> list[dict | None]:
    g = torch.Generator().manual_seed(seed)
    out: list[dict | None] = []
    for b, mask_kind in ((3, "mixed"), (2, "clear"), (1, "full")):
        batch = {
            "s2_cloudy": torch.rand(b, NUM_S2_BANDS, SIZE, SIZE, generator=g) * 2.0,
            "s2": torch.rand(b, NUM_S2_BANDS, SIZE, SIZE, generator=g) * 1.5,
            "skipped": 0,
        }
        if with_s1:
            batch["s1"] = torch.rand(b, NUM_S1_BANDS, SIZE, SIZE, generator=g) * 2.0
        if mask_kind == "mixed":
            batch["mask"] = (torch.rand(b, SIZE, SIZE, generator=g) > 0.6).to(torch.uint8)
        elif mask_kind == "full":
            batch["mask"] = torch.ones(b, SIZE, SIZE, dtype=torch.uint8)
        # "clear": no mask key at all -> treated as all clear (recon metrics undefined).
        out.append(batch)
        if mask_kind == "mixed":
            out.append(None)  # a batch whose samples were all bad
    return out


def _model(include_sar: bool) -> DSen2CR:
    torch.manual_seed(0)
    model = DSen2CR(include_sar=include_sar, num_layers=1, feature_size=4)
    return model


def _reference(model: nn.Module, batches: list[dict | None]) -> dict[str, float]:
    """Per-patch cloudfree.metrics.compute, NaN-aware mean; loss = CARL by hand, B-weighted."""
    rows, loss_sum, n = [], 0.0, 0
    with torch.no_grad():
        for batch in batches:
            if batch is None:
                continue
            x, t = batch["s2_cloudy"].double(), batch["s2"].double()
            args = (batch["s2_cloudy"], batch["s1"]) if "s1" in batch else (batch["s2_cloudy"],)
            p = model(*args).double()
            b = p.shape[0]
            m = batch.get("mask", torch.zeros(b, SIZE, SIZE)).double().unsqueeze(1)
            carl = ((1 - m) * (p - x).abs() + m * (p - t).abs()).mean() + (p - t).abs().mean()
            loss_sum += float(carl) * b
            n += b
            for i in range(b):
                rows.append(
                    compute(p[i] * TO_REFL, t[i] * TO_REFL, x[i] * TO_REFL, m[i, 0].numpy())
                )
    ref = {"val_loss": loss_sum / n}
    ref.update({f"val_{k}": v for k, v in aggregate(rows).items() if k in METRIC_KEYS})
    ref["val_patches"] = float(n)
    return ref


def _assert_close(got: dict[str, float], ref: dict[str, float]) -> None:
    assert set(got) == set(ref)
    for k, v in ref.items():
        if math.isnan(v):
            assert math.isnan(got[k]), k
        else:
            assert got[k] == pytest.approx(v, rel=2e-5, abs=2e-5), k


@pytest.mark.parametrize("include_sar", [False, True])
def test_matches_per_patch_reference(include_sar: bool) -> None:
    model = _model(include_sar).train()
    batches = _batches(with_s1=include_sar)
    got = validate(model, batches, CARLLoss(), CPU, scaling="dsen2cr", precision="auto")
    assert set(got) == {"val_loss", "val_patches"} | {f"val_{k}" for k in METRIC_KEYS}
    assert got["val_patches"] == 6
    assert model.training  # mode restored
    ref = _reference(model.eval(), batches)
    _assert_close(got, ref)
    # The recon metrics skip the 2 cloud-free patches, the reprod ones the fully clouded one:
    # with 6 patches both are defined and differ from a plain mean that counted NaN as 0.
    assert np.isfinite(got["val_mae_recon"]) and np.isfinite(got["val_mae_reprod"])


class _Identity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))  # so .train()/.eval() and devices work

    def forward(self, s2_cloudy: torch.Tensor) -> torch.Tensor:
        return s2_cloudy + self.w


def test_identity_model_reproduces_clear_pixels_exactly() -> None:
    model = _Identity().eval()
    got = validate(
        model, _batches(with_s1=False), CARLLoss(), CPU, scaling="dsen2cr", precision="fp32"
    )
    assert got["val_mae_reprod"] == 0.0 and got["val_rmse_reprod"] == 0.0
    assert got["val_sam_reprod"] == pytest.approx(0.0, abs=1e-3)
    assert got["val_mae_recon"] > 0.05
    assert not model.training  # an eval-mode model stays in eval mode


def test_all_batches_bad_gives_nan() -> None:
    got = validate(_Identity(), [None, None], CARLLoss(), CPU, scaling="dsen2cr", precision="auto")
    assert got["val_patches"] == 0
    assert math.isnan(got["val_loss"]) and math.isnan(got["val_mae"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, results: dict) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    try:
        info = DistInfo(rank, rank, 2, torch.device("cpu"), "gloo")
        batches = _batches(with_s1=False)
        # Rank 0 gets the mixed and the fully clouded batches, rank 1 the clear one.
        mine = [batches[0], batches[3]] if rank == 0 else [batches[2]]
        results[rank] = validate(
            _model(False), mine, CARLLoss(), info, scaling="dsen2cr", precision="auto"
        )
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_agree_with_single_process() -> None:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        results = manager.dict()
        mp.start_processes(_worker, args=(_free_port(), results), nprocs=2, start_method="spawn")
        r0, r1 = dict(results[0]), dict(results[1])
    single = validate(
        _model(False), _batches(with_s1=False), CARLLoss(), CPU, scaling="dsen2cr", precision="auto"
    )
    assert r0 == r1
    _assert_close(r0, single)


def _samples() -> list[dict]:
    """The 6 patches of ``_batches`` as single samples (mask zeros where a batch had none)."""
    out = []
    for batch in _batches(with_s1=False):
        if batch is None:
            continue
        for i in range(batch["s2"].shape[0]):
            mask = batch.get("mask", torch.zeros(batch["s2"].shape[0], SIZE, SIZE))
            out.append({"s2_cloudy": batch["s2_cloudy"][i], "s2": batch["s2"][i],
                        "mask": mask[i].to(torch.uint8)})  # fmt: skip
    return out[:5]  # 5 patches over 2 ranks: a padding sampler would count one twice


def _shard_loader(rank: int, world: int) -> DataLoader:
    # As the training loop builds its validation loader (batch 1, ShardSampler).
    return DataLoader(_samples(), batch_size=1, sampler=ShardSampler(5, world, rank),
                      collate_fn=collate_skip_bad)  # fmt: skip


def _shard_worker(rank: int, port: int, results: dict) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    try:
        info = DistInfo(rank, rank, 2, torch.device("cpu"), "gloo")
        results[rank] = validate(
            _model(False), _shard_loader(rank, 2), CARLLoss(), info, scaling="dsen2cr",
            precision="auto",
        )  # fmt: skip
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_count_every_patch_once() -> None:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        results = manager.dict()
        mp.start_processes(
            _shard_worker, args=(_free_port(), results), nprocs=2, start_method="spawn"
        )
        r0, r1 = dict(results[0]), dict(results[1])
    assert r0 == r1
    assert r0["val_patches"] == 5  # rank 0 has 3 patches, rank 1 has 2; none counted twice
    single = validate(
        _model(False), _shard_loader(0, 1), CARLLoss(), CPU, scaling="dsen2cr", precision="auto"
    )
    assert single["val_patches"] == 5
    _assert_close(r0, single)
    # Independent reference: per-patch metrics of exactly these 5 patches, each once.
    ref = _reference(_model(False).eval(), [collate_skip_bad([p]) for p in _samples()])
    _assert_close(r0, ref)


def test_precision_policy() -> None:
    # One rule for the training steps and validation: bf16 when asked for, "auto" on CUDA only.
    from cloudfree.models.runtime import training_bf16

    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert training_bf16(cuda, "auto") and training_bf16(cuda, "bf16")
    assert not training_bf16(cuda, "fp32")
    assert training_bf16(cpu, "bf16") and not training_bf16(cpu, "auto")
    with pytest.raises(ValueError, match="precision"):
        validate(_Identity(), [], CARLLoss(), CPU, scaling="dsen2cr", precision="fp16")
