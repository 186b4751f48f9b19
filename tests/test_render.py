"""Rendering: stretches worked by hand, band choice, SAR ranges, masks, panels, PNG round trip."""

from __future__ import annotations

import numpy as np
import pytest

from cloudfree import render
from cloudfree.bands import S2_BANDS, S2_L2A_BANDS


def _s2(values: dict[str, float], shape=(2, 3), bands=S2_BANDS) -> np.ndarray:
    out = np.zeros((len(bands), *shape), np.uint16)
    for b, v in values.items():
        out[bands.index(b)] = v
    return out


def test_true_colour_gain_picks_b4_b3_b2_and_rounds_half_up():
    # reflectance 0.1 * 2.5 = 0.25 -> floor(63.75 + 0.5) = 64; 0.4 -> 255; 0.02 -> 13
    s2 = _s2({"B4": 1000, "B3": 4000, "B2": 200, "B8": 9000})
    rgb = render.true_colour(s2)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (64, 255, 13)


def test_false_colour_uses_nir_and_l2a_band_order():
    s2 = _s2({"B8": 2000, "B4": 400, "B3": 0}, bands=S2_L2A_BANDS)
    rgb = render.false_colour(s2)
    assert tuple(rgb[1, 2]) == (128, 26, 0)  # 0.5 -> 127.5 -> 128; 0.1 -> 25.5 -> 26


def test_percentile_stretch_maps_percentiles_to_range():
    band = np.arange(101, dtype=np.float64).reshape(1, 1, 101)
    out = render.stretch(band, "percentile", p=(10, 90))
    assert out[0, 0, 10] == pytest.approx(0.0) and out[0, 0, 90] == pytest.approx(1.0)
    assert out[0, 0, 50] == pytest.approx(0.5)


def test_nodata_and_nan_are_black():
    s2 = _s2({"B4": 1000, "B3": 1000, "B2": 1000})
    s2[:, 0, 0] = 0
    rgb = render.true_colour(s2, nodata=0)
    assert tuple(rgb[0, 0]) == (0, 0, 0) and tuple(rgb[0, 1]) == (64, 64, 64)


def test_wrong_band_count_is_explained():
    with pytest.raises(ValueError, match="13 .*12"):
        render.true_colour(np.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match="unknown stretch"):
        render.true_colour(_s2({}), mode="log")


def test_sar_composite_fixed_db_ranges():
    s1 = np.zeros((2, 1, 2), np.float32)
    s1[0] = [-25.0, -12.5]  # VV: 0 and 0.5
    s1[1] = [-32.5, -18.75]  # VH: 0 and 0.5; VV-VH = 7.5 and 6.25 dB
    rgb = render.sar_composite(s1)
    assert tuple(rgb[0, 0]) == (0, 0, 128)  # 7.5 / 15 = 0.5 -> 128
    assert tuple(rgb[0, 1]) == (128, 128, 106)  # 6.25 / 15 * 255 = 106.25
    with pytest.raises(ValueError, match="VV, VH"):
        render.sar_composite(np.zeros((3, 2, 2)))


def test_mask_colours_and_overlay():
    mask = np.array([[0, 1, 2, 255]], np.uint8)
    assert render.mask_rgb(mask).tolist() == [
        [[0, 0, 0], [255, 255, 255], [40, 90, 255], [128] * 3]
    ]
    base = np.full((1, 4, 3), 100, np.uint8)
    over = render.mask_overlay(base, mask, alpha=0.5)
    assert over[0, 0].tolist() == [100, 100, 100]  # clear unchanged
    assert over[0, 1].tolist() == [178, 178, 178]  # (100 + 255) / 2 = 177.5 -> 178
    assert over[0, 2].tolist() == [70, 95, 178]


def test_error_map_is_monotonic_and_saturates():
    target = np.zeros((13, 1, 4), np.float64)
    pred = target.copy()
    pred[:, 0, :] = np.array([0, 500, 1000, 5000])[None]  # 0, 0.05, 0.1, 0.5 reflectance
    err = render.error_map(pred, target).astype(int).sum(axis=-1)[0]
    assert err[0] == 4 and err[0] < err[1] < err[2] < err[3]  # ramp starts at (0, 0, 4)
    assert render.error_map(pred * 2, target)[0, 3].tolist() == [252, 255, 164]


def test_panel_layout_titles_and_png_roundtrip(tmp_path):
    from PIL import Image

    a = np.zeros((10, 8, 3), np.uint8)
    b = np.full((6, 5, 3), 200, np.uint8)
    out = render.panel([a, b], titles=["A", "B"], gap=2)
    assert out.shape == (10 + 11, 8 + 2 + 5, 3)
    assert (out[11:, :8] == 0).all() and (out[11:17, 10:] == 200).all()
    assert (out[11:, 8:10] == 255).all()  # the gap
    assert (out[:11, :8] == 0).any()  # the title drew something
    path = render.write_png(tmp_path / "p.png", out)
    assert np.array_equal(np.asarray(Image.open(path)), out)
    rows = render.stack_rows([out, a], gap=3)
    assert rows.shape == (21 + 3 + 10, 15, 3)
