"""CARL and L1 losses against hand-worked values (spec section 5)."""

from __future__ import annotations

import pytest
import torch

from cloudfree.losses import LOSSES, CARLLoss, TargetL1Loss, build_loss

B, C, H, W = 1, 13, 2, 2
N = B * C * H * W


def _case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """P = 1, I = 0, T = 1.25 everywhere; pixel (0, 0) masked with the shadow value 2.

    CARL (lambda = 1): clear elements |P - I| = 1, masked ones |P - T| = 0.25, so the adaptive
    term is (3 * 1 + 0.25) / 4 = 0.8125 and the target term mean|P - T| = 0.25: 1.0625 in all.
    All values are exact in binary floating point.
    """
    pred = torch.full((B, C, H, W), 1.0, requires_grad=True)
    cloudy = torch.zeros(B, C, H, W)
    target = torch.full((B, C, H, W), 1.25)
    mask = torch.zeros(B, H, W, dtype=torch.uint8)
    mask[0, 0, 0] = 2
    return pred, target, cloudy, mask


def test_carl_hand_worked() -> None:
    pred, target, cloudy, mask = _case()
    assert CARLLoss()(pred, target, cloudy, mask).item() == 1.0625
    # lambda scales only the global target term: 0.8125 + 0.5 * 0.25.
    assert CARLLoss(lambda_=0.5)(pred, target, cloudy, mask).item() == 0.9375
    assert CARLLoss(lambda_=0.0)(pred, target, cloudy, mask).item() == 0.8125


def test_l1_hand_worked_ignores_cloudy_and_mask() -> None:
    pred, target, cloudy, mask = _case()
    l1 = TargetL1Loss()
    assert l1(pred, target).item() == 0.25
    assert l1(pred, target, cloudy + 7.0, torch.ones_like(mask)).item() == 0.25


def test_carl_matches_elementwise_loop_with_band_dependent_values() -> None:
    """A naive per-element sum over a random batch, with a (B, 1, H, W) float mask."""
    g = torch.Generator().manual_seed(0)
    shape = (2, C, 3, 4)
    pred, target, cloudy = (torch.rand(shape, generator=g, dtype=torch.float64) * 5 for _ in "abc")
    mask = (torch.rand((2, 1, 3, 4), generator=g) > 0.5).double() * -1.0  # upstream: -1 shadow
    total_adaptive = total_target = 0.0
    for b in range(2):
        for c in range(C):
            for y in range(3):
                for x in range(4):
                    m = 1.0 if mask[b, 0, y, x] != 0 else 0.0
                    p, t, i = (
                        pred[b, c, y, x].item(),
                        target[b, c, y, x].item(),
                        cloudy[b, c, y, x].item(),
                    )
                    total_adaptive += (1 - m) * abs(p - i) + m * abs(p - t)
                    total_target += abs(p - t)
    n = 2 * C * 3 * 4
    expected = total_adaptive / n + 0.7 * total_target / n
    got = CARLLoss(lambda_=0.7)(pred, target, cloudy, mask).item()
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("value", [1, 2, 255])
def test_mask_is_binarised(value: int) -> None:
    """Cloud (1), shadow (2), any nonzero value, bool and the upstream -1 give the same loss."""
    pred, target, cloudy, mask = _case()
    loss = CARLLoss()
    ref = loss(pred, target, cloudy, mask).item()
    other = mask.clone()
    other[0, 0, 0] = value
    assert loss(pred, target, cloudy, other).item() == ref
    assert loss(pred, target, cloudy, (mask != 0)).item() == ref
    assert loss(pred, target, cloudy, -(mask != 0).float()).item() == ref
    # And the mask matters: unmasking the pixel changes the loss (all clear: 1 + 0.25).
    assert loss(pred, target, cloudy, torch.zeros_like(mask)).item() == 1.25


def test_carl_gradient_routes_through_mask() -> None:
    """dL/dP = [(1-m) sign(P-I) + m sign(P-T)] / N + lambda sign(P-T) / N.

    Here sign(P - I) = +1 and sign(P - T) = -1: clear elements get 1/N - 1/N = 0, masked ones
    -1/N - 1/N = -2/N.
    """
    pred, target, cloudy, mask = _case()
    CARLLoss()(pred, target, cloudy, mask).backward()
    expected = torch.zeros(B, C, H, W)
    expected[0, :, 0, 0] = -2.0 / N
    torch.testing.assert_close(pred.grad, expected, rtol=0, atol=1e-9)


def test_l1_gradient() -> None:
    pred, target, _, _ = _case()
    TargetL1Loss()(pred, target).backward()
    torch.testing.assert_close(pred.grad, torch.full((B, C, H, W), -1.0 / N), rtol=0, atol=1e-9)


def test_shape_errors() -> None:
    pred, target, cloudy, mask = _case()
    carl = CARLLoss()
    with pytest.raises(ValueError, match="target has shape"):
        carl(pred, target[..., :1], cloudy, mask)
    with pytest.raises(ValueError, match="S2\\+S1"):  # the 15-channel network input
        carl(pred, target, torch.zeros(B, 15, H, W), mask)
    with pytest.raises(ValueError, match="mask has shape"):
        carl(pred, target, cloudy, mask[:, :1])
    with pytest.raises(ValueError, match="mask has shape"):
        carl(pred, target, cloudy, torch.zeros(B, 2, H, W))
    with pytest.raises(ValueError, match=r"expected \(B, 13, H, W\)"):
        carl(pred[0], target[0], cloudy[0], mask[0])
    with pytest.raises(ValueError, match="dtype"):
        carl(pred, target.to(torch.int64), cloudy, mask)
    with pytest.raises(ValueError, match="mask has shape"):
        TargetL1Loss()(pred, target, cloudy, mask[..., :1])
    with pytest.raises(ValueError, match="lambda_"):
        CARLLoss(lambda_=-1.0)


def test_num_bands_for_other_sensors() -> None:
    """An L2A stack without B10 has 12 bands: the band count is a constructor argument."""
    x = torch.zeros(1, 12, 2, 2)
    assert CARLLoss(num_bands=12)(x, x, x, torch.zeros(1, 2, 2)).item() == 0.0
    with pytest.raises(ValueError):
        CARLLoss()(x, x, x, torch.zeros(1, 2, 2))


def test_registry() -> None:
    assert set(LOSSES) == {"carl", "l1", "l2", "mgnll", "pix2pix"}
    carl = build_loss("carl", lambda_=0.5)
    assert isinstance(carl, CARLLoss) and carl.lambda_ == 0.5
    assert isinstance(build_loss("L1"), TargetL1Loss)
    pred, target, cloudy, mask = _case()
    assert build_loss("carl")(pred, target, cloudy, mask).item() == 1.0625
    with pytest.raises(KeyError, match="carl"):
        build_loss("l3")
    with pytest.raises(TypeError):
        build_loss("l1", lambda_=1.0)
