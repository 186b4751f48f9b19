"""Tiles with overlap, and the weights that blend them: the one tiling of every tiled model.

Whole-scene prediction (:mod:`cloudfree.predict`) and the learned cloud masks
(:mod:`cloudfree.masks.ukis`) cut an image into overlapping tiles, run a network on each and
average the tile outputs with :func:`blend_weights`::

    weights = blend_weights(tile, overlap)          # (tile, tile) float32, > 0
    for r, c in plan_tiles(height, width, tile, overlap):
        acc[:, r:r + tile, c:c + tile] += pred * weights
        wsum[r:r + tile, c:c + tile] += weights
    out = acc / wsum

Why the weights look as they do: a convolutional network zero-pads every layer, so a tile's
output within its receptive-field radius of the tile edge differs from what the whole image would
give. Along each axis the weight is ``BLEND_EPS`` in the outer ``margin = overlap // 4`` pixels
(output not trusted there), rises linearly across the next ``overlap - 2 * margin`` pixels and is
1 inside. Where two tiles overlap by exactly ``overlap`` the two ramps sum to 1 pixel for pixel,
so the blend is a partition of unity without seams, and every pixel takes (all but ``BLEND_EPS``
of) its value from tiles in which it lies at least ``margin`` pixels from the edge: for a model
whose receptive-field radius is at most ``margin`` the tiled output equals the untiled one to
float rounding (tested in ``tests/predict/test_scene.py``). The weight never reaches 0, so that
the normalisation never divides by 0 even in the discarded padding.
"""

from __future__ import annotations

from typing import Final

import numpy as np

#: Weight of the untrusted outer margin of a tile: > 0 (no division by 0 anywhere), small enough
#: that its contribution is far below the float32 resolution of the blended value.
BLEND_EPS: Final[float] = 1e-6


Size = int | tuple[int, int]


def _pair(size: Size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def blend_margin(overlap: int) -> int:
    """Outer pixels of a tile whose output gets only ``BLEND_EPS`` weight: ``overlap // 4``."""
    return overlap // 4


def axis_positions(length: int, tile: int, overlap: int) -> list[int]:
    """Start of each tile along one axis: stride ``tile - overlap``, the last flush with the end.

    Args:
        length: pixels along the axis (>= 1).
        tile: tile side; a tile longer than the axis is cut to it (one tile at 0).
        overlap: pixels shared by consecutive tiles (0 <= overlap < tile).

    Returns:
        Sorted, distinct starts; ``starts[-1] + min(tile, length) == length``.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if tile >= length:
        return [0]  # one tile: no neighbour to overlap (a small scene with a large overlap)
    if not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= overlap < tile, got overlap {overlap}, tile {tile}")
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)  # the last tile flush with the edge (overlaps more if needed)
    return starts


def plan_tiles(height: int, width: int, tile: Size, overlap: int) -> list[tuple[int, int]]:
    """Top-left ``(row, col)`` of each tile covering a ``height x width`` array.

    Args:
        height, width: array size in pixels.
        tile: tile side, or ``(tile_rows, tile_cols)``; cut to the array where larger.
        overlap: minimum pixels shared by neighbouring tiles (< tile).

    Returns:
        Row-major list; the last row and column of tiles are flush with the array edge.
    """
    th, tw = _pair(tile)
    rows = axis_positions(height, th, overlap)
    cols = axis_positions(width, tw, overlap)
    return [(r, c) for r in rows for c in cols]


def _ramp(n: int, overlap: int) -> np.ndarray:
    """1-D weights of a tile of ``n`` pixels (see the module docstring)."""
    d = np.minimum(np.arange(n), np.arange(n)[::-1]).astype(np.float64)  # distance to the edge
    m = blend_margin(overlap)
    width = overlap - 2 * m
    if width <= 0:  # overlap < 2: nothing to blend over
        return np.ones(n, dtype=np.float32)
    w = np.clip((d - m + 1) / (width + 1), 0.0, 1.0)
    return np.maximum(w, BLEND_EPS).astype(np.float32)


def blend_weights(tile: Size, overlap: int) -> np.ndarray:
    """Blending weights of one tile: 1 inside, falling towards the edges, > 0 everywhere.

    Args:
        tile: tile side, or ``(rows, cols)``.
        overlap: the overlap the tiles were planned with (:func:`plan_tiles`).

    Returns:
        ``(rows, cols)`` float32, the outer product of two 1-D ramps, in ``[BLEND_EPS ** 2, 1]``.
    """
    th, tw = _pair(tile)
    return np.outer(_ramp(th, overlap), _ramp(tw, overlap)).astype(np.float32)
