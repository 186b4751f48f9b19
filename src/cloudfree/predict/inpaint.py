"""Inpainting of a whole scene: GeoTIFF in, georeferenced GeoTIFF out, any size, in windows.

:func:`inpaint_scene` runs an inpainting method (:mod:`cloudfree.inpaint`) over a scene with
the machinery of ``cloudfree predict`` (:func:`cloudfree.predict.scene.predict_scene`): windows
read with a halo, overlapping tiles blended, the output written atomically with the input's
CRS, transform, size, dtype, nodata and band names. The cloud/shadow mask is the given file or,
without one, the mask computed by ``mask_backend`` (ukis-csmask's CNN where installed), grown
by ``dilate`` metres (``mask_out`` writes it as used). Pixels outside the mask (and outside a
method's own margin: Stable Diffusion grows it by 8 px more, :data:`~cloudfree.inpaint.sd.
SD_DILATE_PX`) are copied from the input file, bit for bit.

An inpainting sees the context of its tile: the classical methods default to 1024 px tiles
overlapping by 256 px (a cloud wider than a tile is filled from the clear pixels of the tiles
it spans, blended), Stable Diffusion to 256 px tiles (each upsampled to its 512 px working
size). ``sar-match`` needs S1; where S1 does not cover the scene, ``mask-fill`` fills instead.
"""

from __future__ import annotations

import os
from typing import Any, Final

#: Tile and overlap, pixels, of the classical and SAR-matched fills (more context = better fills).
CLASSICAL_TILE: Final[tuple[int, int]] = (1024, 256)
#: Tile and overlap of Stable Diffusion (its working size is 2x this tile).
SD_TILE: Final[tuple[int, int]] = (256, 64)


def inpaint_scene(
    s2: str | os.PathLike[str],
    out: str | os.PathLike[str],
    mask: str | os.PathLike[str] | None = None,
    method: str = "mask-fill",
    s1: str | os.PathLike[str] | None = None,
    *,
    options: dict[str, Any] | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 4,
    device: str = "auto",
    mask_out: str | os.PathLike[str] | None = None,
    b10: float | None = None,
    progress: bool = True,
    mask_backend: str = "auto",
    dilate: str | float | None = None,
) -> dict[str, Any]:
    """Inpaint the cloud/shadow area of a Sentinel-2 scene and write it as a GeoTIFF.

    Args:
        s2: 13-band L1C (or 12-band L2A, B10 filled) GeoTIFF, any size, dtype and CRS.
        out: output GeoTIFF (the input's grid, dtype and nodata), written atomically.
        mask: 1-band mask GeoTIFF on the S2 grid (0 clear, nonzero fill); None computes the
            cloud/shadow mask with ``mask_backend``.
        method: a method of :data:`cloudfree.inpaint.INPAINT_METHODS`.
        s1: S1 GeoTIFF (VV, VH dB) on any grid overlapping ``s2``; needed by ``sar-match``.
        options: the method's options (:func:`cloudfree.inpaint.get_inpainter`; its own
            ``dilate`` is in pixels, on top of the mask's growth), e.g.
            ``{"weights": "sd/", "steps": 20, "seed": 0}`` for ``"stable-diffusion"``; for
            Stable Diffusion ``device`` is added unless given.
        tile, overlap: tile side and overlap, pixels; None: :data:`CLASSICAL_TILE` or
            :data:`SD_TILE`.
        batch_size: tiles per call of the method.
        device: where Stable Diffusion runs (``"auto"``: CUDA if available).
        mask_out: also write the mask used (uint8, 0 clear, 1 cloud, 2 shadow), growth
            included.
        b10: B10 DN inserted into 12-band L2A input.
        progress: show a progress bar.
        mask_backend: the cloud/shadow masker (:mod:`cloudfree.masks.backends`).
        dilate: growth of the mask, metres (or ``"6px"``); None: the masker's default, and a
            mask file as it is.

    Returns:
        The summary of :func:`cloudfree.predict.scene.predict_scene` (``method`` is the
        inpainting's name).

    Raises:
        ValueError: unknown method or option; ``sar-match`` without ``s1``.
        DataError: unreadable inputs, a mask of another size or grid, unusable SD weights.
    """
    from cloudfree.inpaint.registry import get_inpainter
    from cloudfree.methods.baselines import InpaintMethod
    from cloudfree.predict.scene import predict_scene

    opts = dict(options or {})
    if method == "stable-diffusion":
        opts.setdefault("device", device)
    inpainter = get_inpainter(method, **opts)
    if inpainter.needs_sar and s1 is None:
        raise ValueError(
            f"the {method!r} inpainting needs S1 (--s1 S1.tif, VV and VH in dB); or use a method "
            "without SAR (mask-fill, biharmonic, push-pull)"
        )
    default_tile, default_overlap = SD_TILE if method == "stable-diffusion" else CLASSICAL_TILE
    return predict_scene(
        s2,
        out,
        InpaintMethod(inpainter),
        s1=s1 if inpainter.needs_sar else None,
        mask=mask,
        checkpoint_nosar="mask-fill",  # where S1 is missing, the SAR-free fill
        tile=default_tile if tile is None else tile,
        overlap=default_overlap if overlap is None else overlap,
        batch_size=batch_size,
        device=device,
        mask_out=mask_out,
        b10=b10,
        progress=progress,
        mask_backend=mask_backend,
        dilate=dilate,
    )
