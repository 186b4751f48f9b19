"""rgb_panels: layout, dtype, and the fixed stretch worked by hand."""

from __future__ import annotations

import pytest
import torch

from cloudfree.bands import s2_index
from cloudfree.train.panels import GAP, reflectance_to_rgb8, rgb_panels

R, G, B = s2_index("B4"), s2_index("B3"), s2_index("B2")


def _batch(n: int, h: int, w: int) -> tuple[dict, torch.Tensor]:
    cloudy = torch.zeros(n, 13, h, w)
    target = torch.zeros(n, 13, h, w)
    pred = torch.zeros(n, 13, h, w)
    return {"s2_cloudy": cloudy, "s2": target}, pred


def test_shape_dtype_and_white_gaps() -> None:
    batch, pred = _batch(6, 5, 7)
    img = rgb_panels(batch, pred, "dsen2cr", max_items=4)
    assert img.dtype == torch.uint8 and img.device.type == "cpu"
    assert img.shape == (3, 4 * 5 + 3 * GAP, 3 * 7 + 2 * GAP)
    # All images are black (zero reflectance): only the gaps are white.
    assert (img[:, 5 : 5 + GAP] == 255).all()  # between rows 0 and 1
    assert (img[:, :, 7 : 7 + GAP] == 255).all()  # between cloudy and prediction
    assert (img[:, :5, :7] == 0).all()
    assert int((img == 255).sum()) == 3 * (img.shape[1] * img.shape[2] - 12 * 5 * 7)


def test_fewer_samples_than_max_items() -> None:
    batch, pred = _batch(1, 4, 4)
    assert rgb_panels(batch, pred, "reflectance").shape == (3, 4, 3 * 4 + 2 * GAP)


def test_known_reflectance_lands_in_place() -> None:
    h, w = 4, 3
    batch, pred = _batch(2, h, w)
    # dsen2cr scale: network value = DN / 2000, so reflectance 0.2 is value 1.0.
    # 0.2 x 2.5 = 0.5 -> floor(127.5 + 0.5) = 128 (round half up).
    pred[1, R] = 1.0
    # 0.1 reflectance (value 0.5) -> 0.25 x 255 = 63.75 -> 64.
    batch["s2"][1, G] = 0.5
    # 0.5 reflectance saturates: x 2.5 = 1.25 -> clipped -> 255. Negative -> 0.
    batch["s2_cloudy"][0, B] = 2.5
    batch["s2_cloudy"][0, R] = -1.0
    img = rgb_panels(batch, pred, "dsen2cr")
    row1 = h + GAP
    pred_x, tgt_x = w + GAP, 2 * (w + GAP)
    assert (img[0, row1 : row1 + h, pred_x : pred_x + w] == 128).all()
    assert (img[1:, row1 : row1 + h, pred_x : pred_x + w] == 0).all()
    assert (img[1, row1 : row1 + h, tgt_x : tgt_x + w] == 64).all()
    assert (img[2, :h, :w] == 255).all()
    assert (img[0, :h, :w] == 0).all()
    # Row 0's prediction and target are untouched: black.
    assert (img[:, :h, pred_x : pred_x + w] == 0).all()
    assert (img[:, :h, tgt_x : tgt_x + w] == 0).all()


def test_reflectance_scaling_protocol() -> None:
    batch, pred = _batch(1, 2, 2)
    pred[0, R] = 0.2  # reflectance protocol: value is reflectance already
    img = rgb_panels(batch, pred, "reflectance")
    assert (img[0, :, 2 + GAP : 4 + GAP] == 128).all()


def test_stretch_nan_is_black() -> None:
    x = torch.tensor([float("nan"), 0.0, 0.4, 1.0]).view(1, 4, 1)
    assert reflectance_to_rgb8(x).flatten().tolist() == [0, 0, 255, 255]


def test_errors() -> None:
    batch, pred = _batch(2, 4, 4)
    with pytest.raises(ValueError, match="pred has"):
        rgb_panels(batch, pred[:, :, :2], "dsen2cr")
    with pytest.raises(ValueError, match="s2_cloudy"):
        rgb_panels({"s2": batch["s2"]}, pred, "dsen2cr")
    with pytest.raises(ValueError, match="max_items"):
        rgb_panels(batch, pred, "dsen2cr", max_items=0)
    with pytest.raises(KeyError, match="scaling"):
        rgb_panels(batch, pred, "nope")
