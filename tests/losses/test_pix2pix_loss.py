"""pix2pix objective against hand-worked values, and one adversarial training step."""

from __future__ import annotations

import math

import pytest
import torch

from cloudfree.config import load_config
from cloudfree.losses.pix2pix import Pix2PixLoss
from cloudfree.models.pix2pix import PatchGANDiscriminator, Pix2PixGenerator
from cloudfree.train.optim import build_optimizer

LN2 = math.log(2.0)


def test_gan_loss_hand_worked() -> None:
    loss = Pix2PixLoss()
    zeros = torch.zeros(2, 1, 3, 3)
    # Logit 0 is probability 1/2: BCE = ln 2 against either label.
    assert loss.gan_loss(zeros, True).item() == pytest.approx(LN2)
    assert loss.gan_loss(zeros, False).item() == pytest.approx(LN2)
    # Logit ln 3 is probability 3/4: -ln(3/4) against real, -ln(1/4) against fake.
    x = torch.full((1, 1, 2, 2), math.log(3.0))
    assert loss.gan_loss(x, True).item() == pytest.approx(math.log(4.0 / 3.0))
    assert loss.gan_loss(x, False).item() == pytest.approx(math.log(4.0))
    # LSGAN: squared error to 1 / 0.
    ls = Pix2PixLoss(gan_mode="lsgan")
    assert ls.gan_loss(torch.full((1, 1, 2, 2), 0.25), True).item() == 0.5625
    assert ls.gan_loss(torch.full((1, 1, 2, 2), 0.25), False).item() == 0.0625


def test_discriminator_loss_is_halved_sum() -> None:
    loss = Pix2PixLoss()
    zeros = torch.zeros(1, 1, 4, 4)
    assert loss.discriminator_loss(zeros, zeros).item() == pytest.approx(LN2)
    real = torch.full((1, 1, 2, 2), math.log(3.0))
    fake = torch.full((1, 1, 2, 2), -math.log(3.0))  # D says "fake" with probability 3/4
    expected = 0.5 * (math.log(4.0 / 3.0) + math.log(4.0 / 3.0))
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(expected)


def test_generator_loss_hand_worked_and_lambda() -> None:
    pred = torch.full((1, 13, 2, 2), 1.0, requires_grad=True)
    target = torch.full((1, 13, 2, 2), 1.25)
    logits = torch.zeros(1, 1, 1, 1)
    total, parts = Pix2PixLoss().generator_loss(logits, pred, target)
    assert set(parts) == {"gan", "l1"}
    assert parts["gan"].item() == pytest.approx(LN2)
    assert parts["l1"].item() == 0.25
    assert total.item() == pytest.approx(LN2 + 100 * 0.25)
    assert total.ndim == 0 and not parts["l1"].requires_grad
    # d total / d pred = lambda * sign(pred - target) / N = -100 / 52 everywhere.
    total.backward()
    torch.testing.assert_close(pred.grad, torch.full_like(pred, -100.0 / 52.0))
    total10, _ = Pix2PixLoss(lambda_l1=10.0).generator_loss(logits, pred, target)
    assert total10.item() == pytest.approx(LN2 + 2.5)
    total0, _ = Pix2PixLoss(lambda_l1=0.0).generator_loss(logits, pred, target)
    assert total0.item() == pytest.approx(LN2)


def test_argument_checks() -> None:
    with pytest.raises(ValueError, match="lambda_l1"):
        Pix2PixLoss(lambda_l1=-1.0)
    with pytest.raises(ValueError, match="gan_mode"):
        Pix2PixLoss(gan_mode="wgan")
    loss = Pix2PixLoss()
    with pytest.raises(ValueError, match="same shape"):
        loss.generator_loss(
            torch.zeros(1, 1, 2, 2), torch.zeros(1, 13, 4, 4), torch.zeros(1, 13, 2, 2)
        )
    with pytest.raises(ValueError, match="floating"):
        loss.discriminator_loss(torch.zeros(1, 1, 2, 2, dtype=torch.long), torch.zeros(1, 1, 2, 2))


def test_one_adversarial_step_updates_both_networks() -> None:
    torch.manual_seed(0)
    gen = Pix2PixGenerator(include_sar=True, ngf=4, num_downs=5)
    disc = PatchGANDiscriminator.for_generator(gen, ndf=4)
    loss = Pix2PixLoss()
    optim = load_config("pix2pix").optim  # the trainer's settings for both networks
    opt_g, opt_d = (
        build_optimizer(gen.parameters(), optim),
        build_optimizer(disc.parameters(), optim),
    )
    for opt in (opt_g, opt_d):
        assert opt.defaults["lr"] == 2e-4 and opt.defaults["betas"] == (0.5, 0.999)
    assert {id(p) for p in opt_g.param_groups[0]["params"]} == {id(p) for p in gen.parameters()}
    assert {id(p) for p in opt_d.param_groups[0]["params"]} == {id(p) for p in disc.parameters()}

    s2, s1, target = torch.rand(2, 13, 32, 32), torch.rand(2, 2, 32, 32), torch.rand(2, 13, 32, 32)
    g0 = [p.detach().clone() for p in gen.parameters()]
    d0 = [p.detach().clone() for p in disc.parameters()]

    # pix2pix order: D step on (real, detached fake), then G step through the updated D.
    cond = gen.condition(s2, s1)
    fake = gen(s2, s1)
    opt_d.zero_grad()
    loss_d = loss.discriminator_loss(disc(cond, target), disc(cond, fake.detach()))
    loss_d.backward()
    opt_d.step()
    d1 = [p.detach().clone() for p in disc.parameters()]
    opt_g.zero_grad()
    loss_g, parts = loss.generator_loss(disc(cond, fake), fake, target)
    loss_g.backward()
    opt_g.step()

    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    assert all(not torch.equal(a, b) for a, b in zip(d0, d1, strict=True))
    assert all(not torch.equal(a, p) for a, p in zip(g0, gen.parameters(), strict=True))
    # The G step leaves D's weights alone (its gradients are computed but not applied).
    assert all(torch.equal(a, p) for a, p in zip(d1, disc.parameters(), strict=True))
    assert parts["l1"].item() > 0
