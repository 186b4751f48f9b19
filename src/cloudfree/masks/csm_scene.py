"""The DSen2-CR mask of a scene too large for memory, equal to the mask of the whole image.

The published mask (spec section 3) compares each pixel with shadow thresholds relative to the
whole image, so a scene masked window by window needs two passes: :meth:`SceneMasker.fit`
streams B2, B8 and B11 into :class:`~cloudfree.masks.stats.ShadowStats` (the thresholds of the
whole scene, bit for bit), then :meth:`SceneMasker.mask` masks each window grown by
``CSMParams.halo`` pixels (closing 2 + 2, box mean 3; the median needs 2) and the caller keeps
the window: equal to ``cloud_shadow_mask`` / ``reference_csm`` of the whole array, pixel for
pixel. It is the ``dsen2cr`` masker of every whole-scene command
(:class:`~cloudfree.masks.backends.DSen2CRBackend`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

import numpy as np

from cloudfree.bands import s2_index
from cloudfree.masks.csm import csm_from_bands
from cloudfree.masks.params import CSM_BANDS, DEFAULT_PARAMS, CSMParams, to_reflectance
from cloudfree.masks.patch import finite_dn
from cloudfree.masks.stats import ShadowStats
from cloudfree.windows import Window, windows


class SceneMasker:
    """The DSen2-CR mask of a scene too large for memory, window by window (both passes above).

    The ``dsen2cr`` masker of every whole-scene command
    (:class:`~cloudfree.masks.backends.DSen2CRBackend`). The windows' masks are the mask of the
    whole image, pixel for pixel, if each window is masked with :attr:`halo` pixels of context
    (clipped to the scene) and cut back.

    Args:
        params: the mask constants (the paper's by default).
    """

    #: The bands the mask reads, in this order.
    bands: Final[tuple[str, ...]] = CSM_BANDS

    def __init__(self, params: CSMParams = DEFAULT_PARAMS) -> None:
        self.params = params
        #: Shadow thresholds (T3, T4) of the whole scene, set by :meth:`fit`.
        self.thresholds: tuple[float, float] | None = None

    @property
    def halo(self) -> int:
        """Pixels of context a window needs on each side for an exact mask."""
        return self.params.halo

    def fit(
        self,
        read_bands: Callable[[tuple[str, ...], Window], np.ndarray | Sequence[np.ndarray]],
        height: int,
        width: int,
        window: int,
    ) -> tuple[float, float]:
        """Pass 1: the shadow thresholds of the whole scene from its B2, B8 and B11.

        Args:
            read_bands: ``read_bands(names, window)`` -> the DN of those bands in a window.
            height, width: the scene's size, pixels; window: the side read at a time.
        """
        stats = ShadowStats()
        for win in windows(height, width, window):
            b2, b8, b11 = read_bands(("B2", "B8", "B11"), win)
            stats.update(b2, b8, b11)
        self.thresholds = stats.thresholds(self.params)
        return self.thresholds

    def mask(self, dn: Mapping[str, np.ndarray]) -> np.ndarray:
        """Pass 2: the mask (uint8 (h, w): 0 clear, 1 cloud, 2 shadow) of one window.

        Args:
            dn: band name -> DN (h, w) of every band of :attr:`bands` (non-finite values as
                0 DN), the window grown by :attr:`halo` where the scene allows.

        Raises:
            ValueError: :meth:`fit` has not run.
        """
        if self.thresholds is None:
            raise ValueError("SceneMasker.mask needs the scene's thresholds: call fit() first")
        refl = {b: to_reflectance(finite_dn(dn[b])) for b in self.bands}
        t3, t4 = self.thresholds
        return csm_from_bands(refl, np.float64(t3), np.float64(t4), self.params)

    def mask_stack(self, s2_dn: np.ndarray) -> np.ndarray:
        """:meth:`mask` of a (13, h, w) L1C stack in ``S2_BANDS`` order."""
        return self.mask({b: s2_dn[s2_index(b)] for b in self.bands})
