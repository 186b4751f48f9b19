"""Tiles of a scene prediction: tile sides, and the blend across the edge of the S1 coverage.

The tile grid and the blending weights are those of :mod:`cloudfree.tiles` (re-exported here);
this module adds what only scene prediction needs: :func:`fit_tile` (the shortest tile side
covering an axis with as few tiles) and :func:`coverage_weights` (the SAR model's share of each
pixel near the edge of the S1 coverage, blended as tiles are).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from cloudfree.tiles import (  # noqa: F401  (re-exported: the tiling of scene prediction)
    BLEND_EPS,
    Size,
    _pair,
    _ramp,
    axis_positions,
    blend_margin,
    blend_weights,
    plan_tiles,
)

#: Tile sides chosen by :func:`fit_tile` are rounded up to a multiple of this.
TILE_ALIGN: Final[int] = 16


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
