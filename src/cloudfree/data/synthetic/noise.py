"""Fractal noise fields: the random texture behind every synthetic land cover, image and cloud.

Shared by :mod:`cloudfree.data.synthetic.release` (land cover, surface texture, S1) and
:mod:`cloudfree.data.synthetic.clouds` (cloud and haze layers). Every draw comes from the
``numpy.random.Generator`` passed in, so a seed fixes every value.
"""

from __future__ import annotations

import math

import numpy as np


def fractal_noise(
    shape: tuple[int, int],
    rng: np.random.Generator,
    beta: float = 3.0,
    scale_px: float = 100.0,
    stretch: float = 1.0,
    angle: float = 0.0,
) -> np.ndarray:
    """Periodic 1/f^beta noise by spectral synthesis, normalised to mean 0, std 1.

    Power spectrum ``(k^2 + 1/scale_px^2)^(-beta/2)``: fractal below ``scale_px`` pixels, flat
    above, so features have the same size in pixels whatever the array size. ``stretch > 1``
    elongates features along ``angle`` (radians), e.g. cirrus streaks. Returns float32 (H, W).
    """
    h, w = shape
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    if stretch != 1.0:
        c, s = math.cos(angle), math.sin(angle)
        kx, ky = (kx * c + ky * s) * stretch, -kx * s + ky * c
    amp = (kx**2 + ky**2 + scale_px**-2) ** (-beta / 4.0)
    amp[0, 0] = 0.0
    spec = (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)) * amp
    field = np.fft.irfft2(spec, s=shape)
    field -= field.mean()
    std = field.std()
    return (field / std if std > 0 else field).astype(np.float32)


def level_for_fraction(field: np.ndarray, fraction: float) -> float:
    """The level above which ``fraction`` of the pixels of ``field`` lie (inf for none)."""
    return float(np.quantile(field, 1.0 - fraction)) if fraction > 0 else math.inf
