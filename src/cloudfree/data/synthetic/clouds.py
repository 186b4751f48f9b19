"""Synthetic clouds: thick cumulus, thin cirrus / haze and their shadows over a clear S2 image.

:func:`simulate_clouds` turns a clear 13-band L1C image (real or from :mod:`cloudfree.data.synthetic.release`)
into a cloudy one plus its cloud truth. Everything is *synthetic*: plausible enough to exercise
cloud masks, training and metrics, never a substitute for real data. Where the truth is 0 the
cloudy image is *exactly* the clear one (no global haze: every cloud or haze pixel is labelled 1).
Every random draw comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math

import numpy as np

from cloudfree.bands import GSD_M, NUM_S2_BANDS
from cloudfree.data.synthetic.noise import fractal_noise, level_for_fraction

# Atmospheric path reflectance x 10000: a shadow darkens only the surface term above it. Set
# just under the 1st percentile of the real patches (1056 775 489 251 205 ... 12 4).
_PATH = np.array([1000, 720, 450, 230, 190, 150, 130, 100, 90, 45, 4, 10, 4], dtype=np.float32)
# Fraction of the surface signal left in a cloud shadow (diffuse skylight, bluer than direct
# sun, so visible bands keep more than NIR/SWIR). B10 sees no surface.
_SHADOW_KEEP = np.array(
    [0.6, 0.55, 0.5, 0.45, 0.42, 0.38, 0.36, 0.35, 0.35, 0.35, 1.0, 0.3, 0.3], dtype=np.float32
)
# Thick cloud reflectance relative to its B2: the median spectrum of the thick-cloud cores of
# the 18 real SEN12MS-CR cloudy patches of ../shared/data (pixels of the DSen2-CR cloud class
# 5 px inside its edge with B2 > 3000 DN): nearly flat in the visible, rising 18-25 % to the
# NIR, a water-vapour dip in B9, about B2's level at 1.6 um and 80 % of it at 2.2 um. An earlier
# flat-to-NIR shape with dark SWIR (0.93 at B8, 0.6 and 0.35 at B11, B12) matched no real cloud,
# and the CNN cloud masker trained on real scenes did not see it as cloud. B10 is drawn per
# patch (low cumulus vs high tops).
_CLOUD_SHAPE = np.array(
    [0.98, 1.0, 0.94, 1.05, 1.11, 1.16, 1.20, 1.18, 1.25, 0.68, 0.0, 0.98, 0.80], dtype=np.float32
)
#: Relative amplitude of the brightness texture inside thick clouds: the local (3 x 3) standard
#: deviation of B2 in the real cores is 0.04 reflectance at 0.45-0.55, about 4 % of 0.8-1.0x.
_TEXTURE = 0.04
# How much of a thin cloud / haze layer's opacity applies per band (thinner at long waves).
_HAZE_WEIGHT = np.array(
    [1.1, 1.05, 1.0, 0.95, 0.92, 0.9, 0.88, 0.86, 0.85, 0.85, 1.0, 0.75, 0.7], dtype=np.float32
)


def simulate_clouds(
    clear_dn: np.ndarray, rng: np.random.Generator, cover_fraction: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Put thick clouds, thin cloud/haze and displaced cloud shadows over a clear S2 image.

    Thick clouds: fractal noise above a quantile, opacity ramping over the ragged edge, bright
    (4000-8000 DN in B2) with the spectrum of real thick cloud (``_CLOUD_SHAPE``), low or high
    B10 per patch. Thin layer (half the
    patches): streaky cirrus/haze, opacity <= 0.45, raising B10 (cirrus band) strongly. Shadows:
    the thick opacity shifted by the sun-geometry offset (height 300-1500 m, zenith 20-50 deg,
    sun in the south-east), keeping 30-60 % of the surface signal above the path radiance.
    Truth: 1 where any cloud layer has opacity > 0, 2 where shadowed and not cloud (cloud wins),
    0 elsewhere, and there the output equals ``clear_dn`` exactly.

    Args:
        clear_dn: uint16 (13, H, W) L1C DN.
        rng: random generator.
        cover_fraction: target fraction of cloud pixels in [0, 1] (approximate when thick and
            thin layers overlap); None draws it from 0.9 * Beta(0.8, 1), i.e. 0 to 0.9.
    Returns:
        ``(cloudy_dn uint16 (13, H, W), truth uint8 (H, W))``.
    """
    if clear_dn.ndim != 3 or clear_dn.shape[0] != NUM_S2_BANDS:
        raise ValueError(f"clear_dn must be ({NUM_S2_BANDS}, H, W), got {clear_dn.shape}")
    f = 0.9 * rng.beta(0.8, 1.0) if cover_fraction is None else float(cover_fraction)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"cover_fraction must be in [0, 1], got {cover_fraction}")
    shape = clear_dn.shape[1:]
    mode = rng.random()
    f_thin = f if mode < 0.15 else (f * rng.uniform(0.2, 0.6) if mode < 0.55 else 0.0)
    f_thick = 1.0 - (1.0 - f) / (1.0 - f_thin) if f_thin < 1.0 else 0.0

    x = clear_dn.astype(np.float32)
    bands = (slice(None), None, None)
    # Thick clouds: opacity 0 at the threshold, 1 a little inside; brighter in the core.
    field = fractal_noise(shape, rng, beta=rng.uniform(3.2, 3.8), scale_px=rng.uniform(40, 160))
    t = level_for_fraction(field, f_thick)
    thick = field > t
    a_thick = np.where(thick, np.clip((field - t) / rng.uniform(0.6, 1.5), 0.0, 1.0), 0.0)
    shape_b = _CLOUD_SHAPE.copy()
    shape_b[10] = rng.uniform(0.15, 0.35) if rng.random() < 0.3 else rng.uniform(0.01, 0.05)
    texture = 1.0 + _TEXTURE * fractal_noise(shape, rng, beta=2.2, scale_px=20)
    c_thick = rng.uniform(4000, 8000) * shape_b[bands] * ((0.8 + 0.2 * a_thick) * texture)[None]
    # Shadows: thick opacity moved by the shadow vector (periodic field, so np.roll is exact).
    length = rng.uniform(300, 1500) * math.tan(math.radians(rng.uniform(20, 50))) / GSD_M
    away = math.radians(rng.uniform(110, 170) + 180.0)  # shadows fall away from the sun
    shift = (round(-length * math.cos(away)), round(length * math.sin(away)))  # (rows, cols)
    s = np.roll(a_thick, shift, axis=(0, 1)).astype(np.float32)
    path = np.minimum(_PATH[bands], x)
    out = path + (x - path) * (1.0 - s[None] * (1.0 - _SHADOW_KEEP[bands]))
    out = (1.0 - a_thick[None]) * out + a_thick[None] * c_thick
    # Thin cirrus / haze: elongated, semi-transparent, bright in B10 (ice above the vapour).
    thin = np.zeros(shape, dtype=bool)
    if f_thin > 0:
        tf = fractal_noise(
            shape, rng, beta=rng.uniform(2.8, 3.6), scale_px=rng.uniform(60, 250),
            stretch=rng.uniform(2.0, 5.0), angle=rng.uniform(0, math.pi),
        )  # fmt: skip
        t2 = level_for_fraction(tf, f_thin)
        thin = tf > t2
        a_thin = np.where(thin, np.clip((tf - t2) / 1.5, 0.0, 1.0), 0.0) * rng.uniform(0.15, 0.45)
        c_thin = rng.uniform(3500, 6000) * _CLOUD_SHAPE.copy()
        c_thin[10] = rng.uniform(1500, 2500)  # 0.3 opacity -> B10 ~ 500 DN, as in cirrus
        a_b = np.clip(a_thin[None] * _HAZE_WEIGHT[bands], 0.0, 1.0)
        out = (1.0 - a_b) * out + a_b * c_thin[bands]

    truth = np.zeros(shape, dtype=np.uint8)
    truth[s > 0] = 2
    truth[thick | thin] = 1
    hit = truth > 0
    out += rng.standard_normal(out.shape, dtype=np.float32) * (2.0 + 0.004 * out) * hit[None]
    cloudy = np.clip(np.rint(out), 0, 65535).astype(np.uint16)
    return np.where(hit[None], cloudy, clear_dn), truth
