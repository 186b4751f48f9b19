"""Raster windows: the one way cloudfree walks a large raster block by block.

``stack`` (SAFE products), ``mask`` and ``predict`` all read and write scenes in windows of a
fixed side, row-major, the last row and column cut at the raster's edge.
"""

from __future__ import annotations

from collections.abc import Iterator

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
