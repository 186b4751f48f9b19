"""Inpainting methods by name, and :func:`inpaint`, the library call on arrays and batches."""

from __future__ import annotations

import inspect
from typing import Any, Final

import numpy as np

from cloudfree.inpaint.base import Inpainter
from cloudfree.inpaint.classical import Biharmonic, MaskFill, PushPull
from cloudfree.inpaint.sar_match import SarMatch
from cloudfree.inpaint.sd import StableDiffusion

_CLASSES: Final[dict[str, type[Inpainter]]] = {
    cls.name: cls for cls in (MaskFill, Biharmonic, PushPull, SarMatch, StableDiffusion)
}
#: Names of the inpainting methods (``cloudfree inpaint --method``).
INPAINT_METHODS: Final[tuple[str, ...]] = tuple(_CLASSES)
#: The default method: OpenCV's Telea fill, the project's ``mask-fill`` baseline.
DEFAULT_METHOD: Final[str] = "mask-fill"
#: The Stable Diffusion inpainting: a baseline once its weights folder is given (``sd_weights``).
SD_BASELINE: Final[str] = "stable-diffusion"
#: Names of the non-learned baselines that need no weights (issues 5 and 11): the cloudy input
#: as it is, and every inpainting but Stable Diffusion. Reserved: no weights take these names.
BASELINES: Final[tuple[str, ...]] = ("identity", *(m for m in INPAINT_METHODS if m != SD_BASELINE))


def check_method(method: str) -> None:
    """Raise ValueError (suggesting the closest name) unless ``method`` is an inpainting
    method of :data:`INPAINT_METHODS`; cheap, for checks before any work."""
    import difflib

    if method not in _CLASSES:
        close = difflib.get_close_matches(method, INPAINT_METHODS, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown inpainting method {method!r}{hint} (expected one of {INPAINT_METHODS})"
        )


def get_inpainter(method: str = DEFAULT_METHOD, **options: Any) -> Inpainter:
    """The inpainter called ``method``, built with ``options`` (e.g. ``dilate=4``,
    ``weights="sd-inpainting/"`` and ``steps=20`` for ``"stable-diffusion"``).

    Raises:
        ValueError: unknown method, or an option the method does not take (the message lists
            the ones it does).
    """
    check_method(method)
    cls = _CLASSES[method]
    accepted = [
        p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "pipeline")
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"the {method!r} inpainting takes no option {unknown}; its options: {accepted}"
        )
    return cls(**options)


def inpaint(
    s2: np.ndarray,
    mask: np.ndarray | None = None,
    method: str | Inpainter = DEFAULT_METHOD,
    *,
    s1: np.ndarray | None = None,
    **options: Any,
) -> np.ndarray:
    """Fill the cloud/shadow area of one Sentinel-2 image or a batch.

    Args:
        s2: (13, H, W) or (B, 13, H, W) L1C DN (reflectance x 10000), any integer or float dtype.
        mask: (H, W) or (B, H, W), nonzero = fill (cloud or shadow); None computes the DSen2-CR
            cloud/shadow mask of ``s2`` (spec section 3).
        method: a name of :data:`INPAINT_METHODS` or an :class:`Inpainter` (to reuse a loaded
            Stable Diffusion pipeline over many calls).
        s1: (2, H, W) or (B, 2, H, W) S1 VV, VH in dB on the same grid; needed by ``sar-match``.
        **options: the method's options (:func:`get_inpainter`), with a name only.

    Returns:
        Same shape and dtype as ``s2``: the masked (dilated) pixels filled, every other pixel
        unchanged bit for bit. Images with nothing to fill, or nothing clear to fill from,
        come back unchanged (:mod:`cloudfree.inpaint.base`).

    Raises:
        ValueError: shapes that do not fit, an unknown method or option, ``sar-match``
            without ``s1``.
        DataError: unusable Stable Diffusion weights.

    Example::

        from cloudfree.inpaint import inpaint
        filled = inpaint(s2_dn, method="push-pull")                # DSen2-CR mask computed
        filled = inpaint(s2_dn, my_mask, "sar-match", s1=s1_db)
    """
    if isinstance(method, Inpainter):
        if options:
            raise ValueError("options are for a method given by name; configure the Inpainter")
        inpainter = method
    else:
        inpainter = get_inpainter(method, **options)
    return inpainter(s2, mask, s1)
