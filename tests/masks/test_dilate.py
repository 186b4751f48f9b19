"""Growing masks by a distance on the ground: distances, pixel sizes, the growth itself."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin

from cloudfree.masks.dilate import (
    Distance,
    dilate_classes,
    dilation_pixels,
    parse_distance,
    pixel_size_m,
)
from cloudfree.masks.params import CLEAR, CLOUD, SHADOW


def test_parse_distance() -> None:
    assert parse_distance("60") == Distance(60.0, "m")
    assert parse_distance(" 7.5 m") == Distance(7.5, "m")
    assert parse_distance("6px") == Distance(6.0, "px")
    assert parse_distance(90) == Distance(90.0, "m")
    assert Distance(60.0).pixels(10.0) == 6.0 and Distance(6.0, "px").pixels(20.0) == 6.0
    for bad in ("-5", "six", "6 km", "1e3"):
        with pytest.raises(ValueError, match="--dilate"):
            parse_distance(bad)


def test_pixel_size_projected_and_geographic() -> None:
    utm = SimpleNamespace(crs=CRS.from_epsg(32633), transform=from_origin(0, 0, 10, 10), height=5)
    assert pixel_size_m(utm) == 10.0
    # 1e-4 degree pixels with their centre row at latitude 60: 11.132 * cos 60 and 11.0574 m.
    geo = SimpleNamespace(
        crs=CRS.from_epsg(4326), transform=from_origin(10.0, 60.005, 1e-4, 1e-4), height=100
    )
    expected = (1e-4 * 111_320 * math.cos(math.radians(60.0)) + 1e-4 * 110_574) / 2
    assert pixel_size_m(geo) == pytest.approx(expected, rel=1e-9)
    assert pixel_size_m(SimpleNamespace(crs=None, transform=None)) == 10.0  # Sentinel-2's


def test_dilation_by_hand() -> None:
    m = np.zeros((9, 11), np.uint8)
    m[4, 3] = CLOUD
    m[4, 7] = SHADOW
    out = dilate_classes(m, 2.0)
    # Cloud grows by a disc of radius 2 (13 pixels); shadow too, except where cloud reached.
    yy, xx = np.mgrid[:9, :11]
    near_cloud = (yy - 4) ** 2 + (xx - 3) ** 2 <= 4
    near_shadow = ((yy - 4) ** 2 + (xx - 7) ** 2 <= 4) & ~near_cloud
    assert (out == CLOUD).sum() == 13 and np.array_equal(out == CLOUD, near_cloud)
    assert np.array_equal(out == SHADOW, near_shadow)
    assert out[4, 5] == CLOUD  # 2 from both: cloud wins
    assert np.array_equal(dilate_classes(m, 0.9), m)  # under a pixel: unchanged


def test_dilation_keeps_classes_and_matches_a_brute_force_disc() -> None:
    rng = np.random.default_rng(0)
    m = rng.choice([CLEAR, CLOUD, SHADOW], size=(40, 50), p=[0.96, 0.02, 0.02]).astype(np.uint8)
    r = 3.5
    out = dilate_classes(m, r)
    assert np.array_equal(out[m != CLEAR], m[m != CLEAR])  # never reclassified
    yy, xx = np.mgrid[:40, :50]
    for cls in (CLOUD, SHADOW):
        pts = np.argwhere(m == cls)
        d2 = ((yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2).min(-1)
        reach = d2 <= r * r
        if cls == CLOUD:
            assert np.array_equal(out == CLOUD, (reach & (m == CLEAR)) | (m == CLOUD))
        else:
            expected = (reach & (m == CLEAR) & (out != CLOUD)) | (m == SHADOW)
            assert np.array_equal(out == SHADOW, expected)


def test_a_metre_distance_under_a_pixel_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    assert dilation_pixels(Distance(6.0), 10.0) == pytest.approx(0.6)
    assert "less than one pixel" in caplog.text and "60 for 6 pixels" in caplog.text
    assert dilation_pixels(None, 10.0) == 0.0
