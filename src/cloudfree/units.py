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

import os
from typing import Any, Final

import numpy as np

from cloudfree.bands import NUM_S2_BANDS
from cloudfree.errors import DataError, root_reason

#: Largest value of a window of S2 that reads as reflectance (0-1, with bright clouds and snow
#: up to ~1.6) rather than DN (reflectance x 10000).
S2_REFLECTANCE_MAX: Final[float] = 2.0
#: 1 % of a real scene's S2 values are never above this, DN (the brightest real patch of the
#: samples, heavy cumulus: 17 575).
S2_DN_HIGH: Final[float] = 30000.0
#: The darkest 0.1 % of a real scene's S2 values are always below this, DN (the samples: at
#: most 414); above it, the +1000 DN offset of processing baseline 04.00 was left in.
S2_OFFSET_DN: Final[float] = 1000.0
#: Values a scene's sampled windows keep for :func:`check_s2_dn` (:func:`check_scene`).
_QUANTILE_SAMPLE: Final[int] = 1 << 16
#: Values the shares and quantiles of :func:`check_s2_dn` are taken on (a regular subsample):
#: a training patch is checked on every read, in ~0.3 ms; 1 % is known to +-0.3 %.
_SHARE_SAMPLE: Final[int] = 1 << 12
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
    values: np.ndarray,
    where: str | os.PathLike[str] | None,
    nodata: float | None = None,
    offset: bool = False,
) -> None:
    """Raise :class:`DataError` if ``values`` (S2, any shape) are not Sentinel-2 DN.

    The rules look at the distribution, not only at the extremes, so that a few hot pixels
    do not hide a wrong scale (thresholds: :data:`S2_REFLECTANCE_MAX` and those below,
    measured on the real samples: the brightest real patch, heavy cumulus, has 1 % of its
    values above 17 575 DN; the darkest values of every real patch are below 420 DN):

    - reflectance: 99 % of the values <= 2 (while some is > 0);
    - a scale of 10 or more (DN x 10): 1 % of the values above :data:`S2_DN_HIGH`, or any
      above 65 535 (no 16-bit DN), or 1 % at 65 535 (values clipped at the top);
    - negative values (more than 1 %): an offset, or not DN at all;
    - with ``offset`` (whole 13-band scenes): the +1000 DN offset of processing baseline 04.00 left
      in: even the darkest 0.1 % of the values are >= :data:`S2_OFFSET_DN`. Not for the
      patches of a dataset: SEN12MS-CR (2018) predates the offset, and a small patch of
      bright cloud may lack dark values.

    Args:
        values: S2 values (all bands), any dtype; NaN and ``nodata`` ignored.
        where: the file (or patch) named in the message.
        nodata: the file's nodata value, if any.
    """
    v = _finite(values, nodata)
    if v.size == 0:
        return
    top = float(v.max())
    # The quantiles of a regular subsample: a training patch is checked on every read.
    sub = v[:: max(1, v.size // _SHARE_SAMPLE)]
    lo_q, q99 = (float(x) for x in np.quantile(sub, [0.001, 0.99]))
    if top > 0 and q99 <= S2_REFLECTANCE_MAX:
        raise DataError(
            where,
            (
                f"S2 values are all between {float(v.min()):g} and {top:g}"
                if top <= 2 * q99
                else f"99 % of the S2 values are between {float(v.min()):g} and {q99:g} (a few "
                f"hot pixels reach {top:g})"
            )
            + ": reflectance (0-1), not digital numbers; read as DN they are a black image "
            "(0 % cloud, a dark prediction)",
            _S2_FIX,
        )
    at_top = float(np.mean(sub >= 65535))
    if q99 > S2_DN_HIGH or top > 65535 or at_top > 0.01:
        raise DataError(
            where,
            f"S2 values reach {top:g} ({100 * at_top:.1f} % at 65535, 1 % above {q99:g}): far "
            "brighter than any real scene (Sentinel-2 DN of the brightest clouds stay below "
            f"{S2_DN_HIGH:g}): a scale of 10 or more (e.g. DN x 10), or clipped values",
            "Sentinel-2 digital numbers (DN = reflectance x 10000); divide by the factor "
            "your export applied",
        )
    negative = float(np.mean(sub < 0)) if v.dtype.kind != "u" else 0.0
    if negative > 0.01:
        raise DataError(
            where,
            f"{100 * negative:.1f} % of the S2 values are negative: an offset was applied, or "
            "these are not digital numbers",
            _S2_FIX,
        )
    if offset and lo_q >= S2_OFFSET_DN:
        raise DataError(
            where,
            f"even the darkest S2 values are >= {lo_q:g} DN (real scenes always have values "
            f"far below {S2_OFFSET_DN:g}: water, the cirrus band B10): the +1000 DN offset of "
            "processing baseline 04.00 (products since 2022-01-25) seems to be left in",
            "DN with the offset removed ('cloudfree stack' does it), or DN - 1000",
        )


def check_s2_dtype(dtype: np.dtype[Any], where: str | os.PathLike[str] | None) -> None:
    """Raise :class:`DataError` for an S2 file of 8-bit values: they cannot hold Sentinel-2
    DN (0 to 10 000 and more), so they are a display product (DN / 40, or clipped at 255)."""
    if np.dtype(dtype).itemsize == 1:
        raise DataError(
            where,
            f"S2 is stored as {np.dtype(dtype)} (8 bits): 8-bit values cannot hold Sentinel-2 "
            "DN (0 to 10000 and more); this is a display product (e.g. DN / 40, or clipped at "
            "255), whose lost precision no conversion brings back",
            "the 16-bit (or float) Sentinel-2 bands: 'cloudfree stack' of the .SAFE product",
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


def zero_missing(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """``values`` (bands, H, W) of an S2 file with its missing pixels made 0 in every band.

    The one convention every S2 reader hands on, whatever the file declares (65535, -9999,
    NaN...): a pixel missing in every band (:func:`nodata_pixels` with the file's nodata)
    becomes 0 in every band, the Sentinel-2 NO_DATA value, and any other non-finite value
    becomes 0. The masks and the models therefore never see a nodata value as a
    reflectance, and after it a pixel is missing where it is 0 in every band
    (``nodata_pixels(values, None)``). A copy where anything changes; ``values`` otherwise.
    """
    out = values
    if np.issubdtype(out.dtype, np.floating):
        bad = ~np.isfinite(out)
        if bad.any():
            out = np.where(bad, out.dtype.type(0), out)
    if nodata is not None and nodata != 0:
        holes = nodata_pixels(values, nodata)
        if holes.any():
            out = out.copy() if out is values else out
            out[:, holes] = 0
    return out


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
    if kind == "s2":
        check_s2_dtype(np.dtype(ds.dtypes[0]), where)
    any_nonzero = False
    wins = sample_windows(ds.height, ds.width)
    # Every window's values (at most 9 x 128 x 128 per band), for the distribution rules.
    # A regular subsample of every window, and each window's extremes: the distribution
    # rules see the whole scene's values in a few hundred kB, whatever its size.
    pooled = []
    for r, c, h, w in wins:
        try:
            values = ds.read(window=RioWindow(c, r, w, h))
        except Exception as e:  # rasterio's error: "Read failed. See previous exception"
            raise DataError(
                where, f"cannot be read ({root_reason(e)})",
                "a complete GeoTIFF (a truncated download or copy? copy it again)",
            ) from e  # fmt: skip
        any_nonzero = any_nonzero or bool(np.any(values))
        if kind == "s2":  # pixels missing in every band are not values (nodata_pixels)
            values = values[:, ~nodata_pixels(values, nodata)]
        v = _finite(values, nodata)
        if v.size:
            step = max(1, v.size * len(wins) // _QUANTILE_SAMPLE)
            pooled += [v[::step].copy(), v[[int(v.argmin()), int(v.argmax())]]]  # not views
    v = np.concatenate(pooled) if pooled else np.zeros(0)
    if kind == "s1":
        check_s1_db(v, where)
        return
    # The offset rule needs B10 (cirrus: a few tens of DN under any but high cloud, so the
    # darkest values of a real 13-band scene are far below 1000); a band subset of a cloudy
    # scene (B2, B3, B4, B8) has none so dark.
    check_s2_dn(v, where, offset=ds.count == NUM_S2_BANDS)
    if nodata is None and not any_nonzero:
        raise DataError(
            where,
            f"every pixel of {len(wins)} windows spread over the scene is 0 in every band "
            "(the Sentinel-2 NO_DATA value) and the file declares no nodata value: an empty "
            "image",
            "a Sentinel-2 scene with data; if it has data outside those windows, declare 0 as "
            "its nodata ('gdal_edit.py -a_nodata 0 FILE') and run again",
        )
