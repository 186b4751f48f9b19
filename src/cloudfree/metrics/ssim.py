"""SSIM exactly as the paper computed it: TensorFlow's ``tf.image.ssim`` (spec section 6).

Definition (TF 1.x ``_ssim_per_channel``, ``filter_size=11, filter_sigma=1.5, k1=0.01,
k2=0.03``): with a normalised 11x11 Gaussian window w (sigma 1.5, the outer product of two
normalised 1-D Gaussians, so it is applied separably), local statistics are taken with
'VALID' filtering, i.e. only where the window fits entirely inside the image (no padding); then
per band::

    mu_x = w * x,  mu_y = w * y,  c1 = (k1 L)^2,  c2 = (k2 L)^2
    luminance = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)
    cs        = (2 (w*(xy) - mu_x mu_y) + c2) / (w*(x^2) + w*(y^2) - mu_x^2 - mu_y^2 + c2)
    ssim_band = mean over the valid (H-10) x (W-10) pixels of luminance * cs

and the image SSIM is the mean over bands. The paper ran it on DN/2000 x 2000 values with
``max_val = 10000``; that is the same number as on reflectance (DN / 10000) with data range
L = 1, which is what these functions take. scikit-image's ``structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)`` computes the same
thing (it filters with padding but averages only over the pixels 5 px away from the border).

``tf.image.ssim`` rejects images smaller than the window; here an image with H or W below 11
gets SSIM NaN (undefined) instead of an error, so that one tiny patch cannot stop an evaluation.

The SEN12MS-CR leaderboard's SSIM (UnCRtainTS ``util/pytorch_ssim``, the ``pytorch-ssim``
package) is the same formula with the same window and constants, but filtered with zero
padding ("same" output size, ``padding = 5``) and averaged over **every** pixel, border
included: ``ssim_numpy(..., padding="zero")``. Near the border the zero-padded local means
are too dark, which changes the value (measured on real SEN12MS-CR patches in
``tests/metrics/test_leaderboard.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

from cloudfree.metrics.names import SSIM_PADDINGS

if TYPE_CHECKING:
    import torch

#: Side of the Gaussian window of ``tf.image.ssim`` (its default ``filter_size``).
SSIM_WINDOW: Final[int] = 11
#: Standard deviation of the window, pixels (TF default ``filter_sigma``).
SSIM_SIGMA: Final[float] = 1.5
#: Stabilising constants (TF defaults ``k1``, ``k2``).
SSIM_K1: Final[float] = 0.01
SSIM_K2: Final[float] = 0.03
#: Data range of reflectance, the paper's ``max_val = 10000`` DN.
SSIM_DATA_RANGE: Final[float] = 1.0


def gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian of ``size`` taps centred on the middle one, float64 (size,).

    Its outer product with itself is TF's ``_fspecial_gauss`` (a softmax of the 2-D squared
    distances, i.e. the normalised 2-D Gaussian).
    """
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * coords**2 / sigma**2)
    return g / g.sum()


def ssim_numpy(
    x: np.ndarray, y: np.ndarray, data_range: float = SSIM_DATA_RANGE, padding: str = "valid"
) -> float:
    """SSIM of two (C, H, W) images averaged over bands, computed in float64.

    Args:
        x: (C, H, W) image, e.g. the prediction in reflectance.
        y: (C, H, W) image of the same shape, e.g. the target.
        data_range: L in the constants c1 = (0.01 L)^2, c2 = (0.03 L)^2.
        padding: "valid" (``tf.image.ssim``, the default) or "zero" (the leaderboard's
            pytorch-ssim; see the module docstring).

    Returns:
        The SSIM in [-1, 1] (1 for identical images); NaN if H or W < 11.
    """
    # Lazy: scipy.ndimage costs ~0.1 s to import and only SSIM needs it.
    from scipy.ndimage import correlate1d

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(
            f"ssim_numpy expects two (C, H, W) arrays of one shape, got {x.shape}, {y.shape}"
        )
    if padding not in SSIM_PADDINGS:
        raise ValueError(f"padding must be one of {SSIM_PADDINGS}, got {padding!r}")
    _, h, w = x.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        return float("nan")
    g = gaussian_window_1d()
    r = SSIM_WINDOW // 2 if padding == "valid" else 0

    def filt(a: np.ndarray) -> np.ndarray:
        # Separable filter with zeros outside the image; "valid" then keeps only outputs whose
        # window lies inside the image (TF's 'VALID'), "zero" keeps them all (pytorch-ssim).
        a = correlate1d(a, g, axis=1, mode="constant")
        a = correlate1d(a, g, axis=2, mode="constant")
        return a[:, r : h - r, r : w - r]

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = filt(x), filt(y)
    e_xx, e_yy, e_xy = filt(x * x), filt(y * y), filt(x * y)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    cs = (2 * (e_xy - mu_x * mu_y) + c2) / (e_xx + e_yy - mu_x**2 - mu_y**2 + c2)
    per_band = (luminance * cs).mean(axis=(1, 2))
    return float(per_band.mean())


def ssim_torch(
    x: torch.Tensor, y: torch.Tensor, data_range: float = SSIM_DATA_RANGE
) -> torch.Tensor:
    """SSIM per image of two (B, C, H, W) batches, averaged over bands; no host sync.

    The same definition as :func:`ssim_numpy`, as two depthwise ``conv2d`` passes (11x1 then
    1x11, ``groups`` = 5 C for the five local statistics at once), in the inputs' dtype and on
    their device.

    Returns:
        (B,) tensor of SSIM values; all NaN if H or W < 11.
    """
    import torch
    import torch.nn.functional as F

    b, c, h, w = x.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        return torch.full((b,), float("nan"), dtype=x.dtype, device=x.device)
    g = torch.as_tensor(gaussian_window_1d(), dtype=x.dtype, device=x.device)
    stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B, 5C, H, W)
    n = stats.shape[1]
    stats = F.conv2d(stats, g.view(1, 1, -1, 1).expand(n, 1, -1, 1), groups=n)  # valid, rows
    stats = F.conv2d(stats, g.view(1, 1, 1, -1).expand(n, 1, 1, -1), groups=n)  # valid, cols
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(c, dim=1)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    cs = (2 * (e_xy - mu_x * mu_y) + c2) / (e_xx + e_yy - mu_x**2 - mu_y**2 + c2)
    return (luminance * cs).mean(dim=(1, 2, 3))  # mean over pixels, then bands (equal sizes)
