"""Are these the values cloudfree expects? Sentinel-2 as digital numbers, Sentinel-1 in dB.

One check of value ranges and units, used wherever an image enters: whole scenes in
``predict`` and ``mask`` (:func:`check_scene`, on a few windows spread over the scene) and
patches in training and evaluation (:func:`check_patch`, on every sample). A wrong scale is
otherwise accepted without a word and gives nonsense: reflectance (0-1) read as DN is a black
image to the network and 0 % cloud to the mask; linear power read as dB is a flat 0 dB.

The rules only catch what no real image can look like:

- **S2 as reflectance** (e.g. surface reflectance 0-1 from Google Earth Engine or sen2cor
  exported as float): every value <= :data:`S2_REFLECTANCE_MAX` while some is > 0. Real L1C/L2A
  DN are reflectance x 10000 (spec section 2): B1 alone is in the hundreds to thousands.
- **S1 not in dB** (linear power or amplitude, or integer DN): no negative value while some
  is > 0. Backscatter of land and water in dB lies mostly in -30..0 dB; a window in which no
  pixel is below 0 dB (power 1) does not occur.
- **An empty scene**: a scene with no valid pixel in any sampled window, when the file
  declares no nodata value (checked by :func:`check_scene`).

What counts as missing in an S2 scene is also said once, here (:func:`nodata_pixels`): the
pixels whose every band is the file's nodata value, or, when the file declares none, 0 in
every band. 0 is the NO_DATA value of the Sentinel-2 L1C and L2A products, and no real pixel
is 0 in all 13 (or 12) bands: B1 and B10 always hold some light scattered by the atmosphere.

Numpy only (and rasterio for reading the sampled windows of a scene).
"""

from __future__ import annotations

import math
import os
from typing import Any, Final

import numpy as np

from cloudfree.errors import DataError

#: Largest value of a window of S2 that reads as reflectance (0-1, with bright clouds and snow
#: up to ~1.6) rather than DN (reflectance x 10000).
S2_REFLECTANCE_MAX: Final[float] = 2.0
#: Windows read from a scene by :func:`check_scene` (per side) and their side, pixels.
SCENE_SAMPLES: Final[int] = 3
SAMPLE_SIDE: Final[int] = 128

_S2_FIX = (
    "Sentinel-2 digital numbers (DN = reflectance x 10000, as in L1C/L2A products and "
    "SEN12MS-CR); multiply reflectance by 10000, e.g. "
    "'gdal_calc.py -A IN.tif --allBands=A --calc=\"A*10000\" --type=UInt16 --outfile=OUT.tif'"
)
_S1_FIX = (
    "Sentinel-1 sigma0 in dB (VV, VH, mostly -30..0 dB); convert linear power with "
    "dB = 10 * log10(power) (amplitude: 20 * log10), e.g. "
    "'gdal_calc.py -A IN.tif --allBands=A --calc=\"10*log10(A)\" --type=Float32 --outfile=OUT.tif'"
)


def _finite(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """The finite values of ``values`` that are not ``nodata``, flattened."""
    v = np.asarray(values).ravel()
    if np.issubdtype(v.dtype, np.floating):
        v = v[np.isfinite(v)]
    if nodata is not None and not np.isnan(nodata):
        v = v[v != np.asarray(nodata).astype(v.dtype)]
    return v


def check_s2_dn(
    values: np.ndarray, where: str | os.PathLike[str] | None, nodata: float | None = None
) -> None:
    """Raise :class:`DataError` if ``values`` (S2, any shape) look like reflectance, not DN.

    Args:
        values: S2 values of one window (all bands), any dtype; NaN and ``nodata`` ignored.
        where: the file (or patch) named in the message.
        nodata: the file's nodata value, if any.
    """
    v = _finite(values, nodata)
    if v.size == 0:
        return
    hi = float(v.max())
    if 0 < hi <= S2_REFLECTANCE_MAX:
        raise DataError(
            where,
            f"S2 values are all between {float(v.min()):g} and {hi:g}: reflectance (0-1), "
            "not digital numbers; read as DN they are a black image (0 % cloud, a dark "
            "prediction)",
            _S2_FIX,
        )


def check_s1_db(
    values: np.ndarray, where: str | os.PathLike[str] | None, nodata: float | None = None
) -> None:
    """Raise :class:`DataError` if ``values`` (S1 VV, VH, any shape) are not in dB.

    Args:
        values: S1 values of one window, any dtype; NaN, +/-inf and ``nodata`` ignored.
        where: the file (or patch) named in the message.
        nodata: the file's nodata value, if any.
    """
    v = _finite(values, nodata)
    if v.size == 0:
        return
    lo, hi = float(v.min()), float(v.max())
    if lo >= 0 and hi > 0:
        raise DataError(
            where,
            f"S1 values are all between {lo:g} and {hi:g}, none negative: linear power or "
            "amplitude (or DN), not dB; read as dB the whole image is brighter than any real "
            "backscatter",
            _S1_FIX,
        )


def nodata_pixels(s2_raw: np.ndarray, nodata: float | None) -> np.ndarray:
    """(H, W) bool: the pixels of a (bands, H, W) S2 array that hold no data.

    Args:
        s2_raw: the values as read from the file (any dtype).
        nodata: the file's nodata value: a pixel is missing where every band equals it (NaN:
            every band is NaN); None (the file declares none): where every band is 0.
    """
    if nodata is None:
        nodata = 0.0
    if np.isnan(nodata):
        return np.isnan(s2_raw).all(axis=0)
    return (s2_raw == np.asarray(nodata, dtype=s2_raw.dtype)).all(axis=0)


def check_patch(raw: dict[str, np.ndarray], where: str | os.PathLike[str] | None) -> None:
    """:func:`check_s2_dn` on the optical arrays of a patch and :func:`check_s1_db` on its S1.

    Args:
        raw: ``"s2_cloudy"``, ``"s2"`` (and any other ``"s2_*"``) arrays (13, h, w) and
            ``"s1"`` (2, h, w), as many as there are.
        where: the patch (id or file) named in the message.
    """
    for key, values in raw.items():
        if key.startswith("s2"):
            check_s2_dn(values, f"{where} ({key})" if where is not None else key)
        elif key == "s1":
            check_s1_db(values, f"{where} (s1)" if where is not None else "s1")


def sample_windows(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """Up to ``SCENE_SAMPLES x SCENE_SAMPLES`` windows ``(row, col, h, w)`` of at most
    ``SAMPLE_SIDE`` pixels spread evenly over a scene (centred in their cells)."""
    side_r, side_c = min(SAMPLE_SIDE, height), min(SAMPLE_SIDE, width)
    rows = sorted({int(round(t)) for t in np.linspace(0, height - side_r, SCENE_SAMPLES)})
    cols = sorted({int(round(t)) for t in np.linspace(0, width - side_c, SCENE_SAMPLES)})
    return [(r, c, side_r, side_c) for r in rows for c in cols]


def check_scene(ds: Any, kind: str, where: str | os.PathLike[str]) -> None:
    """Check an opened S2 (``kind="s2"``) or S1 (``kind="s1"``) scene on the windows of
    :func:`sample_windows`, read one at a time (memory: one window, whatever the scene).

    Raises:
        DataError: S2 as reflectance, S1 not in dB, or an S2 whose sampled pixels are all 0
            in every band while the file declares no nodata value.
    """
    from rasterio.windows import Window as RioWindow

    nodata = ds.nodata
    lo, hi, n, any_nonzero = math.inf, -math.inf, 0, False
    wins = sample_windows(ds.height, ds.width)
    for r, c, h, w in wins:
        values = ds.read(window=RioWindow(c, r, w, h))
        any_nonzero = any_nonzero or bool(np.any(values))
        v = _finite(values, nodata)
        if v.size:
            lo, hi, n = min(lo, float(v.min())), max(hi, float(v.max())), n + v.size
    if n == 0:
        return
    # The extremes of every window stand for all their values in the rules above.
    extremes = np.array([lo, hi])
    if kind == "s1":
        check_s1_db(extremes, where)
        return
    check_s2_dn(extremes, where)
    if nodata is None and not any_nonzero:
        raise DataError(
            where,
            f"every pixel of {len(wins)} windows spread over the scene is 0 in every band "
            "(the Sentinel-2 NO_DATA value) and the file declares no nodata value: an empty "
            "image",
            "a Sentinel-2 scene with data; if it has data outside those windows, declare 0 as "
            "its nodata ('gdal_edit.py -a_nodata 0 FILE') and run again",
        )
