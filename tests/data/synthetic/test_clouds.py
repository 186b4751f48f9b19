"""Tests of the synthetic clouds: brighter clouds, darker shadows, untouched clear pixels, range."""

from __future__ import annotations

import numpy as np
import pytest

from cloudfree.data.synthetic.clouds import simulate_clouds
from cloudfree.data.synthetic.release import clear_s2, land_cover


def _clear(seed: int, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return clear_s2(land_cover((size, size), rng, snow=False), rng)


def test_clouds_brighten_shadows_darken_clear_pixels_untouched() -> None:
    for seed in range(4):
        clear = _clear(seed)
        cloudy, truth = simulate_clouds(clear, np.random.default_rng(100 + seed), 0.4)
        assert cloudy.dtype == np.uint16 and cloudy.shape == clear.shape
        assert truth.dtype == np.uint8 and set(np.unique(truth)) <= {0, 1, 2}
        assert abs((truth == 1).mean() - 0.4) < 0.12
        c, k = clear.astype(float), cloudy.astype(float)
        cloud, shadow = truth == 1, truth == 2
        assert k[1:4][:, cloud].mean() > c[1:4][:, cloud].mean() + 500
        if shadow.any():
            assert k[7][shadow].mean() < 0.9 * c[7][shadow].mean()
        assert np.array_equal(cloudy[:, truth == 0], clear[:, truth == 0])


def test_no_cloud_fraction_means_identical_image() -> None:
    clear = _clear(0, size=48)
    cloudy, truth = simulate_clouds(clear, np.random.default_rng(0), cover_fraction=0.0)
    assert np.array_equal(cloudy, clear) and not truth.any()


def test_cloud_fraction_spans_a_wide_range_and_b10_rises() -> None:
    clear = _clear(1, size=64)
    fractions, b10_cloud, b10_clear = [], [], []
    for seed in range(24):
        cloudy, truth = simulate_clouds(clear, np.random.default_rng(seed))
        fractions.append((truth == 1).mean())
        if (truth == 1).any():
            b10_cloud.append(cloudy[10][truth == 1].mean())
            b10_clear.append(clear[10][truth == 1].mean())
        # Fractal but coherent edges: the mask is not salt and pepper.
        assert np.mean(truth[:, 1:] == truth[:, :-1]) > 0.8
    assert min(fractions) < 0.1 and max(fractions) > 0.6
    assert np.mean(b10_cloud) > 3 * np.mean(b10_clear)


def test_simulate_clouds_rejects_bad_input() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="13"):
        simulate_clouds(np.zeros((12, 8, 8), np.uint16), rng)
    with pytest.raises(ValueError, match="cover_fraction"):
        simulate_clouds(np.zeros((13, 8, 8), np.uint16), rng, cover_fraction=1.5)
