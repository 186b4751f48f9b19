"""Nadam against Keras 2.2.4's Nadam, and gradient clipping that really clips.

The Keras reference below is ``keras/optimizers.py`` ``Nadam.get_updates`` of Keras 2.2.4 (the
version DSen2-CR trained with, spec section 7), transcribed to numpy float64:

    t = iterations + 1
    momentum_cache_t   = beta_1 * (1 - 0.5 * 0.96 ** (t * schedule_decay))
    momentum_cache_t_1 = beta_1 * (1 - 0.5 * 0.96 ** ((t + 1) * schedule_decay))
    m_schedule_new  = m_schedule * momentum_cache_t            # m_schedule starts at 1
    m_schedule_next = m_schedule * momentum_cache_t * momentum_cache_t_1
    g_prime   = g / (1 - m_schedule_new)
    m_t       = beta_1 * m + (1 - beta_1) * g
    m_t_prime = m_t / (1 - m_schedule_next)
    v_t       = beta_2 * v + (1 - beta_2) * g ** 2
    v_t_prime = v_t / (1 - beta_2 ** t)
    m_t_bar   = (1 - momentum_cache_t) * g_prime + momentum_cache_t_1 * m_t_prime
    p_t       = p - lr * m_t_bar / (sqrt(v_t_prime) + epsilon)

torch.optim.NAdam computes the same expression (``mu_product`` = ``m_schedule``; eps added to
``sqrt(v / (1 - beta2^t))``, as in Keras). We follow torch. Where they differ, found here:

* torch keeps ``mu_product`` in a scalar tensor of the *default* dtype (float32 unless
  ``torch.set_default_dtype(torch.float64)``), so with float64 parameters and the float32 default
  the bias correction 1 / (1 - mu_product) carries a float32 rounding: over 20 steps the
  parameters differ by ~4e-9 relative (float32 eps is 6e-8). With a
  float64 default dtype the two agree to float64 rounding (~1e-15 relative). Keras itself held
  ``m_schedule`` and everything else in float32, so neither is "more exact" than the paper's run.
* torch updates the first moment with ``lerp`` (m + (1 - beta1)(g - m)) instead of
  beta1 m + (1 - beta1) g: a last-bit rounding difference only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from cloudfree.config import OptimConfig
from cloudfree.train.optim import build_optimizer, clip_gradients

# The paper's settings (spec section 7), spelt out independently of OptimConfig's defaults.
LR, BETA1, BETA2, EPS, SCHEDULE_DECAY = 7e-5, 0.9, 0.999, 1e-8, 0.004


def keras_nadam(p0: np.ndarray, grads: list[np.ndarray], lr: float, eps: float) -> np.ndarray:
    """Keras 2.2.4 Nadam in float64 numpy; returns the parameters after each step (steps, n)."""
    p = p0.astype(np.float64).copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    m_schedule = 1.0
    out = []
    for iterations, g in enumerate(grads):
        t = iterations + 1
        momentum_cache_t = BETA1 * (1.0 - 0.5 * (0.96 ** (t * SCHEDULE_DECAY)))
        momentum_cache_t_1 = BETA1 * (1.0 - 0.5 * (0.96 ** ((t + 1) * SCHEDULE_DECAY)))
        m_schedule_new = m_schedule * momentum_cache_t
        m_schedule_next = m_schedule * momentum_cache_t * momentum_cache_t_1
        m_schedule = m_schedule_new
        g_prime = g / (1.0 - m_schedule_new)
        m = BETA1 * m + (1.0 - BETA1) * g
        m_t_prime = m / (1.0 - m_schedule_next)
        v = BETA2 * v + (1.0 - BETA2) * g**2
        v_t_prime = v / (1.0 - BETA2**t)
        m_t_bar = (1.0 - momentum_cache_t) * g_prime + momentum_cache_t_1 * m_t_prime
        p = p - lr * m_t_bar / (np.sqrt(v_t_prime) + eps)
        out.append(p.copy())
    return np.stack(out)


def _gradient_sequence(steps: int, n: int) -> list[np.ndarray]:
    # Mixed signs and magnitudes 1e-4..1e1, so eps and both bias corrections all matter.
    rng = np.random.default_rng(42)
    scale = 10.0 ** rng.uniform(-4, 1, size=n)
    return [rng.standard_normal(n) * scale for _ in range(steps)]


def torch_nadam(p0: np.ndarray, grads: list[np.ndarray], lr: float, eps: float) -> np.ndarray:
    """Our optimiser, fed the same gradients; returns the parameters after each step."""
    param = nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = build_optimizer([param], OptimConfig(lr=lr, eps=eps))
    out = []
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append(param.detach().numpy().copy())
    return np.stack(out)


@pytest.fixture
def float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def test_build_optimizer_uses_the_published_settings() -> None:
    opt = build_optimizer([nn.Parameter(torch.zeros(3))], OptimConfig())
    assert isinstance(opt, torch.optim.NAdam)
    group = opt.param_groups[0]
    assert group["lr"] == LR
    assert group["betas"] == (BETA1, BETA2)
    assert group["eps"] == EPS
    assert group["momentum_decay"] == SCHEDULE_DECAY
    assert group["weight_decay"] == 0.0


@pytest.mark.parametrize("lr", [LR, 1e-2])  # the paper's lr, and one large enough to move far
def test_nadam_matches_keras_in_float64(float64_default, lr: float) -> None:
    """With float64 scalars too, torch's NAdam is Keras's Nadam to float64 rounding."""
    # Start at 0 so the parameters are the sum of the steps: a relative tolerance then measures
    # the updates themselves (from p0 = 1, float64 rounding of p alone would be ~1e-12 of a step).
    p0 = np.zeros(7)
    grads = _gradient_sequence(20, 7)
    ref = keras_nadam(p0, grads, lr, EPS)
    ours = torch_nadam(p0, grads, lr, EPS)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0)
    assert np.abs(ref[-1]).max() > 3 * lr  # the parameters really moved (random-sign gradients)


def test_nadam_with_float32_default_differs_only_by_the_float32_mu_product() -> None:
    """Default dtype float32: torch rounds mu_product to float32 (measured: 3.6e-9 relative)."""
    p0 = np.zeros(7)
    grads = _gradient_sequence(20, 7)
    ref = keras_nadam(p0, grads, LR, EPS)
    ours = torch_nadam(p0, grads, LR, EPS)
    rel = np.abs(ours - ref).max() / np.abs(ref).max()
    assert rel < 1e-6
    # The difference is the float32 scalar, not a formula difference: it is far above float64
    # rounding, so this test would notice if torch changed its bookkeeping to float64.
    assert rel > 1e-12


def test_keras_reference_first_step_by_hand() -> None:
    """Guard the reference itself: step 1 worked by hand for a scalar gradient g."""
    g = 0.5
    mu1 = BETA1 * (1 - 0.5 * 0.96 ** (1 * SCHEDULE_DECAY))
    mu2 = BETA1 * (1 - 0.5 * 0.96 ** (2 * SCHEDULE_DECAY))
    m_bar = (1 - mu1) * g / (1 - mu1) + mu2 * (1 - BETA1) * g / (1 - mu1 * mu2)
    v_hat = (1 - BETA2) * g**2 / (1 - BETA2)
    expected = 1.0 - LR * m_bar / (math.sqrt(v_hat) + EPS)
    got = keras_nadam(np.array([1.0]), [np.array([g])], LR, EPS)[0, 0]
    assert got == pytest.approx(expected, rel=0, abs=1e-15)
    # mu1 ~ 0.45007, mu2 ~ 0.45014, so the first step is lr * (1 + 0.1 mu2 / (1 - mu1 mu2))
    # ~ 1.0565 lr (|g| cancels against sqrt(v_hat) = |g|).
    assert 1.0 - got == pytest.approx(LR * 1.0565, rel=1e-4)


def test_clip_gradients_clips_and_returns_the_pre_clip_norm() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    for i, p in enumerate(model.parameters()):
        p.grad = torch.full_like(p, float(i + 1))
    expected = math.sqrt(sum(float((p.grad**2).sum()) for p in model.parameters()))
    before = [p.grad.clone() for p in model.parameters()]

    norm = clip_gradients(model, max_norm=1.0)

    assert norm.shape == () and norm.dtype == torch.float32
    assert float(norm) == pytest.approx(expected, rel=1e-6)
    after = math.sqrt(sum(float((p.grad**2).sum()) for p in model.parameters()))
    assert after <= 1.0 + 1e-5
    assert after == pytest.approx(1.0, rel=1e-5)
    # Direction kept: every gradient scaled by the same factor 1 / expected.
    for b, p in zip(before, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, b / expected, rtol=1e-5, atol=1e-7)


def test_clip_gradients_leaves_small_gradients_alone() -> None:
    p = nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([0.3, 0.0, 0.4])
    norm = clip_gradients([p], max_norm=1.0)
    assert float(norm) == pytest.approx(0.5)
    torch.testing.assert_close(p.grad, torch.tensor([0.3, 0.0, 0.4]))


def test_clip_gradients_none_only_measures() -> None:
    a = nn.Parameter(torch.zeros(2))
    b = nn.Parameter(torch.zeros(1))
    c = nn.Parameter(torch.zeros(5))  # no gradient: ignored
    a.grad = torch.tensor([3.0, 0.0])
    b.grad = torch.tensor([40.0])
    norm = clip_gradients([a, b, c], max_norm=None)
    assert float(norm) == pytest.approx(math.sqrt(9 + 1600))
    torch.testing.assert_close(b.grad, torch.tensor([40.0]))  # untouched
    assert float(clip_gradients(c, None)) == 0.0


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_clip_gradients_rejects_bad_max_norm(bad: float) -> None:
    p = nn.Parameter(torch.zeros(1))
    p.grad = torch.ones(1)
    with pytest.raises(ValueError, match="max_norm"):
        clip_gradients([p], bad)


def test_build_optimizer_rejects_unknown_name() -> None:
    cfg = OptimConfig()
    object.__setattr__(cfg, "name", "sgd")  # bypass validation to reach build_optimizer's check
    with pytest.raises(ValueError, match="sgd"):
        build_optimizer([nn.Parameter(torch.zeros(1))], cfg)
