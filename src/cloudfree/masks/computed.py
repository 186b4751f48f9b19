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
  seen with 192 px of context on each side (more inwards at the scene's edge, at least one
  model tile).
- Block masks are cached, a little more than one row of blocks (the windows of every command
  go row by row), so memory is that of a few blocks, whatever the scene size: about 40 MB of
  masks for a 10980 x 10980 tile, plus one block's bands while it is computed.
- The mask is grown (:func:`~cloudfree.masks.dilate.dilate_classes`) after assembly, with as
  much context as the growth reaches, so it too is independent of the windows; a block where
  growth would leave under 1 % clear is not grown (:func:`~cloudfree.masks.dilate.grows`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol

import numpy as np

from cloudfree.masks.backends import MaskBackend, ReadBands
from cloudfree.masks.dilate import dilate_classes, grows
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


def _blocks(win: Window, block: int) -> Iterator[tuple[int, int, slice, slice]]:
    """The blocks of the grid that ``win`` (inside the scene) overlaps: ``(br, bc, rows,
    cols)``, with the rows and columns of the overlap in scene coordinates."""
    r, c, h, w = win
    for br in range(r // block, (r + h - 1) // block + 1):
        for bc in range(c // block, (c + w - 1) // block + 1):
            rows = slice(max(r, br * block), min(r + h, (br + 1) * block))
            cols = slice(max(c, bc * block), min(c + w, (bc + 1) * block))
            yield br, bc, rows, cols


def _shift(s: slice, by: int) -> slice:
    return slice(s.start - by, s.stop - by)


def _assemble(win: Window, block: int, get: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """The pixels of ``win`` (inside the scene) gathered from the blocks that hold them;
    ``get(br, bc)`` gives the block of grid row ``br``, column ``bc``."""
    r, c, h, w = win
    out: np.ndarray = np.empty((h, w), dtype=np.uint8)
    for br, bc, rows, cols in _blocks(win, block):
        b = get(br, bc)
        out[_shift(rows, r), _shift(cols, c)] = b[
            _shift(rows, br * block), _shift(cols, bc * block)
        ]
    return out


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


class _GrownMask:
    """A mask on a fixed grid of blocks, grown by ``dilate_px``, read by region.

    Subclasses give the mask of each block before growth (:meth:`_compute`); blocks are cached
    (a row of them and then some), and grown with the context the growth needs, so a pixel's
    class depends on the scene alone. A block whose grown mask would leave less than
    :data:`~cloudfree.masks.dilate.MIN_CLEAR_TO_GROW` of its pixels clear is not grown
    (:func:`~cloudfree.masks.dilate.grows`): the last clear pixels of a nearly covered area are
    worth more to a fill than a margin.
    """

    height: int
    width: int

    def __init__(self, dilate_px: float, block: int) -> None:
        if block < 1:
            raise ValueError(f"block must be >= 1 pixel, got {block}")
        self.dilate_px, self.block = float(dilate_px), int(block)
        self._cache: OrderedDict[tuple[int, int], tuple[np.ndarray, bool]] = OrderedDict()
        # A row of blocks and then some: the windows of every command go row by row.
        self._keep = 2 * math.ceil(self.width / self.block) + 2

    def _compute(self, win: Window) -> np.ndarray:
        """The mask (uint8, not grown) of block window ``win``."""
        raise NotImplementedError

    def _block(self, br: int, bc: int) -> tuple[np.ndarray, bool]:
        """Block ``(br, bc)``: its mask (not grown), and whether it is grown."""
        key = (br, bc)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        b = self.block
        win = clip_window((br * b, bc * b, b, b), self.height, self.width)
        mask = np.ascontiguousarray(self._compute(win), dtype=np.uint8)
        entry = (mask, grows(mask, self.dilate_px))
        self._cache[key] = entry
        while len(self._cache) > self._keep:
            self._cache.popitem(last=False)
        return entry

    def undilated(self, win: Window) -> np.ndarray:
        """The mask (not grown) of a window inside the scene, uint8 (h, w)."""
        return _assemble(win, self.block, lambda br, bc: self._block(br, bc)[0])

    def read(self, region: Window) -> np.ndarray:
        """The (grown) mask of ``region``, uint8 (h, w); outside the scene reflect-padded."""
        h, w = self.height, self.width
        inner = clip_window(region, h, w)
        if inner[2] == 0 or inner[3] == 0:
            raise ValueError(f"region {region} does not intersect the {h}x{w} scene")
        reach = int(math.ceil(self.dilate_px)) if self.dilate_px >= 1 else 0
        outer = clip_window(grow(inner, reach), h, w)  # the context the growth needs
        mask = self.undilated(outer)
        if reach:
            grown = dilate_classes(mask, self.dilate_px)
            for br, bc, rows, cols in _blocks(inner, self.block):
                if self._block(br, bc)[1]:  # the blocks that grow take the grown pixels
                    at = (_shift(rows, outer[0]), _shift(cols, outer[1]))
                    mask[at] = grown[at]
        dr, dc = inner[0] - outer[0], inner[1] - outer[1]
        mask = mask[dr : dr + inner[2], dc : dc + inner[3]]
        top, left = inner[0] - region[0], inner[1] - region[1]
        bottom = region[2] - top - inner[2]
        right = region[3] - left - inner[3]
        return np.ascontiguousarray(pad_reflect(mask, top, bottom, left, right))

    def close(self) -> None:
        """Drop the cached blocks."""
        self._cache.clear()


class ComputedMask(_GrownMask):
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
        self.backend, self.read_bands = backend, read_bands
        self.height, self.width, self.nodata = height, width, nodata
        super().__init__(dilate_px, block)
        backend.fit(read_bands, height, width)

    def _compute(self, win: Window) -> np.ndarray:
        outer = self._context(win)
        data = self.read_bands(self.backend.bands, outer)
        mask = self.backend.mask(dict(zip(self.backend.bands, data, strict=True)), self.nodata)
        dr, dc = win[0] - outer[0], win[1] - outer[1]
        return mask[dr : dr + win[2], dc : dc + win[3]]

    def _context(self, win: Window) -> Window:
        """The region a block is masked from: grown by the halo, clipped to the scene, then
        grown inwards to the backend's ``min_context`` where the scene edge cut it, its corner
        on the backend's ``align`` grid."""
        r, c, h, w = clip_window(grow(win, self.backend.halo), self.height, self.width)
        need, step = self.backend.min_context, self.backend.align
        (r, h) = _extend(r, h, need, self.height, step)
        (c, w) = _extend(c, w, need, self.width, step)
        return r, c, h, w


class DilatedMask(_GrownMask):
    """A mask file (:class:`~cloudfree.data.sentinel.scene.MaskSource`) grown by
    ``dilate_px`` pixels on the same grid of blocks, read like it."""

    def __init__(self, source: Any, dilate_px: float, block: int = BLOCK) -> None:
        self.source = source
        self.height, self.width = source.height, source.width
        super().__init__(dilate_px, block)

    def _compute(self, win: Window) -> np.ndarray:
        return self.source.read(win)

    def close(self) -> None:
        """Close the file."""
        super().close()
        self.source.close()
