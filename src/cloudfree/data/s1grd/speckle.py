"""The refined Lee speckle filter (Lee 1981, "Refined filtering of image noise using local
statistics"), as Mullissa et al. 2021 apply it in Earth Engine (their ``gee_s1_ard``, after
Lemoine's script): off by default, as in Earth Engine's ``COPERNICUS/S1_GRD`` itself, which
SEN12MS-CR's models were trained on.

On linear power, per pixel: the 3 x 3 means at the 9 points (-2, 0, 2)^2 of a 7 x 7 window give
four gradients (vertical, diagonal, horizontal, anti-diagonal); the largest says the edge's
orientation, and the side of it that the centre belongs to (the side whose 3 x 3 mean departs
less from the centre's: ``m_a - m_c > m_c - m_b`` picks side a) chooses one of 8 edge-aligned
half-windows (4 x 7 rectangles and 7 x 7 triangles); the local noise variance is the mean of the
5 smallest of the 9 (variance / mean^2); then Lee's estimate in that half-window::

    var_x = (var - mean^2 sigma_v) / (1 + sigma_v);   out = mean + var_x / var (x - mean)

Differences from the Earth Engine script: the half-windows are defined by the side they lie on
(not by kernel rotations), a tie between gradients takes the first (the script would add the
tied directions up), variances are population variances, and pixels whose 7 x 7 neighbourhood
is not all valid (swath edges) are left as they are.
"""

from __future__ import annotations

from typing import Final

import numpy as np

#: Pixels of context the filter needs on each side.
HALO: Final[int] = 3


def _kernels() -> list[np.ndarray]:
    """The 8 half-windows of 7 x 7, for the directions 1..8: direction k (1-4) is the side of
    the first point of gradient pair k (top, bottom-left, left, top-left; the edge between),
    k + 4 the opposite side. Each holds the centre and the edge line."""
    i, j = np.mgrid[0:7, 0:7]
    top, left = i <= 3, j <= 3
    lower_left, upper_left = i >= j, i + j <= 6
    sides = [top, lower_left, left, upper_left, ~top | (i == 3), ~lower_left | (i == j),
             ~left | (j == 3), ~upper_left | (i + j == 6)]  # fmt: skip
    return [m.astype(np.float64) for m in sides]


def refined_lee(img: np.ndarray) -> np.ndarray:
    """The filtered (H, W) linear-power image (float32); NaN stays NaN."""
    from scipy.ndimage import correlate, uniform_filter

    x = img.astype(np.float64)
    ok = np.isfinite(x)
    x0 = np.where(ok, x, 0.0)
    mean3 = uniform_filter(x0, 3, mode="nearest")
    var3 = np.maximum(uniform_filter(x0 * x0, 3, mode="nearest") - mean3**2, 0.0)
    offs = [(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2)]

    def shifted(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
        return np.roll(a, (-dy, -dx), axis=(0, 1))

    s = np.stack([shifted(mean3, dy, dx) for dy, dx in offs])
    v = np.stack([shifted(var3, dy, dx) for dy, dx in offs])
    grads = np.stack([np.abs(s[1] - s[7]), np.abs(s[6] - s[2]), np.abs(s[3] - s[5]),
                      np.abs(s[0] - s[8])])  # fmt: skip
    k = np.argmax(grads, axis=0)  # 0..3
    pairs = ((1, 7), (6, 2), (3, 5), (0, 8))
    brighter = np.stack([(s[a] - s[4]) > (s[4] - s[b]) for a, b in pairs])
    first_half = np.take_along_axis(brighter, k[None], axis=0)[0]
    direction = np.where(first_half, k + 1, k + 5)  # 1..8
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = v / (s * s)
    sigma_v = np.sort(np.nan_to_num(stats, nan=np.inf), axis=0)[:5].mean(axis=0)
    dir_mean = np.zeros_like(x)
    dir_var = np.zeros_like(x)
    for d, kern in enumerate(_kernels(), start=1):
        sel = direction == d
        if not sel.any():
            continue
        w = kern / kern.sum()
        m = correlate(x0, w, mode="nearest")
        dir_mean[sel] = m[sel]
        dir_var[sel] = np.maximum(correlate(x0 * x0, w, mode="nearest") - m * m, 0.0)[sel]
    with np.errstate(divide="ignore", invalid="ignore"):
        var_x = (dir_var - dir_mean**2 * sigma_v) / (sigma_v + 1.0)
        b = np.where(dir_var > 0, var_x / dir_var, 0.0)
    out = dir_mean + b * (x - dir_mean)
    # only where the whole 7 x 7 neighbourhood is data (NaN would have entered as 0)
    full = uniform_filter(ok.astype(np.float64), 7, mode="constant") > 1 - 1e-9
    return np.where(full & np.isfinite(out), out, x).astype(np.float32)
