"""Cloud/shadow masks of whole GeoTIFF scenes, in windows, with bounded memory.

:func:`mask_scene` (``cloudfree mask``) writes the mask of a scene with any of the maskers of
:mod:`cloudfree.masks.backends` (the default: ukis-csmask's CNN where installed), on any
band layout (:mod:`cloudfree.masks.layout`), grown by ``dilate``; :func:`scene_mask_for`
gives ``predict`` and ``inpaint`` the same mask (:class:`~cloudfree.masks.computed.
ComputedMask`), so the three commands agree pixel for pixel.

Memory is that of one block of the masker with its halo and a row of block masks
(:mod:`cloudfree.masks.computed`), whatever the scene size. The ``dsen2cr`` masker
(:class:`~cloudfree.masks.csm_scene.SceneMasker`) equals the mask of the whole image computed
at once, pixel for pixel, and masks nodata pixels (e.g. outside the swath;
:func:`cloudfree.units.nodata_pixels`) as the values they hold, as the published algorithm
does on a patch; the CNN calls them clear. The class fractions reported are those of the
pixels with data, beside the nodata fraction.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.bands import GSD_M, S2_BANDS
from cloudfree.errors import DataError
from cloudfree.io import RasterMeta, atomic_path, gdal_cache_env, gdal_path, mask_to_cog, read_meta
from cloudfree.masks.backends import DEFAULT_DILATE_M, ReadBands, make_backend, resolve_backend
from cloudfree.masks.computed import BLOCK, ComputedMask, DilatedMask, SceneMask
from cloudfree.masks.dilate import Distance, dilation_pixels, parse_distance, pixel_size_m
from cloudfree.masks.layout import LEVELS, band_layout, product_level
from cloudfree.masks.params import (
    DEFAULT_PARAMS,
    CSMParams,
)
from cloudfree.masks.report import (
    class_counts,
    describe_fractions,
    mask_fractions,
    mask_warnings,
)
from cloudfree.units import check_scene, nodata_pixels, zero_missing
from cloudfree.windows import Window, windows

#: Windows are multiples of this (the GeoTIFF tile size must be a multiple of 16).
_ALIGN: Final[int] = 16
#: A projected CRS for arrays held in memory: only their pixel size in metres matters.
_ARRAY_CRS: Final[str] = "EPSG:32633"


def _tile_size(window: int) -> int:
    """Largest GeoTIFF tile side (<= 512, multiple of 16) dividing the window, so that every
    window writes whole tiles and no compressed tile is written twice."""
    return next(t for t in (512, 256, 128, 64, 32, 16) if window % t == 0)


def _growth(name: str | None, dilate: str | float | Distance | None, gsd: float) -> dict[str, Any]:
    """``dilate_m`` (None when given in pixels) and ``dilate_px`` of a mask's growth: ``dilate``,
    or the default of masker ``name`` (no growth for a mask file, ``name`` None)."""
    if dilate is None:
        dilate = 0.0 if name is None else DEFAULT_DILATE_M[name]
    distance = parse_distance(dilate)
    return {
        "dilate_m": distance.value if distance.unit == "m" else None,
        "dilate_px": dilation_pixels(distance, gsd),
    }


def scene_mask_for(
    backend: str,
    read_bands: ReadBands,
    meta: RasterMeta,
    level: str,
    layout_bands: Sequence[str] | None,
    dilate: str | float | Distance | None = None,
    where: str | os.PathLike[str] | None = None,
    block: int = BLOCK,
    params: CSMParams = DEFAULT_PARAMS,
) -> tuple[ComputedMask, dict[str, Any]]:
    """The computed mask of a scene, as every whole-scene command takes it.

    Args:
        backend: a ``--mask-backend`` name (``auto`` resolved here, with its note).
        read_bands: ``read_bands(names, window)`` -> raw values of bands by name.
        meta: the scene's grid (size, CRS, transform, nodata).
        level: ``"l1c"`` or ``"l2a"``.
        layout_bands: the bands the scene holds (None: the reader supplies every band).
        dilate: growth of the mask (``--dilate``: metres, or ``"6px"``); None: the masker's
            default (:data:`~cloudfree.masks.backends.DEFAULT_DILATE_M`).
        where: the scene, for messages; block: the masker's block side; params: constants
            of the ``dsen2cr`` mask.

    Returns:
        ``(mask, info)``: the :class:`ComputedMask` and what to report of it:
        ``mask_backend``, ``masker`` (one line), ``level``, ``dilate_m`` (metres, None when
        given in pixels), ``dilate_px``.
    """
    name = resolve_backend(backend)
    gsd = pixel_size_m(meta)
    masker = make_backend(name, level, gsd, layout_bands, where, params, window=block)
    growth = _growth(name, dilate, gsd)
    # read_bands gives missing pixels as 0 in every band, whatever the file declares
    # (cloudfree.units.zero_missing): nodata None says just that.
    mask = ComputedMask(
        masker, read_bands, meta.height, meta.width, None, growth["dilate_px"], block
    )
    # Described once fitted: the CNN's scales depend on the scene's size.
    return mask, {"mask_backend": name, "masker": masker.describe(), "level": level, **growth}


def file_mask_for(
    source: Any, meta: RasterMeta, dilate: str | float | Distance | None = None
) -> tuple[SceneMask, dict[str, Any]]:
    """A mask file (:class:`~cloudfree.data.sentinel.scene.MaskSource`) as a whole-scene
    command takes it: as it is, or grown by ``dilate`` when given (:class:`~cloudfree.masks.
    computed.DilatedMask`); and ``dilate_m``, ``dilate_px`` to report."""
    info = _growth(None, dilate, pixel_size_m(meta))
    if dilate is None:
        return source, info
    return DilatedMask(source, info["dilate_px"]), info


def mask_array(
    dn: np.ndarray,
    backend: str = "auto",
    level: str = "l1c",
    gsd_m: float = GSD_M,
    dilate: str | float | Distance | None = None,
    bands: Sequence[str] = S2_BANDS,
) -> np.ndarray:
    """The mask of an image held in memory, as :func:`mask_scene` would write it for the
    same image as a file (the same masker, blocks and growth).

    Args:
        dn: (C, H, W) digital numbers (reflectance x 10000) of ``bands``.
        backend, dilate: as :func:`mask_scene`; level: ``"l1c"`` or ``"l2a"``; gsd_m: pixel
            size, metres; bands: the band of each of the C planes.

    Returns:
        uint8 (H, W): 0 clear, 1 cloud, 2 shadow.
    """
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    a = np.asarray(dn)
    if a.ndim != 3 or a.shape[0] != len(bands):
        raise ValueError(
            f"dn must be ({len(bands)}, H, W) for the bands {tuple(bands)}, got {a.shape}"
        )
    index = {b: i for i, b in enumerate(bands)}

    def read(names: tuple[str, ...], win: Window) -> np.ndarray:
        r, c, h, w = win
        return a[[index[n] for n in names], r : r + h, c : c + w]

    meta = RasterMeta(
        width=a.shape[2], height=a.shape[1], count=a.shape[0], dtype=str(a.dtype),
        crs=CRS.from_string(_ARRAY_CRS), transform=from_origin(0.0, 0.0, gsd_m, gsd_m),
    )  # fmt: skip
    mask, _ = scene_mask_for(backend, read, meta, level, tuple(bands), dilate)
    return mask.read((0, 0, a.shape[1], a.shape[2]))


def mask_scene(
    s2_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    backend: str = "auto",
    window: int = 1024,
    params: CSMParams = DEFAULT_PARAMS,
    *,
    bands: str | Sequence[str] | None = None,
    level: str | None = None,
    dilate: str | float | Distance | None = None,
    block: int = BLOCK,
) -> dict[str, Any]:
    """Write the cloud/shadow mask of a Sentinel-2 GeoTIFF as a uint8 GeoTIFF.

    Args:
        s2_path: Sentinel-2 scene of any size (DN = reflectance x 10000): the 13-band L1C
            stack, the 12-band L2A stack, or any bands named by their band descriptions or
            by ``bands`` (:mod:`cloudfree.masks.layout`), as long as the masker's are there;
            may point into a .tar.gz (see ``cloudfree.io``).
        out_path: output GeoTIFF: 1 band uint8, 0 clear, 1 cloud, 2 shadow (s2cloudless: 0/1),
            the mask that a command would use (grown by ``dilate``), same CRS and transform,
            no nodata, a COG (512-px blocks, deflate, overviews of the most frequent class);
            written atomically.
        backend: ``"auto"`` (ukis where installed, else dsen2cr), ``"ukis"``, ``"dsen2cr"``
            (the paper's mask) or ``"s2cloudless"`` (:mod:`cloudfree.masks.backends`).
        window: side of the windows written, pixels (rounded down to a multiple of 16, at
            least 16).
        params: constants of the dsen2cr mask.
        bands: the name of each band of the file (``"B2,B3,B4,B8"``), where its band
            descriptions do not say.
        level: ``"l1c"`` or ``"l2a"``; None: from the bands and the file
            (:func:`~cloudfree.masks.layout.product_level`).
        dilate: growth of the mask, metres (or ``"6px"``); None: the masker's default.
        block: side of the masker's blocks (memory grows with its square, not the scene's).

    Returns:
        :func:`~cloudfree.masks.report.mask_fractions` (the classes as fractions of the
        pixels with data, the nodata fraction, the pixel counts), what
        :func:`scene_mask_for` reports, ``"backend"`` (= ``mask_backend``), ``"bands"`` (how
        the bands were found), ``"warnings"`` (:func:`~cloudfree.masks.report.mask_warnings`)
        and ``"out"``.

    Raises:
        DataError: the file is unreadable, its bands cannot be told apart or lack the
            masker's (12-band L2A for dsen2cr: explained), or its values are not DN.
        ValueError: unknown backend or level, bad window or dilation.
        ImportError: the masker's optional package is not installed.
    """
    import rasterio
    from rasterio.windows import Window as RioWindow

    if int(window) < 1:
        raise ValueError(f"window must be a positive number of pixels, got {window}")
    if level is not None and level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    window = max(_ALIGN, int(window) // _ALIGN * _ALIGN)
    meta = read_meta(s2_path)
    layout = band_layout(meta.count, meta.descriptions, bands, s2_path)
    height, width = meta.height, meta.width

    tile = _tile_size(window)
    profile = meta.profile(
        count=1,
        dtype="uint8",
        nodata=None,
        driver="GTiff",
        tiled=True,
        blockxsize=tile,
        blockysize=tile,
        compress="deflate",
    )
    counts = np.zeros(4, dtype=np.int64)  # clear, cloud, shadow, nodata
    try:
        # GDAL's block cache capped (its default, 5 % of the RAM, grew this process by a GB
        # on a whole tile); rasterio.Env(...) as predict does.
        with rasterio.Env(**gdal_cache_env()), rasterio.open(gdal_path(s2_path)) as src:
            check_scene(src, "s2", s2_path)  # DN, not reflectance; not an empty image
            lvl = level or product_level(layout, s2_path, src.tags())

            def read(names: tuple[str, ...], win: Window) -> np.ndarray:
                r, c, h, w = win
                values = src.read(indexes=layout.indexes(names), window=RioWindow(c, r, w, h))
                return zero_missing(values, meta.nodata)

            mask_src, info = scene_mask_for(
                backend, read, meta, lvl, layout.names, dilate, s2_path, block, params
            )
            with (
                atomic_path(out_path, finish=mask_to_cog) as tmp,
                rasterio.open(tmp, "w", **profile) as dst,
            ):
                for win in windows(height, width, window):
                    mask = mask_src.read(win)
                    r, c, h, w = win
                    dst.write(mask, 1, window=RioWindow(c, r, w, h))
                    # The masker's bands stand for all: a pixel with data has none at nodata.
                    holes = nodata_pixels(read(mask_src.backend.bands, win), None)
                    counts += class_counts(mask, holes)
                name = info["mask_backend"]
                dst.set_band_description(1, f"{name} mask: 0 clear, 1 cloud, 2 shadow")
                dst.update_tags(
                    backend=name,
                    masker=info["masker"],
                    dilate=f"{info['dilate_px']:g} px",
                    classes="0=clear,1=cloud,2=shadow",
                    source=str(Path(s2_path).resolve()),
                )
    except rasterio.errors.RasterioError as e:
        raise DataError(
            s2_path, f"cannot read it or write {out_path}: {e}", "a readable GeoTIFF"
        ) from e

    fractions = mask_fractions(counts)
    return {
        **fractions,
        **info,
        "backend": info["mask_backend"],
        "bands": layout.source,
        "warnings": mask_warnings(fractions),
        "out": str(Path(out_path)),
    }


def run_mask_cli(
    s2: str,
    out: str,
    backend: str = "auto",
    window: int = 1024,
    *,
    bands: str | None = None,
    level: str | None = None,
    dilate: str | None = None,
) -> int:
    """Handler of ``cloudfree mask S2.tif --out MASK.tif [--mask-backend ...] [--dilate M]
    [--bands ...] [--level ...] [--window N]``.

    Prints the masker, the class fractions and any warning; returns the exit status (0).
    """
    import logging

    from cloudfree.outputs import check_outputs

    check_outputs({"--out": out}, [s2], example="mask.tif")
    stats = mask_scene(
        s2, out, backend=backend, window=window, bands=bands, level=level, dilate=dilate
    )
    grown = f", grown by {stats['dilate_px']:.3g} px" if stats["dilate_px"] >= 1 else ""
    print(f"{stats['masker']} mask of {s2} ({stats['num_pixels']} pixels{grown}): "
          f"{describe_fractions(stats)}")  # fmt: skip
    for text in stats["warnings"]:
        logging.getLogger(__name__).warning(text)
    print(f"wrote {out}")
    return 0
