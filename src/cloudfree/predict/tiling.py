"""Tiles with overlap, the weights that blend them, and reflect padding at scene borders.

A scene is predicted window by window (:mod:`cloudfree.predict.scene`); each window, grown by a
halo, is cut into overlapping tiles, the model runs on batches of tiles, and the tile outputs are
averaged with :func:`blend_weights`::

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

import math
from typing import Final

import numpy as np

#: Weight of the untrusted outer margin of a tile: > 0 (no division by 0 anywhere), small enough
#: that its contribution is far below the float32 resolution of the blended value.
BLEND_EPS: Final[float] = 1e-6

#: Tile sides chosen by :func:`fit_tile` are rounded up to a multiple of this.
TILE_ALIGN: Final[int] = 16

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


def fit_tile(length: int, tile: int, overlap: int) -> int:
    """The smallest tile side <= ``tile`` covering ``length`` with as few tiles as ``tile`` needs.

    ``plan_tiles`` with the full ``tile`` makes its last tile flush with the edge, and that tile
    may repeat most of its neighbour's pixels (1056 px with 256-px tiles and 32 overlap: 5 tiles,
    1280 px computed). Spreading the same number of tiles evenly with a shorter side (240 px:
    1200 px computed) gives the same result per pixel (any side works for a convolutional model)
    for less work.

    Returns:
        A side in ``(overlap, tile]`` (a multiple of ``TILE_ALIGN`` unless capped by ``tile``),
        or ``length`` if one tile covers the axis.
    """
    if tile >= length:
        return length
    n = math.ceil((length - overlap) / (tile - overlap))
    side = math.ceil((length + (n - 1) * overlap) / n)
    # Rounded up to a multiple of 16 where the cap allows: convolution kernels (NNPACK's
    # Winograd blocks, cuDNN) are ~20 % slower on odd sides (232 vs 224 or 240 px, measured).
    side = min(tile, -(-side // TILE_ALIGN) * TILE_ALIGN)
    return max(side, overlap + 1)


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


def coverage_reach(overlap: int) -> int:
    """Pixels from the edge of the S1 coverage at which :func:`coverage_weights` reaches 1."""
    m = blend_margin(overlap)
    return max(overlap - m, 0)


def coverage_weights(covered: np.ndarray, overlap: int) -> np.ndarray:
    """Weight of a SAR model's prediction at each pixel, by the distance to the S1 coverage edge.

    Near the edge of the S1 coverage the SAR model sees S1 filled with a neutral value within
    its receptive field, as a tile sees zero padding at its edge; there the no-SAR model takes
    over, and the two are blended as tiles are (:func:`_ramp`, along the Euclidean distance
    ``d`` to the nearest pixel without S1): weight 0 without S1 and in the first
    ``margin = overlap // 4`` covered pixels, then rising linearly over the next
    ``overlap - 2 * margin``, 1 from :func:`coverage_reach` on: no seam. With no overlap the
    switch is hard at the edge, as between tiles.

    Args:
        covered: (H, W) bool, True where S1 has data.
        overlap: the tiles' overlap (the model's measured edge effect).

    Returns:
        (H, W) float32 in [0, 1].
    """
    covered = np.asarray(covered, dtype=bool)
    if covered.all():
        return np.ones(covered.shape, dtype=np.float32)
    if not covered.any():
        return np.zeros(covered.shape, dtype=np.float32)
    m = blend_margin(overlap)
    width = overlap - 2 * m
    if width <= 0:
        return covered.astype(np.float32)
    from scipy.ndimage import distance_transform_edt

    d = distance_transform_edt(covered)  # 1 for a covered pixel beside an uncovered one
    return np.clip((d - m) / (width + 1), 0.0, 1.0).astype(np.float32)
