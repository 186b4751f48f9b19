"""pix2pix training (spec section 9): the adversarial step, the LR schedule, checkpoints, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import cloudfree.train.loop as loop
from cloudfree.config import load_config
from cloudfree.methods.load import load_method
from cloudfree.models import build_model
from cloudfree.models.pix2pix import PatchGANDiscriminator
from cloudfree.runs import find_latest
from cloudfree.train.checkpoint import load_checkpoint
from cloudfree.train.gan import Adversary
from cloudfree.train.optim import build_optimizer, lr_factor
from cloudfree.train.run_log import read_metrics_csv


def _tiny(out: Path, name: str, packed: Path, *extra: str) -> list[str]:
    # U-Net of 5 levels (32-px crops are its minimum), width 8; batch 2 over 6 patches.
    return [
        f"data.packed={packed}", f"train.out_dir={out}", f"train.run_name={name}",
        "model.num_layers=5", "model.feature_size=8", "data.crop_size=32", "data.num_workers=0",
        "train.batch_size=2", "train.epochs=2", "optim.decay_epochs=1", "train.checkpoint_every=2",
        "train.log_every=1", "train.deterministic=true", *extra,
    ]  # fmt: skip


def test_lr_factor_is_junyanz_linear_policy() -> None:
    # junyanz: 1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1), n_epochs = 8 - 4 = 4
    assert [lr_factor(e, 8, 4) for e in range(8)] == pytest.approx([1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    assert lr_factor(5, 8, 0) == 1.0  # the paper: constant


def test_pix2pix_preset_is_the_assumed_recipe() -> None:
    cfg = load_config("pix2pix")
    assert (cfg.model.name, cfg.loss.name, cfg.optim.name) == ("pix2pix", "pix2pix", "adam")
    assert cfg.optim.lr == 2e-4 and cfg.optim.betas == (0.5, 0.999)
    assert cfg.loss.lambda_l1 == 100.0 and cfg.loss.gan_mode == "vanilla"
    assert cfg.model.build_kwargs() == {"num_downs": 7, "ngf": 64}
    with pytest.raises(ValueError, match="pix2pix models train with loss.name=pix2pix"):
        load_config("pix2pix", ["loss.name=carl"])
    with pytest.raises(ValueError, match="decay epochs"):
        load_config("pix2pix", ["train.epochs=2"])


def test_discriminator_step_learns_to_separate_real_from_fake() -> None:
    torch.manual_seed(0)
    cfg = load_config("pix2pix", ["model.num_layers=5", "model.feature_size=8", "optim.lr=5e-4"])
    gen = build_model("pix2pix", num_downs=5, ngf=8)
    adv = Adversary(gen, cfg, torch.device("cpu"), world=1)
    cond = torch.rand(2, 15, 32, 32)
    real = torch.rand(2, 13, 32, 32)
    fake = real + 0.5  # a constant offset the discriminator can spot

    def sync(module, loss, world):  # noqa: ANN001, ANN202 (single process: no reduction)
        return float(loss.detach()), 1

    losses = [adv.discriminator_step(cond, fake, real, sync)[0] for _ in range(12)]
    assert max(losses[-3:]) < 0.2 * losses[0]  # from ~0.7 (log 2: undecided) to near 0
    # The generator loss sees D frozen: no gradient reaches D, one reaches G's output.
    pred = fake.clone().requires_grad_(True)
    loss = adv.generator_loss(cond, pred, real)
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in adv.discriminator.parameters())
    # L1 part: 100 x mean |pred - target| = 100 x 0.5 = 50 is in the total.
    assert float(loss.detach()) > 50.0


def test_pix2pix_trains_checkpoints_and_evaluates(packed: Path, tmp_path: Path) -> None:
    cfg = load_config("pix2pix", _tiny(tmp_path, "p2p", packed))
    summary = loop.train(cfg)
    run_dir = Path(summary["run_dir"])
    assert summary["steps"] == 6 and torch.isfinite(torch.tensor(summary["train_loss"]))
    # LR: epoch 0 at 2e-4, epoch 1 (the one decay epoch) at 2e-4 x (1 - 1/2).
    lrs = {int(s): v for s, split, n, v in read_metrics_csv(run_dir / "metrics.csv")
           if split == "train" and n == "lr"}  # fmt: skip
    assert lrs[3] == pytest.approx(2e-4) and lrs[6] == pytest.approx(1e-4)
    # The checkpoint holds the discriminator and its optimiser; the generator is the model.
    gen = build_model("pix2pix", num_downs=5, ngf=8)
    info = load_checkpoint(run_dir, gen, build_optimizer(gen.parameters(), cfg.optim))
    disc = info["aux"]["adversary"]["discriminator"]
    fresh = PatchGANDiscriminator.for_generator(gen)
    assert disc.keys() == fresh.state_dict().keys()
    assert any(not torch.equal(disc[k], v) for k, v in fresh.state_dict().items())
    assert info["aux"]["adversary"]["optimizer"]["state"]  # Adam moments saved
    # evaluate understands the run folder: a pix2pix generator predicting 64-px patches.
    method = load_method(str(run_dir), device="cpu")
    assert method.include_sar
    out = method.predict({"s2_cloudy": torch.rand(1, 13, 64, 64), "s1": torch.rand(1, 2, 64, 64)})
    assert out.shape == (1, 13, 64, 64) and torch.isfinite(out).all()


def test_pix2pix_resume_is_bitwise_identical(
    packed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = loop.train(load_config("pix2pix", _tiny(tmp_path, "full", packed)))
    real_clip, calls = loop.clip_gradients, {"n": 0}

    def dying_clip(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 5:  # inside step 5: the last checkpoint is step 4 (in epoch 1)
            raise KeyboardInterrupt("simulated kill")
        return real_clip(*args, **kwargs)

    cfg = load_config("pix2pix", _tiny(tmp_path, "killed", packed))
    monkeypatch.setattr(loop, "clip_gradients", dying_clip)
    with pytest.raises(KeyboardInterrupt):
        loop.train(cfg)
    assert find_latest(tmp_path / "killed").name == "step-00000004"
    monkeypatch.setattr(loop, "clip_gradients", real_clip)
    loop.train(cfg, resume=tmp_path / "killed")

    def final(run_dir: Path) -> tuple[dict, dict]:
        gen = build_model("pix2pix", num_downs=5, ngf=8)
        info = load_checkpoint(run_dir, gen, restore_rng=False)
        return gen.state_dict(), info["aux"]["adversary"]["discriminator"]

    (ga, da), (gb, db) = final(Path(full["run_dir"])), final(tmp_path / "killed")
    for a, b in ((ga, gb), (da, db)):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k


def test_resuming_a_non_gan_checkpoint_as_pix2pix_is_refused(packed: Path, tmp_path: Path) -> None:
    # A DSen2-CR run folder continued with the pix2pix config: refused with a clear message.
    loop.train(load_config("debug_tiny", [
        f"data.packed={packed}", f"train.out_dir={tmp_path}", "train.run_name=d",
        "train.epochs=1", "data.num_workers=0",
    ]))  # fmt: skip
    with pytest.raises(Exception, match="do not fit Pix2PixGenerator"):
        loop.train(load_config("pix2pix", _tiny(tmp_path, "d", packed)), resume=tmp_path / "d")
