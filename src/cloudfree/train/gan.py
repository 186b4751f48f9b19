"""The adversarial half of pix2pix training: the discriminator, its optimiser and its step.

The training loop (:mod:`cloudfree.train.loop`) treats the pix2pix generator like any other
model; when ``loss.name == "pix2pix"`` it holds an :class:`Adversary` too, and each step runs in
junyanz's order (``pix2pix_model.optimize_parameters``)::

    pred = G(cloudy [, s1])                       # one generator forward
    D step:  L_D = 0.5 (GAN(D(c, T), 1) + GAN(D(c, pred.detach()), 0)); Adam step of D
    G step:  L_G = GAN(D(c, pred), 1) + 100 |pred - T|   (D frozen);     Adam step of G

with ``c`` the generator's input (the condition). Under ``torchrun`` the discriminator is not
wrapped in ``DistributedDataParallel``: DDP does not allow the two forwards (fake, then real,
as junyanz runs them, each with its own BatchNorm statistics) before one backward, so its
gradients are averaged with one explicit all-reduce, and its BatchNorm buffers are broadcast
from rank 0 before each step (what DDP's ``broadcast_buffers`` does). A rank whose batch was
unreadable joins with a zero loss, and the update is the mean over the ranks that had data (see
``loop._sync_step``), exactly as for the generator.

Settings (spec section 9, ASSUMED: the paper gives none): 70x70 PatchGAN (``ndf`` 64, 3 layers),
the generator's optimiser settings (Adam 2e-4, betas (0.5, 0.999)) and LR schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from cloudfree.config import Config
from cloudfree.losses.pix2pix import Pix2PixLoss
from cloudfree.models.pix2pix import PatchGANDiscriminator, Pix2PixGenerator
from cloudfree.train.checkpoint import unwrap_model
from cloudfree.train.optim import build_optimizer

#: Function doing the cross-rank loss reduction and gradient rescaling (``loop._sync_step``).
SyncFn = Callable[[nn.Module, Tensor | None, int], tuple[float, int]]


class Adversary:
    """Discriminator + optimiser + pix2pix objective, for one rank.

    Args:
        generator: the (unwrapped) pix2pix generator; fixes the condition channels.
        cfg: the run's config (``loss.lambda_l1``, ``loss.gan_mode``, ``optim``).
        device: where the discriminator lives.
        world: number of processes (> 1: the discriminator is wrapped in DDP).
    """

    def __init__(self, generator: nn.Module, cfg: Config, device: torch.device, world: int) -> None:
        gen = unwrap_model(generator)
        if not isinstance(gen, Pix2PixGenerator):
            raise ValueError(
                f"loss.name=pix2pix needs a pix2pix generator, got {type(gen).__name__} "
                f"(model.name={cfg.model.name!r})"
            )
        disc: nn.Module = PatchGANDiscriminator.for_generator(gen).to(device)
        self.optimizer = build_optimizer(disc.parameters(), cfg.optim)
        self.discriminator = disc
        self.objective = Pix2PixLoss(lambda_l1=cfg.loss.lambda_l1, gan_mode=cfg.loss.gan_mode)
        self.world = world

    def _distributed(self) -> bool:
        return (
            self.world > 1
            and torch.distributed.is_available()
            and torch.distributed.is_initialized()
        )

    def _broadcast_buffers(self) -> None:
        for buf in self.discriminator.buffers():
            torch.distributed.broadcast(buf, src=0)

    def _average_gradients(self) -> None:
        """Mean of the discriminator's gradients over all ranks (one flat all-reduce)."""
        grads = [p.grad for p in self.discriminator.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def _requires_grad(self, flag: bool) -> None:
        for p in self.discriminator.parameters():
            p.requires_grad_(flag)

    def discriminator_step(
        self, condition: Tensor, pred: Tensor, target: Tensor | None, sync: SyncFn
    ) -> tuple[float, int]:
        """One update of D on real ``(condition, target)`` and fake ``(condition, pred)``.

        Args:
            condition: (B, C, H, W) generator input.
            pred: (B, 13, H, W) generator output (detached here).
            target: (B, 13, H, W) cloud-free target, or None on a rank whose batch was all
                bad (it then only joins the all-reduce with a zero loss).
            sync: the loop's loss/gradient reduction over ranks.

        Returns:
            ``(d_loss, ranks_with_data)`` as ``sync`` returns them; D is stepped only when
            some rank had data.
        """
        self._requires_grad(True)
        if self._distributed():
            self._broadcast_buffers()
        self.optimizer.zero_grad(set_to_none=True)
        fake = self.discriminator(condition.detach(), pred.detach().float())
        if target is None:
            loss = fake.float().sum() * 0.0
        else:
            real = self.discriminator(condition.detach(), target.float())
            loss = self.objective.discriminator_loss(real.float(), fake.float())
        loss.backward()
        if self._distributed():
            self._average_gradients()
        value, ranks = sync(self.discriminator, None if target is None else loss, self.world)
        if ranks > 0:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return value, ranks

    def generator_loss(self, condition: Tensor, pred: Tensor, target: Tensor) -> Tensor:
        """``GAN(D(c, pred), real) + lambda_l1 * |pred - target|`` with D frozen (0-dim tensor)."""
        self._requires_grad(False)
        logits = self.discriminator(condition, pred)
        loss, _ = self.objective.generator_loss(logits.float(), pred.float(), target.float())
        return loss

    def set_lr(self, lr: float) -> None:
        """Set the discriminator's learning rate (the loop's schedule, same as G's)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        """Discriminator weights and optimiser state, for the checkpoint's ``aux``."""
        return {
            "discriminator": unwrap_model(self.discriminator).state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (weights must fit exactly)."""
        unwrap_model(self.discriminator).load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
