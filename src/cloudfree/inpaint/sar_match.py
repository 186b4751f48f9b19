"""``sar-match``: fill each masked pixel with the spectra of the clear pixels that look alike in SAR.

Sentinel-1 sees through clouds, so under a cloud the backscatter still says what the ground is
like (water, field, forest, town). For every masked pixel this method finds the ``k`` clear
pixels of the same image whose S1 backscatter *and* position are closest, and takes the
inverse-distance weighted mean of their 13-band spectra. A cheap fill that uses what Stable
Diffusion never sees.

Features of a pixel (standardised so that one unit is comparable across them):

- VV and VH in dB, clipped to the DSen2-CR ranges (spec section 2: [-25, 0], [-32.5, 0]) and
  averaged over 9 x 9 and 27 x 27 px boxes: speckle makes single SAR pixels unreliable, and two
  scales describe both the pixel's surface and its surroundings. Each is divided by its standard
  deviation over the clear pixels.
- row and column divided by :data:`POSITION_SCALE_PX`: 16 px of distance weigh as much as one
  standard deviation of backscatter, so the match stays local unless SAR says otherwise.

Chosen on simulated clouds over the real S1/S2 pairs of ``../shared/data`` (Sen1Floods11,
BigEarthNet, SEN12MS-CR; truth mask): MAE 0.0112 vs 0.0122 for ``mask-fill``, recon 0.0214 vs
0.0224, SAM 2.45 vs 2.65 deg; position scales of 8-128 px, k 4-32 and single-scale features
were worse (``benchmarks/README.md``). At most :data:`MAX_REFERENCES` clear pixels (a seeded
random subset) are searched, so the cost stays bounded on large windows.
"""

from __future__ import annotations

from typing import ClassVar, Final

import numpy as np

from cloudfree.bands import DSEN2CR
from cloudfree.inpaint.base import Inpainter

#: Distance in pixels that weighs as much as one standard deviation of backscatter.
POSITION_SCALE_PX: Final[float] = 16.0
#: Sides of the box means of the backscatter features, pixels.
SAR_SMOOTHING_PX: Final[tuple[int, ...]] = (9, 27)
#: Clear pixels whose spectra are averaged for each masked pixel.
NEIGHBOURS: Final[int] = 8
#: Clear pixels searched at most (a seeded random subset beyond that).
MAX_REFERENCES: Final[int] = 40_000
#: Added to the feature distance before inverting it into a weight (an exact match would
#: otherwise take all the weight).
DISTANCE_OFFSET: Final[float] = 0.1
#: Masked pixels matched per query (bounds the (13, n, k) gather to ~30 MB).
_CHUNK: Final[int] = 65_536


def sar_features(s1_db: np.ndarray) -> np.ndarray:
    """(2 * len(SAR_SMOOTHING_PX), H, W) float32: clipped VV, VH box means at each scale."""
    from scipy import ndimage

    feats = []
    for size in SAR_SMOOTHING_PX:
        for b, (lo, hi) in enumerate(DSEN2CR.s1_clip):
            band = np.clip(s1_db[b].astype(np.float32), lo, hi)
            feats.append(ndimage.uniform_filter(band, size, mode="reflect"))
    return np.stack(feats)


class SarMatch(Inpainter):
    """SAR-guided nearest-neighbour fill (``sar-match``, module docstring).

    Args:
        neighbours: clear pixels averaged per masked pixel.
        position_scale: pixels of distance worth one standard deviation of backscatter.
        max_references: clear pixels searched at most.
        seed: seed of the subset drawn when there are more clear pixels than that.
        dilate: see :class:`~cloudfree.inpaint.base.Inpainter`.
    """

    name: ClassVar[str] = "sar-match"
    needs_sar: ClassVar[bool] = True

    def __init__(
        self,
        neighbours: int = NEIGHBOURS,
        position_scale: float = POSITION_SCALE_PX,
        max_references: int = MAX_REFERENCES,
        seed: int = 0,
        dilate: int | None = None,
    ) -> None:
        super().__init__(dilate)
        if neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {neighbours}")
        if not position_scale > 0:
            raise ValueError(f"position_scale must be > 0 pixels, got {position_scale}")
        if max_references < 1:
            raise ValueError(f"max_references must be >= 1, got {max_references}")
        self.neighbours, self.position_scale = int(neighbours), float(position_scale)
        self.max_references, self.seed = int(max_references), int(seed)

    def fill(self, x: np.ndarray, mask: np.ndarray, s1: np.ndarray | None) -> np.ndarray:
        """See :meth:`Inpainter.fill`."""
        assert s1 is not None  # checked by Inpainter.__call__
        out = x.copy()
        for img, m, s in zip(out, mask, s1, strict=True):
            img[:, m] = self._fill_one(img, m, s)
        return out

    def _fill_one(self, img: np.ndarray, m: np.ndarray, s1_db: np.ndarray) -> np.ndarray:
        """(13, n_masked) spectra for the masked pixels of one image."""
        from scipy.spatial import cKDTree

        h, w = m.shape
        f = sar_features(s1_db)
        clear = ~m
        sd = f[:, clear].std(axis=1).astype(np.float32)
        f /= np.maximum(sd, np.float32(1e-3))[:, None, None]  # a flat band: no information
        rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
        scale = np.float32(self.position_scale)
        feats = np.concatenate([f, (rows / scale)[None], (cols / scale)[None]])
        feats = feats.reshape(feats.shape[0], -1).T
        ref = np.flatnonzero(clear.ravel())
        if len(ref) > self.max_references:
            rng = np.random.default_rng(self.seed)
            ref = np.sort(rng.choice(ref, self.max_references, replace=False))
        k = min(self.neighbours, len(ref))
        tree = cKDTree(feats[ref])
        spectra = img.reshape(img.shape[0], -1)[:, ref]  # (13, n_ref)
        targets = np.flatnonzero(m.ravel())
        out = np.empty((img.shape[0], len(targets)), dtype=np.float32)
        for start in range(0, len(targets), _CHUNK):  # bounded memory on large windows
            sel = targets[start : start + _CHUNK]
            dist, idx = tree.query(feats[sel], k=k)
            if k == 1:
                dist, idx = dist[:, None], idx[:, None]
            weights = (1.0 / (dist + DISTANCE_OFFSET)).astype(np.float32)
            weights /= weights.sum(axis=1, keepdims=True)
            out[:, start : start + len(sel)] = (spectra[:, idx] * weights[None]).sum(axis=-1)
        return out
