"""The inpainting interface: fill the cloud/shadow area of Sentinel-2 images from what is clear.

An :class:`Inpainter` takes 13-band L1C images in digital numbers (reflectance x 10000), one
``(13, H, W)`` or a batch ``(B, 13, H, W)``, and a mask of the pixels to fill (nonzero: cloud
or shadow; None computes the DSen2-CR cloud/shadow mask, spec section 3). What every method
shares lives here, so the guarantees hold for all of them:

- The mask is dilated by ``dilate`` pixels (a disc; the method's default, 0 for the classical
  fills, see :attr:`Inpainter.DEFAULT_DILATE`) unless that would leave too little clear area
  (:meth:`Inpainter.min_clear`), in which case the undilated mask is used (on heavily clouded patches the last clear pixels are worth
  more than a margin around the clouds: measured on the 15 real pairs of ROIs1970_fall 136,
  dilating them away doubles the error).
- Non-finite input values are filled too (they are added to the mask): the output never holds
  NaN.
- Pixels outside the (dilated) mask are returned unchanged, bit for bit, in the input's dtype;
  filled values are rounded and clipped to an integer dtype's range.
- An image with nothing to fill comes back unchanged at once. An image with too little clear
  area for the method (:meth:`Inpainter.min_clear`; no clear pixel at all for the classical
  fills) also comes back unchanged: there is nothing to fill from. This is the documented
  fallback for a mask covering everything, never an error, so a batch or a scene with a few
  fully clouded patches goes through.

Subclasses implement :meth:`Inpainter.fill` on the images that need it.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS


def dilate_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a boolean (H, W) mask by a disc of ``radius`` pixels (Euclidean distance <= radius)."""
    if radius <= 0 or not mask.any() or mask.all():
        return mask.copy()
    from scipy import ndimage

    return ndimage.distance_transform_edt(~mask) <= radius


def _as_batch(a: np.ndarray, ndim: int) -> tuple[np.ndarray, bool]:
    """``(a with a leading batch axis, whether one was added)`` for arrays of ``ndim`` (unbatched)."""
    if a.ndim == ndim:
        return a[None], True
    return a, False


def cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float values in ``dtype``: rounded and clipped to its range for integer dtypes."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


class Inpainter(abc.ABC):
    """A way of filling the masked pixels of 13-band Sentinel-2 images (module docstring).

    Args:
        dilate: pixels by which the mask is grown before filling; None for the method's
            :attr:`DEFAULT_DILATE`.

    Attributes:
        name: the method's name (``cloudfree inpaint --method NAME``).
        needs_sar: whether :meth:`__call__` needs ``s1``.
    """

    name: ClassVar[str]
    needs_sar: ClassVar[bool] = False
    #: Default mask dilation, pixels. 0 for the classical fills: on the 27 real SEN12MS-CR
    #: pairs of ``../shared/data`` and on simulated clouds over their clear images, every
    #: dilation of 1-12 px made Telea and push-pull slightly worse (benchmarks/README.md).
    DEFAULT_DILATE: ClassVar[int] = 0

    def __init__(self, dilate: int | None = None) -> None:
        d = self.DEFAULT_DILATE if dilate is None else int(dilate)
        if d < 0:
            raise ValueError(f"dilate must be >= 0 pixels, got {dilate}")
        self.dilate = d

    def min_clear(self, height: int, width: int) -> int:
        """Fewest clear pixels an image needs to be filled (fewer: returned unchanged)."""
        return 1

    @abc.abstractmethod
    def fill(self, x: np.ndarray, mask: np.ndarray, s1: np.ndarray | None) -> np.ndarray:
        """Fill the masked pixels of a batch.

        Args:
            x: (N, 13, H, W) float32 DN, finite; every image has masked and clear pixels.
            mask: (N, H, W) bool, True = fill (already dilated).
            s1: (N, 2, H, W) float32 dB (finite) if :attr:`needs_sar` (or given), else None.

        Returns:
            (N, 13, H, W) float32 DN; only the masked pixels are used.
        """

    def masks(self, s2: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The (B, H, W) bool mask of the pixels :meth:`__call__` may change, for a batch.

        That is the dilated mask (non-finite pixels added), or all False for an image returned
        unchanged (nothing to fill, or too little clear area to fill from).
        """
        x, _ = _as_batch(np.asarray(s2), 3)
        mb = None if mask is None else _as_batch(np.asarray(mask), 2)[0]
        return np.stack([self.fill_region(mi) for mi in self._base_mask(x, mb)])

    def _base_mask(self, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        if mask is None:
            from cloudfree.masks.patch import finite_dn, patch_mask

            # The mask of the image as a DN file would hold it (uint16: rounded, in range).
            dn = np.clip(np.rint(finite_dn(x)), 0, 65535).astype(np.uint16)
            m = patch_mask(dn) != 0
        else:
            m, _ = _as_batch(np.asarray(mask), 2)
            m = m != 0
        if x.dtype.kind == "f":
            m = m | ~np.isfinite(x).all(axis=1)
        return m

    def fill_region(self, mask: np.ndarray) -> np.ndarray:
        """The (H, W) bool pixels filled for one image's mask (nonzero = fill): the dilated
        mask, the undilated one where dilating leaves too little clear, or nothing."""
        m = np.asarray(mask) != 0
        need = self.min_clear(*m.shape)
        if not m.any() or int((~m).sum()) < need:
            return np.zeros_like(m)  # nothing to fill, or nothing to fill from: unchanged
        d = dilate_mask(m, self.dilate)
        return d if int((~d).sum()) >= need else m  # never dilate the last clear area away

    def _check(self, x: np.ndarray, mask: np.ndarray | None, s1: np.ndarray | None) -> None:
        if x.ndim != 4 or x.shape[1] != NUM_S2_BANDS:
            raise ValueError(
                f"s2 must be ({NUM_S2_BANDS}, H, W) or (B, {NUM_S2_BANDS}, H, W) Sentinel-2 DN "
                f"(reflectance x 10000), got shape {x.shape}"
            )
        if x.dtype.kind not in "uif":
            raise ValueError(f"s2 must hold integer or float DN, got dtype {x.dtype}")
        b, _, h, w = x.shape
        if mask is not None and mask.shape != (b, h, w):
            raise ValueError(
                f"mask must be ({h}, {w}) (or ({b}, {h}, {w}) for a batch) like the image: "
                f"nonzero = fill, got shape {mask.shape}"
            )
        if s1 is None:
            if self.needs_sar:
                raise ValueError(
                    f"the {self.name!r} inpainting matches pixels by their Sentinel-1 "
                    "backscatter and needs s1 (VV, VH in dB on the image's grid); pass s1, or "
                    "use a method without SAR (mask-fill, biharmonic, push-pull)"
                )
        elif s1.shape != (b, NUM_S1_BANDS, h, w):
            raise ValueError(
                f"s1 must be ({NUM_S1_BANDS}, {h}, {w}) (or ({b}, {NUM_S1_BANDS}, {h}, {w})) "
                f"VV, VH in dB on the image's grid, got shape {s1.shape}"
            )

    def __call__(
        self, s2: np.ndarray, mask: np.ndarray | None = None, s1: np.ndarray | None = None
    ) -> np.ndarray:
        """Inpaint one image or a batch (see the module docstring for the guarantees).

        Args:
            s2: (13, H, W) or (B, 13, H, W) L1C DN, any integer or float dtype.
            mask: (H, W) or (B, H, W), nonzero = fill; None: the DSen2-CR cloud/shadow mask.
            s1: (2, H, W) or (B, 2, H, W) S1 VV, VH in dB; needed by methods with
                :attr:`needs_sar`.

        Returns:
            Same shape and dtype as ``s2``: filled inside the mask, the input elsewhere.

        Raises:
            ValueError: shapes that do not fit, or a SAR method without ``s1``.
        """
        s2 = np.asarray(s2)
        x, single = _as_batch(s2, 3)
        mb = None if mask is None else _as_batch(np.asarray(mask), 2)[0]
        sb = None if s1 is None else _as_batch(np.asarray(s1), 3)[0]
        self._check(x, mb, sb)
        out = x.copy()
        todo: list[int] = []
        filled_masks: list[np.ndarray] = []
        for i, mi in enumerate(self._base_mask(x, mb)):
            di = self.fill_region(mi)
            if di.any():
                todo.append(i)
                filled_masks.append(di)
        if not todo:
            return out[0] if single else out
        xf = x[todo].astype(np.float32)
        md = np.stack(filled_masks)
        if x.dtype.kind == "f":
            # Non-finite pixels are in the mask; give the method finite numbers to work on.
            xf = np.where(np.isfinite(xf), xf, np.float32(0))
        s1f = None
        if sb is not None:
            s1f = _finite_s1(sb[todo].astype(np.float32))
        filled = self.fill(xf, md, s1f)
        for j, i in enumerate(todo):
            mj = md[j]
            out[i][:, mj] = cast_like(filled[j][:, mj], x.dtype)
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dilate={self.dilate})"


def _finite_s1(s1: np.ndarray) -> np.ndarray:
    """S1 with non-finite values replaced by each band's mean of its finite values (per image).

    Raises:
        ValueError: a band of an image has no finite value at all.
    """
    out = s1.copy()
    for i in range(out.shape[0]):
        for b in range(out.shape[1]):
            band = out[i, b]
            ok = np.isfinite(band)
            if ok.all():
                continue
            if not ok.any():
                raise ValueError(
                    "s1 has no finite value in band "
                    f"{('VV', 'VH')[b]} of image {i}: the SAR-matched fill needs backscatter there"
                )
            band[~ok] = band[ok].mean()
    return out
