"""Raster windows: the one way cloudfree walks a large raster block by block.

``stack`` (SAFE products), ``mask`` and ``predict`` all read and write scenes in windows of a
fixed side, row-major, the last row and column cut at the raster's edge; a window read with a
halo is grown, clipped to the raster, and the part outside it reflected.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: ``(row_off, col_off, height, width)`` of a window, pixels.
Window = tuple[int, int, int, int]


def windows(height: int, width: int, size: int) -> Iterator[Window]:
    """Row-major windows of side ``size`` covering a ``height x width`` raster (the last row
    and column of windows are cut at the edge)."""
    if size < 1:
        raise ValueError(f"window size must be >= 1 pixel, got {size}")
    for r in range(0, height, size):
        for c in range(0, width, size):
            yield r, c, min(size, height - r), min(size, width - c)


def grow(win: Window, halo: int) -> Window:
    """``win`` grown by ``halo`` pixels on each side (may reach outside the array)."""
    r, c, h, w = win
    return r - halo, c - halo, h + 2 * halo, w + 2 * halo


def clip_window(win: Window, height: int, width: int) -> Window:
    """The part of ``win`` inside a ``height x width`` array (may be empty)."""
    r, c, h, w = win
    r0, c0 = max(r, 0), max(c, 0)
    r1, c1 = min(r + h, height), min(c + w, width)
    return r0, c0, max(r1 - r0, 0), max(c1 - c0, 0)


def pad_reflect(x: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Pad the last two axes by reflection about the edge pixels (``d c b | a b c d | c b a``).

    This is how the scene is extended beyond its borders, so that border pixels see
    image-like context (as every pixel but the crop edges did in training) instead of zeros.
    Pads longer than the array reflect repeatedly; an axis of one pixel is repeated.
    """
    import numpy as np

    if top == bottom == left == right == 0:
        return x
    width = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    mode = "reflect" if min(x.shape[-2:]) > 1 else "edge"
    return np.pad(x, width, mode=mode)  # type: ignore[call-overload]
