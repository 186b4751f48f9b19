"""A scene's cloud/shadow mask, computed by a masker and read window by window like a file.

Every whole-scene command (``cloudfree mask``, ``predict``, ``inpaint``) takes its mask from a
:class:`ComputedMask` (or from a mask file the user gave, :class:`DilatedMask`), so that they
all give one scene the same mask, pixel for pixel:

- The masker runs on a **fixed grid of blocks** (:data:`BLOCK` px, from the scene's top-left
  corner), each read with :attr:`~cloudfree.masks.backends.MaskBackend.halo` pixels of context
  (clipped to the scene). The mask of a pixel therefore depends on the scene alone, never on
  the windows a command reads, its tiles or its halo. For the maskers whose context is finite
  (``dsen2cr``: its filters; ``s2cloudless``: its discs) the halo covers it, and the result is
  the mask of the whole image computed at once; for the CNN it is the mask of a 1536-px block
  seen with 192 px of context on each side.
- Block masks are cached, a little more than one row of blocks (the windows of every command
  go row by row), so memory is that of a few blocks, whatever the scene size: about 40 MB of
  masks for a 10980 x 10980 tile, plus one block's bands while it is computed.
- The mask is grown (:func:`~cloudfree.masks.dilate.dilate_classes`) after assembly, with as
  much context as the growth reaches, so it too is independent of the windows.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Final, Protocol

import numpy as np

from cloudfree.masks.backends import MaskBackend, ReadBands
from cloudfree.masks.dilate import dilate_classes
from cloudfree.windows import Window, clip_window, grow, pad_reflect

#: Side of the masker's blocks, pixels: a multiple of 3 (whole 30 m cells of a 10 m scene for
#: the CNN's coarse pass), of 16 and of 512 (the output's GeoTIFF blocks).
BLOCK: Final[int] = 1536


class SceneMask(Protocol):
    """What prediction reads a mask from: a file or a computed mask."""

    height: int
    width: int

    def read(self, region: Window) -> np.ndarray:
        """uint8 (h, w) mask of ``region`` (reflect-padded outside the scene)."""

    def close(self) -> None:
        """Release files."""


def _assemble(
    win: Window, block: int, get: Any, dtype: type = np.uint8
) -> np.ndarray:  # fmt: skip
    """The pixels of ``win`` (inside the scene) gathered from the blocks that hold them;
    ``get(br, bc)`` gives the block of grid row ``br``, column ``bc``."""
    r, c, h, w = win
    out = np.empty((h, w), dtype=dtype)
    for br in range(r // block, (r + h - 1) // block + 1):
        for bc in range(c // block, (c + w - 1) // block + 1):
            b = get(br, bc)
            r0, c0 = br * block, bc * block
            rr0, rr1 = max(r, r0), min(r + h, r0 + b.shape[0])
            cc0, cc1 = max(c, c0), min(c + w, c0 + b.shape[1])
            out[rr0 - r : rr1 - r, cc0 - c : cc1 - c] = b[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0]
    return out


def _read_grown(
    undilated: Any, region: Window, height: int, width: int, dilate_px: float
) -> np.ndarray:
    """Read ``region`` (may reach outside the scene) from ``undilated(window inside the
    scene)``, grown by ``dilate_px`` with the context the growth needs, reflect-padded."""
    inner = clip_window(region, height, width)
    if inner[2] == 0 or inner[3] == 0:
        raise ValueError(f"region {region} does not intersect the {height}x{width} scene")
    reach = int(math.ceil(dilate_px)) if dilate_px >= 1 else 0
    outer = clip_window(grow(inner, reach), height, width)
    mask = undilated(outer)
    if reach:
        mask = dilate_classes(mask, dilate_px)
        dr, dc = inner[0] - outer[0], inner[1] - outer[1]
        mask = mask[dr : dr + inner[2], dc : dc + inner[3]]
    top, left = inner[0] - region[0], inner[1] - region[1]
    bottom = region[2] - top - inner[2]
    right = region[3] - left - inner[3]
    return np.ascontiguousarray(pad_reflect(mask, top, bottom, left, right))


def _extend(start: int, length: int, need: int, size: int, step: int) -> tuple[int, int]:
    """One axis of :meth:`ComputedMask._context`: ``[start, start + length)`` grown to at
    least ``need`` pixels inside ``[0, size)`` (towards the middle: the edge side has none),
    its start a multiple of ``step``."""
    end = start + length
    start -= start % step
    if end - start < need:
        start = max(0, min(start, size - need))
        start -= start % step
        end = min(size, max(end, start + need))
    return start, end - start


class ComputedMask:
    """The mask of a scene computed by a masker (module docstring).

    Args:
        backend: the masker (:func:`~cloudfree.masks.backends.make_backend`).
        read_bands: ``read_bands(names, window)`` -> raw values of those bands in a window
            inside the scene.
        height, width: the scene's size, pixels.
        nodata: the scene's nodata value (None: pixels 0 in every band hold no data).
        dilate_px: growth of the mask, pixels (:func:`~cloudfree.masks.dilate.dilate_classes`).
        block: side of the masker's blocks (:data:`BLOCK`; smaller in tests).
    """

    def __init__(
        self,
        backend: MaskBackend,
        read_bands: ReadBands,
        height: int,
        width: int,
        nodata: float | None = None,
        dilate_px: float = 0.0,
        block: int = BLOCK,
    ) -> None:
        if block < 1:
            raise ValueError(f"block must be >= 1 pixel, got {block}")
        self.backend, self.read_bands = backend, read_bands
        self.height, self.width, self.nodata = height, width, nodata
        self.dilate_px, self.block = float(dilate_px), int(block)
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        # A row of blocks and then some: the windows of every command go row by row.
        self._keep = 2 * math.ceil(width / self.block) + 2
        backend.fit(read_bands, height, width)

    def _block(self, br: int, bc: int) -> np.ndarray:
        key = (br, bc)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        b = self.block
        win = clip_window((br * b, bc * b, b, b), self.height, self.width)
        outer = self._context(win)
        data = self.read_bands(self.backend.bands, outer)
        mask = self.backend.mask(dict(zip(self.backend.bands, data, strict=True)), self.nodata)
        dr, dc = win[0] - outer[0], win[1] - outer[1]
        out = np.ascontiguousarray(mask[dr : dr + win[2], dc : dc + win[3]], dtype=np.uint8)
        self._cache[key] = out
        while len(self._cache) > self._keep:
            self._cache.popitem(last=False)
        return out

    def _context(self, win: Window) -> Window:
        """The region a block is masked from: grown by the halo, clipped to the scene, then
        grown inwards to the backend's ``min_context`` where the scene edge cut it, its corner
        on the backend's ``align`` grid."""
        r, c, h, w = clip_window(grow(win, self.backend.halo), self.height, self.width)
        need, step = self.backend.min_context, self.backend.align
        (r, h) = _extend(r, h, need, self.height, step)
        (c, w) = _extend(c, w, need, self.width, step)
        return r, c, h, w

    def undilated(self, win: Window) -> np.ndarray:
        """The masker's mask (not grown) of a window inside the scene, uint8 (h, w)."""
        return _assemble(win, self.block, self._block)

    def read(self, region: Window) -> np.ndarray:
        """The (grown) mask of ``region``, uint8 (h, w); outside the scene reflect-padded."""
        return _read_grown(self.undilated, region, self.height, self.width, self.dilate_px)

    def close(self) -> None:
        """Drop the cached blocks."""
        self._cache.clear()


class DilatedMask:
    """A mask file (:class:`~cloudfree.data.sentinel.scene.MaskSource`) grown by
    ``dilate_px`` pixels, read like it."""

    def __init__(self, source: Any, dilate_px: float) -> None:
        self.source, self.dilate_px = source, float(dilate_px)
        self.height, self.width = source.height, source.width

    def read(self, region: Window) -> np.ndarray:
        """The grown mask of ``region``, uint8 (h, w)."""
        return _read_grown(self.source.read, region, self.height, self.width, self.dilate_px)

    def close(self) -> None:
        """Close the file."""
        self.source.close()
