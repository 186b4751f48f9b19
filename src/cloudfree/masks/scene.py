"""Cloud/shadow mask of a whole GeoTIFF scene, in windows, with bounded memory.

The result equals the mask of the whole image computed at once (``cloud_shadow_mask`` /
``reference_csm`` on the full array), pixel for pixel:

- pass 1 streams windows of B2, B8 and B11 into :class:`ShadowStats`, so the relative shadow
  thresholds (spec section 3) are those of the whole scene, bit for bit;
- pass 2 masks each window with a halo of ``CSMParams.halo`` pixels (closing 2 + 2, box mean 3;
  the median needs 2) clipped to the scene, and keeps only the window. Where the halo is cut by
  the scene edge, the window's edge *is* the scene's edge, so the reflect / zero padding of the
  filters is the same as on the whole image; elsewhere every kept pixel sees real data only.

Memory is that of one window with its halo (~80 MiB for the default 1024), whatever the scene
size. Nodata pixels (e.g. outside the swath; :func:`cloudfree.units.nodata_pixels`) are masked
as the values they hold, as the published algorithm does on a patch, and they also enter the
shadow statistics; but the class fractions reported are those of the pixels with data, beside
the nodata fraction.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.bands import S2_BANDS, s2_index
from cloudfree.errors import DataError
from cloudfree.io import atomic_path, gdal_path, read_meta
from cloudfree.masks.csm import csm_from_bands
from cloudfree.masks.params import (
    CLEAR,
    CLOUD,
    CSM_BANDS,
    DEFAULT_PARAMS,
    SHADOW,
    CSMParams,
    band_count_problem,
    to_reflectance,
)
from cloudfree.masks.patch import finite_dn
from cloudfree.masks.stats import ShadowStats
from cloudfree.units import check_scene, nodata_pixels
from cloudfree.windows import Window, clip_window, grow, windows

BACKENDS: Final[tuple[str, ...]] = ("dsen2cr", "s2cloudless")
#: Windows are multiples of this (the GeoTIFF tile size must be a multiple of 16).
_ALIGN: Final[int] = 16


class SceneMasker:
    """The DSen2-CR mask of a scene too large for memory, window by window (both passes above).

    ``mask_scene`` writes it to a GeoTIFF; the scene predictor takes each window's mask from it.
    The windows' masks are the mask of the whole image, pixel for pixel, if each window is
    masked with :attr:`halo` pixels of context (clipped to the scene) and cut back.

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


def _read(src: Any, win: Window, bands: tuple[str, ...]) -> np.ndarray:
    from rasterio.windows import Window as RioWindow

    r, c, h, w = win
    return src.read(indexes=[s2_index(b) + 1 for b in bands], window=RioWindow(c, r, w, h))


def _tile_size(window: int) -> int:
    """Largest GeoTIFF tile side (<= 512, multiple of 16) dividing the window, so that every
    window writes whole tiles and no compressed tile is written twice."""
    return next(t for t in (512, 256, 128, 64, 32, 16) if window % t == 0)


def mask_scene(
    s2_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    backend: str = "dsen2cr",
    window: int = 1024,
    params: CSMParams = DEFAULT_PARAMS,
) -> dict[str, Any]:
    """Write the cloud/shadow mask of a 13-band L1C GeoTIFF as a uint8 GeoTIFF.

    Args:
        s2_path: 13-band S2 L1C scene (bands in ``S2_BANDS`` order, DN = reflectance x 10000),
            any size; may point into a .tar.gz (see ``cloudfree.io``).
        out_path: output GeoTIFF: 1 band uint8, 0 clear, 1 cloud, 2 shadow (s2cloudless: 0/1),
            same CRS and transform, no nodata, deflate-compressed, tiled; written atomically.
        backend: ``"dsen2cr"`` (the paper's mask) or ``"s2cloudless"`` (optional extra).
        window: window side in pixels (rounded down to a multiple of 16, at least 16); memory
            grows with its square.
        params: constants of the dsen2cr mask.

    Returns:
        :func:`mask_fractions` (the classes as fractions of the pixels with data, the nodata
        fraction, the pixel counts), ``"backend"``, ``"out"``.

    Raises:
        DataError: the file is unreadable or has not 13 bands (12-band L2A: explained).
        ValueError: unknown backend or bad window.
    """
    import rasterio
    from rasterio.windows import Window as RioWindow

    if backend not in BACKENDS:
        raise ValueError(f"unknown mask backend {backend!r}; expected one of {BACKENDS}")
    if int(window) < 1:
        raise ValueError(f"window must be a positive number of pixels, got {window}")
    window = max(_ALIGN, int(window) // _ALIGN * _ALIGN)
    meta = read_meta(s2_path)
    problem = band_count_problem(meta.count)
    if problem is not None:
        raise DataError(s2_path, problem[0], problem[1])
    height, width = meta.height, meta.width

    masker = SceneMasker(params)
    if backend == "dsen2cr":
        halo, bands = masker.halo, masker.bands
    else:
        from cloudfree.masks.s2cloudless import s2cloudless_halo

        halo, bands = s2cloudless_halo(), S2_BANDS  # s2cloudless_mask takes the 13 bands

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
        with rasterio.open(gdal_path(s2_path)) as src:
            check_scene(src, "s2", s2_path)  # DN, not reflectance; not an empty image
            if backend == "dsen2cr":
                masker.fit(lambda names, win: _read(src, win, names), height, width, window)
            with atomic_path(out_path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
                for win in windows(height, width, window):
                    outer = clip_window(grow(win, halo), height, width)
                    data = _read(src, outer, bands)
                    if backend == "dsen2cr":
                        mask = masker.mask(dict(zip(bands, data, strict=True)))
                    else:
                        from cloudfree.masks.s2cloudless import s2cloudless_mask

                        mask = s2cloudless_mask(data)
                    r, c, h, w = win
                    dr, dc = r - outer[0], c - outer[1]
                    mask = np.ascontiguousarray(mask[dr : dr + h, dc : dc + w])
                    dst.write(mask, 1, window=RioWindow(c, r, w, h))
                    # The bands read stand for all 13: a pixel with data has none at nodata.
                    holes = nodata_pixels(data[:, dr : dr + h, dc : dc + w], meta.nodata)
                    counts += class_counts(mask, holes)
                dst.set_band_description(1, f"{backend} mask: 0 clear, 1 cloud, 2 shadow")
                dst.update_tags(backend=backend, classes="0=clear,1=cloud,2=shadow")
    except rasterio.errors.RasterioError as e:
        raise DataError(
            s2_path, f"cannot read it or write {out_path}: {e}", "a readable GeoTIFF"
        ) from e

    return {**mask_fractions(counts), "backend": backend, "out": str(Path(out_path))}


#: Index of the nodata pixels in the counts of :func:`mask_fractions` (after the 3 classes).
NODATA: Final[int] = 3


def class_counts(mask: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """``[clear, cloud, shadow, nodata]`` pixel counts of a window's mask (int64 (4,)): the
    classes among the pixels with data, then the pixels without (``holes``, (h, w) bool)."""
    counts = np.zeros(4, dtype=np.int64)
    counts[:3] = np.bincount(mask[~holes], minlength=3)[:3]
    counts[NODATA] = int(holes.sum())
    return counts


def mask_fractions(counts: np.ndarray) -> dict[str, Any]:
    """Class fractions of a mask from its pixel counts ``[clear, cloud, shadow, nodata]``.

    The classes are fractions of the pixels with data (NaN if there is none): a pixel that
    holds no data (:func:`cloudfree.units.nodata_pixels`) is none of clear, cloud or shadow,
    though the mask file gives it the class of the values it holds, as the published algorithm
    does on a patch.

    Returns:
        ``cloud_fraction``, ``shadow_fraction``, ``clear_fraction`` (of the valid pixels),
        ``nodata_fraction`` (of all pixels), ``num_pixels``, ``valid_pixels``.
    """
    n, valid = int(counts.sum()), int(counts[:3].sum())

    def frac(k: int) -> float:
        return float(counts[k]) / valid if valid else float("nan")

    return {
        "cloud_fraction": frac(CLOUD),
        "shadow_fraction": frac(SHADOW),
        "clear_fraction": frac(CLEAR),
        "nodata_fraction": float(counts[NODATA]) / n if n else float("nan"),
        "num_pixels": n,
        "valid_pixels": valid,
    }


def describe_fractions(stats: Mapping[str, Any]) -> str:
    """``"cloud 12.00 %, shadow 1.00 %, clear 87.00 % of the valid pixels (nodata 5.00 %)"``,
    or that no pixel holds data."""
    if not stats["valid_pixels"]:
        return "no pixel holds data (every pixel is nodata): the mask says nothing"
    text = (
        f"cloud {100 * stats['cloud_fraction']:.2f} %, "
        f"shadow {100 * stats['shadow_fraction']:.2f} %, "
        f"clear {100 * stats['clear_fraction']:.2f} %"
    )
    if stats["nodata_fraction"]:
        text += f" of the pixels with data; nodata {100 * stats['nodata_fraction']:.2f} %"
    return text


def run_mask_cli(s2: str, out: str, backend: str = "dsen2cr", window: int = 1024) -> int:
    """Handler of ``cloudfree mask S2.tif --out MASK.tif [--backend ...] [--window N]``.

    Prints the class fractions; returns the exit status (0).
    """
    from cloudfree.outputs import check_outputs

    check_outputs({"--out": out}, [s2], example="mask.tif")
    stats = mask_scene(s2, out, backend=backend, window=window)
    print(f"{backend} mask of {s2} ({stats['num_pixels']} pixels): {describe_fractions(stats)}")
    print(f"wrote {out}")
    return 0
