"""UnCRtainTS's losses against independent references (torch's own Gaussian NLL and MSE)."""

from __future__ import annotations

import math

import pytest
import torch

from cloudfree.losses import build_loss


def test_gaussian_nll_is_the_band_sum_of_torchs_per_element_nll():
    torch.manual_seed(0)
    mean, target = torch.rand(2, 13, 5, 6), torch.rand(2, 13, 5, 6)
    var = torch.rand(2, 13, 5, 6) * 0.01 + 1e-4
    loss = build_loss("mgnll")(torch.cat([mean, var], 1), target, mean, torch.zeros(2, 5, 6))
    ref = torch.nn.GaussianNLLLoss(full=True, eps=1e-12, reduction="none")(mean, target, var)
    torch.testing.assert_close(loss, ref.sum(dim=1).mean())


def test_gaussian_nll_by_hand_for_one_pixel():
    # 13 bands, error 0.1 and variance 0.01 in each: 13 * 0.5 * (ln 0.01 + 1 + ln 2 pi).
    pred = torch.cat([torch.full((1, 13, 1, 1), 0.6), torch.full((1, 13, 1, 1), 0.01)], 1)
    loss = build_loss("mgnll")(pred, torch.full((1, 13, 1, 1), 0.5))
    assert loss.item() == pytest.approx(13 * 0.5 * (math.log(0.01) + 1 + math.log(2 * math.pi)))


def test_gaussian_nll_needs_the_variances():
    with pytest.raises(ValueError, match="return_variance=True"):
        build_loss("mgnll")(torch.rand(1, 13, 4, 4), torch.rand(1, 13, 4, 4))


def test_l2_is_mse():
    a, b = torch.rand(2, 13, 4, 4), torch.rand(2, 13, 4, 4)
    torch.testing.assert_close(build_loss("l2")(a, b, a, None), torch.nn.functional.mse_loss(a, b))
