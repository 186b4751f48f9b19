"""The training loop on tiny synthetic data: it learns, logs, stops cleanly on bad input."""

from __future__ import annotations

import csv
import io
import math
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

import cloudfree.losses
import cloudfree.train.loop as loop
from cloudfree.config import load_config
from cloudfree.data.packed.pack import pack
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize
from cloudfree.models import build_model
from cloudfree.runs import find_latest
from cloudfree.train.checkpoint import load_checkpoint
from cloudfree.train.loop import TrainingError, train
from cloudfree.train.run_log import read_metrics_csv


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """8 synthetic 64-px triplets (6 train, 1 val, 1 test): root, index CSV and packed shards."""
    base = tmp_path_factory.mktemp("synth")
    synthesize(base / "root", n=8, seed=0, size=64)
    index = base / "index.csv"
    write_index(build_index(base / "root"), index)
    pack(index, base / "packed", workers=0)
    return {"root": base / "root", "index": index, "packed": base / "packed"}


def _cfg(tmp_path: Path, *overrides: str):  # noqa: ANN202
    return load_config(
        "debug_tiny", [f"train.out_dir={tmp_path}", "train.run_name=run", *overrides]
    )


def _train_losses(run_dir: Path) -> list[float]:
    return [v for _, split, name, v in read_metrics_csv(run_dir / "metrics.csv")
            if split == "train" and name == "loss"]  # fmt: skip


@pytest.mark.parametrize("source", ["index", "packed"])
def test_tiny_preset_learns_and_writes_run_folder(
    synth: dict[str, Path], tmp_path: Path, source: str
) -> None:
    cfg = _cfg(tmp_path, f"data.{source}={synth[source]}", "optim.lr=1e-3", "train.epochs=8")
    summary = train(cfg)
    run_dir = Path(summary["run_dir"])
    assert run_dir == tmp_path / "run"
    assert summary["steps"] == 16  # 6 train patches / batch 4 -> 2 steps per epoch, 8 epochs
    assert summary["skipped"] == 0
    losses = _train_losses(run_dir)
    assert len(losses) == 16  # log_every=1
    assert all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.8 * first, (first, last)

    for name in ("config.yaml", "run_info.json", "metrics.csv", "summary.json"):
        assert (run_dir / name).is_file(), name
    assert load_config(run_dir / "config.yaml") == cfg
    rows = read_metrics_csv(run_dir / "metrics.csv")
    names = {(split, name) for _, split, name, _ in rows}
    assert {("train", "lr"), ("train", "grad_norm"), ("train", "patches_per_s")} <= names
    assert ("val", "val_loss") in names
    assert (run_dir / "metrics.csv").read_text().splitlines()[0] == "step,split,name,value"
    assert list(run_dir.rglob("events.out.tfevents.*"))
    latest = find_latest(run_dir)
    assert latest is not None and latest.name == "step-00000016"
    assert (run_dir / "checkpoints" / "best" / "model.safetensors").is_file()
    assert summary["best_val_loss"] == min(v for _, s, n, v in rows if n == "val_loss")


class _NaNAtStep(nn.Module):
    """Wraps a loss; returns NaN on the k-th training call (calls with grad enabled)."""

    def __init__(self, inner: nn.Module, k: int) -> None:
        super().__init__()
        self.inner, self.k, self.calls = inner, k, 0

    def forward(self, pred, target, cloudy, mask):  # noqa: ANN001, ANN201
        loss = self.inner(pred, target, cloudy, mask)
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls == self.k:
                return loss * float("nan")
        return loss


def test_nan_loss_stops_and_keeps_last_checkpoint(
    synth: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cloudfree.losses.build_loss
    monkeypatch.setattr(
        cloudfree.losses, "build_loss", lambda *a, **k: _NaNAtStep(real(*a, **k), 4)
    )
    cfg = _cfg(tmp_path, f"data.packed={synth['packed']}", "train.checkpoint_every=3")
    with pytest.raises(TrainingError, match=r"non-finite training loss.*step 4.*intact"):
        train(cfg)
    run_dir = tmp_path / "run"
    latest = find_latest(run_dir)
    # Steps 2 (end of epoch 0) and 3 (checkpoint_every) were saved; nothing at or after the NaN.
    assert latest is not None and latest.name == "step-00000003"
    saved = sorted(p.name for p in (run_dir / "checkpoints").glob("step-*"))
    assert saved == ["step-00000002", "step-00000003"]
    model = build_model("dsen2cr", num_layers=2, feature_size=16)
    state = load_checkpoint(run_dir, model)
    assert state["step"] == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_out_of_memory_names_the_settings_to_lower(
    synth: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def oom(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loop, "clip_gradients", oom)
    with pytest.raises(TrainingError, match=r"out of GPU memory.*lower train\.batch_size.*bf16"):
        train(_cfg(tmp_path, f"data.packed={synth['packed']}"))


def _corrupt_copy(synth: dict[str, Path], tmp_path: Path) -> Path:
    """A copy of the synthetic data with one training patch's cloudy file overwritten."""
    root = tmp_path / "root"
    shutil.copytree(synth["root"], root)
    index = tmp_path / "index.csv"
    result = build_index(root)
    write_index(result, index)
    row = next(r for r in result.rows if r.split == "train")
    result.resolve(row, "s2_cloudy").write_bytes(b"not a GeoTIFF")
    return index


def test_bad_patch_threshold(synth: dict[str, Path], tmp_path: Path) -> None:
    index = _corrupt_copy(synth, tmp_path)
    strict_cfg = _cfg(tmp_path, f"data.index={index}", "data.max_bad_fraction=0.0")
    with (
        pytest.warns(UserWarning, match="skipping bad patch"),
        pytest.raises(
            TrainingError, match=r"1 of 6 training patches were unreadable.*max_bad_fraction"
        ),
    ):
        train(strict_cfg)

    cfg = _cfg(
        tmp_path, f"data.index={index}", "data.max_bad_fraction=0.5", "train.run_name=tolerant"
    )
    with pytest.warns(UserWarning, match="skipping bad patch"):
        summary = train(cfg)
    assert summary["skipped"] == 2  # the bad patch, drawn once in each of the 2 epochs
    assert summary["steps"] == 4 and math.isfinite(summary["train_loss"])


def test_nosar_l1_variant_trains(synth: dict[str, Path], tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, f"data.index={synth['index']}", "model.name=dsen2cr-nosar", "loss.name=l1")
    summary = train(cfg)
    assert summary["steps"] == 4 and math.isfinite(summary["train_loss"])
    model = build_model("dsen2cr-nosar", num_layers=2, feature_size=16)
    load_checkpoint(Path(summary["run_dir"]), model)  # the saved weights fit the no-SAR model
    assert model.config.include_sar is False
    # The L1 loss needs no mask, but validation's area split does: the recon/reprod columns
    # are computed with the cloud mask (not over an all-clear mask, which gives NaN recon).
    val = {n: v for _, split, n, v in read_metrics_csv(Path(summary["run_dir"]) / "metrics.csv")
           if split == "val"}  # fmt: skip
    assert val["val_cloud_fraction"] > 0 and math.isfinite(val["val_mae_recon"])


def test_real_sen12mscr_end_to_end(sen12mscr_root: Path, tmp_path: Path) -> None:
    result = build_index(sen12mscr_root)
    index = tmp_path / "index.csv"
    write_index(result, index)
    common = (f"data.root={sen12mscr_root}", "model.name=dsen2cr-nosar", "loss.name=carl",
              "train.epochs=1")  # fmt: skip
    # The sample's 26 cloudy/clear pairs are all in the train split (its val rows are lone
    # files): training goes on without validation, and says so.
    with pytest.warns(UserWarning, match="no validation data"):
        summary = train(_cfg(tmp_path, f"data.index={index}", *common))
    assert summary["steps"] == 7  # 27 usable pairs (26 + one triplet) / batch 4
    assert math.isfinite(summary["train_loss"]) and summary["best_val_loss"] is None
    # The paper's CARL mask of each crop, computed on the fly: no cache written.
    assert not index.with_name("index.masks.npy").exists()

    # Two pairs moved to val: validation on whole 256x256 patches runs end to end too.
    rows = list(csv.reader(io.StringIO(index.read_text())))
    for r in [r for r in rows[1:] if r[5] and r[6]][:2]:
        r[3] = "val"
    index2 = tmp_path / "index2.csv"
    with open(index2, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    summary = train(
        _cfg(tmp_path, f"data.index={index2}", *common, "train.run_name=v", "data.mask=cached")
    )
    assert summary["steps"] == 7  # 25 training pairs / batch 4
    assert summary["best_val_loss"] is not None and math.isfinite(summary["best_val_loss"])
    assert index2.with_name("index2.masks.npy").is_file()  # the full-patch masks, cached once


def _counting_optimizer(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch the loop's build_optimizer so every optimizer.step() appends to the returned list."""
    calls: list[int] = []
    real = loop.build_optimizer

    def build(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        opt = real(*args, **kwargs)
        opt.register_step_post_hook(lambda *_: calls.append(1))
        return opt

    monkeypatch.setattr(loop, "build_optimizer", build)
    return calls


def test_all_bad_batch_takes_no_optimizer_step(
    synth: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _corrupt_copy(synth, tmp_path)
    calls = _counting_optimizer(monkeypatch)
    # Batch 1: the bad patch is a whole (all-bad) batch, once in each of the 2 epochs.
    cfg = _cfg(tmp_path, f"data.index={index}", "data.max_bad_fraction=0.5", "train.batch_size=1")
    with pytest.warns(UserWarning, match="skipping bad patch"):
        summary = train(cfg)
    assert summary["steps"] == 12 and summary["skipped"] == 2
    assert len(calls) == 10  # 12 steps, 2 of them without data: no update, no Nadam state
    model = build_model("dsen2cr", num_layers=2, feature_size=16)
    opt = loop.build_optimizer(model.parameters(), cfg.optim)
    load_checkpoint(Path(summary["run_dir"]), model, opt)
    assert all(int(st["step"]) == 10 for st in opt.state_dict()["state"].values())


def test_bad_patch_counts_survive_a_checkpoint_between_log_steps(
    synth: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _corrupt_copy(synth, tmp_path)
    # Batch 1, 6 steps per epoch; logs (and folds the counts) only at epoch ends, checkpoints
    # at step 5 in between: the bad patch is drawn in epoch 0 before step 5 (seed 42).
    common = (f"data.index={index}", "data.max_bad_fraction=0.5", "train.batch_size=1",
              "train.log_every=100", "train.checkpoint_every=5")  # fmt: skip
    with pytest.warns(UserWarning, match="skipping bad patch"):
        full = train(_cfg(tmp_path, *common, "train.run_name=full"))
    assert full["skipped"] == 2

    real_save = loop.save_checkpoint

    def save_then_die(run_dir, **kwargs):  # noqa: ANN001, ANN003, ANN202
        real_save(run_dir, **kwargs)
        if kwargs["step"] == 5:
            raise KeyboardInterrupt("killed right after the step-5 checkpoint")

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    cfg = _cfg(tmp_path, *common, "train.run_name=cut")
    with pytest.warns(UserWarning, match="skipping bad patch"), pytest.raises(KeyboardInterrupt):
        train(cfg)
    model = build_model("dsen2cr", num_layers=2, feature_size=16)
    state = load_checkpoint(tmp_path / "cut", model)
    assert state["step"] == 5
    # The skip happened between log steps; the checkpoint holds it anyway.
    assert state["extra"]["seen"] == 5 and state["extra"]["skipped"] == 1

    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    with pytest.warns(UserWarning, match="skipping bad patch"):
        resumed = train(cfg, resume=tmp_path / "cut")
    assert resumed["skipped"] == full["skipped"] == 2
    end_full = load_checkpoint(tmp_path / "full", model)["extra"]
    end_cut = load_checkpoint(tmp_path / "cut", model)["extra"]
    assert end_cut["seen"] == end_full["seen"] == 12
    assert end_cut["skipped"] == end_full["skipped"] == 2


@pytest.mark.parametrize("nll", [True, False])
def test_uncrtaints_recipes_train(synth: dict[str, Path], tmp_path: Path, nll: bool) -> None:
    preset = "uncrtaints_sar_nll" if nll else "uncrtaints_sar_l2"
    cfg = load_config(preset, [
        f"data.packed={synth['packed']}", "data.crop_size=32", "data.num_workers=0",
        "model.feature_size=8", "model.num_layers=1", "train.epochs=1", "train.log_every=1",
        f"train.out_dir={tmp_path}", "train.run_name=run",
    ])  # fmt: skip
    assert cfg.optim.name == "adam" and cfg.optim.lr == 1e-3 and cfg.train.batch_size == 4
    summary = train(cfg)
    assert math.isfinite(summary["train_loss"])
    model = build_model("uncrtaints", encoder_widths=[8], decoder_widths=[8],
                        covmode="diag" if nll else None)  # fmt: skip
    load_checkpoint(Path(summary["run_dir"]), model)
    assert model.predicts_variance is nll
    val = {n: v for _, split, n, v in read_metrics_csv(Path(summary["run_dir"]) / "metrics.csv")
           if split == "val"}  # fmt: skip
    # Metrics on the means (reflectance: UnCRtainTS's scaling), the loss on means + variances.
    assert 0 < val["val_mae"] < 1 and math.isfinite(val["val_loss"])


def test_nll_loss_needs_an_uncrtaints_with_variance() -> None:
    with pytest.raises(ValueError, match="mgnll"):
        load_config("uncrtaints_sar_nll", ["model.variance=false"])
    with pytest.raises(ValueError, match="mgnll"):
        load_config("dsen2cr_sar_carl", ["loss.name=mgnll"])


def test_multi_temporal_recipe_trains_on_series(tmp_path: Path) -> None:
    """uncrtaints_mt_sar_nll on a SEN12MS-CR-TS copy (one training and one validation ROI):
    3 dates per sample, drawn anew per epoch; the model records them; validation scored."""
    from cloudfree.cli import main
    from cloudfree.models.uncrtaints_mt import UnCRtainTSMT
    from tests.data.timeseries.test_dataset import _copy

    root = tmp_path / "ts"
    _copy(root, patches=(0,), size=32, roi="ROIs1970/21")  # official train split
    _copy(root, patches=(0,), size=32, roi="ROIs2017/22")  # official val split
    assert main(["index", str(root), "--out", str(tmp_path / "ts.csv")]) == 0
    cfg = load_config("uncrtaints_mt_sar_nll", [
        f"data.index={tmp_path / 'ts.csv'}", "data.coverage=dsen2cr", "data.num_workers=0",
        "model.feature_size=16", "model.num_layers=1", "train.epochs=2", "train.log_every=1",
        f"train.out_dir={tmp_path}", "train.run_name=mt",
    ])  # fmt: skip
    assert cfg.data.input_t == 3 and cfg.model.name == "uncrtaints-mt"
    summary = train(cfg)
    assert math.isfinite(summary["train_loss"])
    model = build_model("uncrtaints-mt", encoder_widths=[16], decoder_widths=[16], input_t=3)
    load_checkpoint(Path(summary["run_dir"]), model)
    assert isinstance(model, UnCRtainTSMT) and model.predicts_variance
    val = {n: v for _, split, n, v in read_metrics_csv(Path(summary["run_dir"]) / "metrics.csv")
           if split == "val"}  # fmt: skip
    assert 0 < val["val_mae"] < 1 and val["val_patches"] == 1
    # the same from a pack of the index
    assert main(["pack", str(tmp_path / "ts.csv"), "--out", str(tmp_path / "packed")]) == 0
    cfg = load_config("uncrtaints_mt_sar_nll", [
        f"data.packed={tmp_path / 'packed'}", "data.coverage=dsen2cr", "data.num_workers=0",
        "model.feature_size=16", "model.num_layers=1", "train.epochs=1",
        f"train.out_dir={tmp_path}", "train.run_name=mt_packed",
    ])  # fmt: skip
    assert math.isfinite(train(cfg)["train_loss"])
    # a temporal model needs series, a one-date model one date
    with pytest.raises(ValueError, match="data.input_t"):
        load_config("uncrtaints_mt_sar_nll", ["data.input_t=1"])
    with pytest.raises(ValueError, match="data.input_t"):
        load_config("uncrtaints_sar_nll", ["data.input_t=3"])
    bad = load_config("uncrtaints_mt_sar_l2", [f"data.packed={tmp_path}", "data.num_workers=0",
                                               f"train.out_dir={tmp_path}", "train.run_name=b"])  # fmt: skip
    with pytest.raises(Exception, match="is not a SEN12MS-CR-TS index"):
        train(bad)
