"""Rendering of Sentinel-2, Sentinel-1, masks and errors as 8-bit RGB images.

One place for every picture the project draws: ``cloudfree render``, the web viewer, the
evaluation report, the demo and the prediction quicklooks all call these functions, so that a
patch looks the same everywhere.

Conventions:

- Images are numpy ``(H, W, 3)`` uint8 RGB, row 0 at the top (north-up rasters).
- Sentinel-2 inputs are digital numbers, ``(13, H, W)`` in ``S2_BANDS`` order (L1C) or
  ``(12, H, W)`` in ``S2_L2A_BANDS`` order (L2A, no B10); DN = reflectance x 10000.
- Sentinel-1 inputs are ``(2, H, W)`` sigma0 in dB, VV then VH.
- NaN and ``nodata`` pixels are drawn black.

Stretches: ``"gain"`` multiplies reflectance by a fixed gain (2.5: reflectance 0.4 is white, the
usual display range of L1C true colour; comparable across images, clouds saturate) and
``"percentile"`` maps the (2, 98) percentiles of each band to (0, 1) (shows detail in dark or
hazy scenes, but every image gets its own stretch).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cloudfree.bands import (
    NUM_S2_BANDS,
    S2_BANDS,
    S2_DN_PER_REFLECTANCE,
    S2_L2A_BANDS,
)

#: Bands of the true-colour (natural) composite.
TRUE_COLOUR: tuple[str, str, str] = ("B4", "B3", "B2")
#: Bands of the false-colour (near-infrared) composite: vegetation red.
FALSE_COLOUR: tuple[str, str, str] = ("B8", "B4", "B3")
#: Default reflectance gain of the fixed stretch (reflectance 0.4 -> white).
DEFAULT_GAIN: float = 2.5
#: Default percentiles of the per-image stretch.
DEFAULT_PERCENTILES: tuple[float, float] = (2.0, 98.0)
STRETCHES: tuple[str, ...] = ("gain", "percentile")

#: dB display ranges of the SAR composite: typical land backscatter, as in the SEN12MS papers'
#: quicklooks (VV -25..0 dB, VH -32.5..-5 dB, VV-VH difference 0..15 dB).
SAR_VV_DB: tuple[float, float] = (-25.0, 0.0)
SAR_VH_DB: tuple[float, float] = (-32.5, -5.0)
SAR_RATIO_DB: tuple[float, float] = (0.0, 15.0)

#: Mask classes (0 clear, 1 cloud, 2 shadow) as colours: transparent/black, white, blue.
MASK_COLOURS: np.ndarray = np.array([[0, 0, 0], [255, 255, 255], [40, 90, 255]], np.uint8)
#: Mean absolute reflectance error shown at full scale by :func:`error_map`.
ERROR_FULL_SCALE: float = 0.2


def _band_indices(count: int, bands: Sequence[str]) -> list[int]:
    if count == NUM_S2_BANDS:
        order = S2_BANDS
    elif count == len(S2_L2A_BANDS):
        order = S2_L2A_BANDS
    else:
        raise ValueError(
            f"expected a Sentinel-2 array of {NUM_S2_BANDS} (L1C) or {len(S2_L2A_BANDS)} (L2A) "
            f"bands on the first axis, got {count}"
        )
    return [order.index(b) for b in bands]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats (NaN -> 0) to uint8 with round half up."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def stretch(
    x: np.ndarray,
    mode: str = "gain",
    gain: float = DEFAULT_GAIN,
    p: tuple[float, float] = DEFAULT_PERCENTILES,
) -> np.ndarray:
    """Stretch reflectance ``(C, H, W)`` to [0, 1] floats, band by band.

    ``"gain"``: ``clip(x * gain, 0, 1)``. ``"percentile"``: per band, the ``p`` percentiles of the
    finite values map to 0 and 1 (a flat band maps to 0). NaN stays NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"expected (C, H, W), got shape {x.shape}")
    if mode == "gain":
        if not gain > 0:
            raise ValueError(f"gain must be positive, got {gain}")
        return np.clip(x * gain, 0.0, 1.0)
    if mode == "percentile":
        lo_p, hi_p = p
        if not 0.0 <= lo_p < hi_p <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {p}")
        out = np.empty_like(x)
        for i, band in enumerate(x):
            finite = band[np.isfinite(band)]
            if finite.size == 0:
                out[i] = np.nan
                continue
            lo, hi = np.percentile(finite, [lo_p, hi_p])
            out[i] = 0.0 if hi <= lo else np.clip((band - lo) / (hi - lo), 0.0, 1.0)
        return out
    raise ValueError(f"unknown stretch {mode!r}; expected one of {STRETCHES}")


def _composite(
    s2_dn: np.ndarray,
    bands: Sequence[str],
    mode: str,
    gain: float,
    p: tuple[float, float],
    nodata: float | None,
) -> np.ndarray:
    s2_dn = np.asarray(s2_dn)
    if s2_dn.ndim != 3:
        raise ValueError(f"expected a (bands, H, W) Sentinel-2 array, got shape {s2_dn.shape}")
    rgb = s2_dn[_band_indices(s2_dn.shape[0], bands)].astype(np.float64) / S2_DN_PER_REFLECTANCE
    if nodata is not None:
        rgb[:, np.all(s2_dn == nodata, axis=0)] = np.nan
    return _to_uint8(stretch(rgb, mode, gain, p)).transpose(1, 2, 0)


def true_colour(
    s2_dn: np.ndarray,
    mode: str = "gain",
    gain: float = DEFAULT_GAIN,
    p: tuple[float, float] = DEFAULT_PERCENTILES,
    nodata: float | None = None,
) -> np.ndarray:
    """True colour (B4, B3, B2) of a (13 | 12, H, W) DN array -> (H, W, 3) uint8."""
    return _composite(s2_dn, TRUE_COLOUR, mode, gain, p, nodata)


def false_colour(
    s2_dn: np.ndarray,
    mode: str = "gain",
    gain: float = DEFAULT_GAIN,
    p: tuple[float, float] = DEFAULT_PERCENTILES,
    nodata: float | None = None,
) -> np.ndarray:
    """False colour (B8, B4, B3) of a (13 | 12, H, W) DN array -> (H, W, 3) uint8."""
    return _composite(s2_dn, FALSE_COLOUR, mode, gain, p, nodata)


def _scale(x: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    lo, hi = limits
    return (x - lo) / (hi - lo)


def sar_composite(s1_db: np.ndarray) -> np.ndarray:
    """Sentinel-1 false colour: R = VV, G = VH, B = VV - VH (the dB ratio) -> (H, W, 3) uint8.

    Each channel maps a fixed dB range (:data:`SAR_VV_DB`, :data:`SAR_VH_DB`,
    :data:`SAR_RATIO_DB`) to 0..255, so composites of different patches are comparable: water
    is dark, vegetation green-ish (strong VH), bare soil and towns bright and blue-ish.
    """
    s1_db = np.asarray(s1_db, dtype=np.float64)
    if s1_db.ndim != 3 or s1_db.shape[0] != 2:
        raise ValueError(f"expected a (2, H, W) Sentinel-1 array (VV, VH in dB), got {s1_db.shape}")
    vv, vh = s1_db
    rgb = np.stack(
        [_scale(vv, SAR_VV_DB), _scale(vh, SAR_VH_DB), _scale(vv - vh, SAR_RATIO_DB)], axis=-1
    )
    return _to_uint8(rgb)


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask of classes 0/1/2, got shape {mask.shape}")
    return mask


def mask_rgb(mask: np.ndarray) -> np.ndarray:
    """Mask classes (H, W) 0 clear / 1 cloud / 2 shadow -> (H, W, 3): black, white, blue.

    Values outside 0..2 (e.g. 255 = not computed) are drawn grey.
    """
    mask = _check_mask(mask)
    out = np.full((*mask.shape, 3), 128, np.uint8)
    for cls, colour in enumerate(MASK_COLOURS):
        out[mask == cls] = colour
    return out


def mask_overlay(rgb: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend cloud (white) and shadow (blue) over an image; clear pixels are unchanged."""
    mask = _check_mask(mask)
    rgb = np.asarray(rgb)
    if rgb.shape != (*mask.shape, 3):
        raise ValueError(f"image {rgb.shape} and mask {mask.shape} differ in size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = rgb.astype(np.float64)
    for cls in (1, 2):
        sel = mask == cls
        out[sel] = (1 - alpha) * out[sel] + alpha * MASK_COLOURS[cls]
    return np.floor(out + 0.5).astype(np.uint8)


def _ramp(t: np.ndarray) -> np.ndarray:
    """A perceptually ordered black -> purple -> orange -> yellow ramp (like 'inferno')."""
    stops = np.array(
        [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64
    )
    t = np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0) * (len(stops) - 1)
    i = np.minimum(t.astype(int), len(stops) - 2)
    f = (t - i)[..., None]
    return np.floor(stops[i] * (1 - f) + stops[i + 1] * f + 0.5).astype(np.uint8)


def error_map(
    pred_dn: np.ndarray, target_dn: np.ndarray, full_scale: float = ERROR_FULL_SCALE
) -> np.ndarray:
    """Mean absolute reflectance error over bands, (H, W, 3) on a dark-to-bright ramp.

    Black is 0, pale yellow is ``full_scale`` (0.2 reflectance) or more.
    """
    pred_dn = np.asarray(pred_dn, dtype=np.float64)
    target_dn = np.asarray(target_dn, dtype=np.float64)
    if pred_dn.shape != target_dn.shape or pred_dn.ndim != 3:
        raise ValueError(
            f"prediction {pred_dn.shape} and target {target_dn.shape} must be equal (C, H, W)"
        )
    err = np.mean(np.abs(pred_dn - target_dn), axis=0) / S2_DN_PER_REFLECTANCE
    return _ramp(err / full_scale)


#: Predicted standard deviation (reflectance) drawn at the top of the uncertainty ramp.
UNCERTAINTY_FULL_SCALE: float = 0.1


def uncertainty_map(std: np.ndarray, full_scale: float = UNCERTAINTY_FULL_SCALE) -> np.ndarray:
    """Mean predicted standard deviation over bands, (H, W, 3), on the error map's ramp.

    Args:
        std: (C, H, W) standard deviation in reflectance (``predict --uncertainty-out``); NaN
            (no uncertainty there) is drawn black like 0.
        full_scale: reflectance shown as pale yellow (0.1 by default) and above.
    """
    std = np.asarray(std, dtype=np.float64)
    if std.ndim != 3:
        raise ValueError(f"std must be (C, H, W) reflectance, got shape {std.shape}")
    finite = np.isfinite(std)
    count = finite.sum(axis=0)
    total = np.where(finite, std, 0.0).sum(axis=0)
    mean = np.divide(total, count, out=np.zeros(std.shape[1:]), where=count > 0)
    return _ramp(mean / full_scale)


def panel(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    gap: int = 4,
) -> np.ndarray:
    """Images side by side on a white background, each with an optional title strip above.

    Titles are drawn with a built-in 5x7 pixel font (upper-case letters, digits and a few
    signs), so no font file or drawing library is needed.
    """
    if not images:
        raise ValueError("panel needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    for im in images:
        if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise ValueError(f"images must be (H, W, 3) uint8, got {im.shape} {im.dtype}")
    strip = (_GLYPH_H + 4) if titles else 0
    h = max(im.shape[0] for im in images) + strip
    w = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    canvas = np.full((h, w, 3), 255, np.uint8)
    x = 0
    for i, im in enumerate(images):
        canvas[strip : strip + im.shape[0], x : x + im.shape[1]] = im
        if titles:
            _draw_text(canvas, titles[i], x + 1, 2, max_width=im.shape[1] - 2)
        x += im.shape[1] + gap
    return canvas


def stack_rows(rows: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Panels one under the other (left-aligned, white background)."""
    if not rows:
        raise ValueError("stack_rows needs at least one row")
    h = sum(r.shape[0] for r in rows) + gap * (len(rows) - 1)
    w = max(r.shape[1] for r in rows)
    canvas = np.full((h, w, 3), 255, np.uint8)
    y = 0
    for r in rows:
        canvas[y : y + r.shape[0], : r.shape[1]] = r
        y += r.shape[0] + gap
    return canvas


def mask_rgba(mask: np.ndarray, alpha: int = 150) -> np.ndarray:
    """Mask classes (H, W) -> (H, W, 4) for drawing over an image: cloud white and shadow blue
    at ``alpha`` (0-255), clear (and any other value) transparent."""
    mask = _check_mask(mask)
    out = np.zeros((*mask.shape, 4), np.uint8)
    for cls in (1, 2):
        out[mask == cls, :3] = MASK_COLOURS[cls]
        out[mask == cls, 3] = alpha
    return out


def grey_rgb(band: np.ndarray, p: tuple[float, float] = (2.0, 98.0)) -> np.ndarray:
    """One band (H, W) of any quantity as grey (H, W, 3), stretched between its ``p``
    percentiles (NaN black)."""
    x = np.asarray(band, dtype=np.float64)
    finite = x[np.isfinite(x)]
    lo, hi = np.percentile(finite, p) if finite.size else (0.0, 1.0)
    span = hi - lo if hi > lo else 1.0
    g = np.clip((np.nan_to_num(x, nan=lo) - lo) / span, 0.0, 1.0)
    return np.repeat(np.floor(g * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)


def to_png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (H, W, 3) RGB or (H, W, 4) RGBA uint8 image as PNG bytes (Pillow)."""
    import io

    from PIL import Image

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) or (H, W, 4) uint8, got {rgb.shape} {rgb.dtype}")
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB" if rgb.shape[2] == 3 else "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: str | os.PathLike[str], rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 image as a PNG, atomically."""
    from cloudfree.io import atomic_path

    data = to_png_bytes(rgb)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


# A 5x7 bitmap font for titles: each glyph is 7 rows of 5 bits (MSB = leftmost pixel).
_GLYPH_W, _GLYPH_H = 5, 7
_FONT: dict[str, tuple[int, ...]] = {
    "A": (14, 17, 17, 31, 17, 17, 17), "B": (30, 17, 17, 30, 17, 17, 30),
    "C": (14, 17, 16, 16, 16, 17, 14), "D": (30, 17, 17, 17, 17, 17, 30),
    "E": (31, 16, 16, 30, 16, 16, 31), "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15), "H": (17, 17, 17, 31, 17, 17, 17),
    "I": (14, 4, 4, 4, 4, 4, 14), "J": (7, 2, 2, 2, 2, 18, 12),
    "K": (17, 18, 20, 24, 20, 18, 17), "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17), "N": (17, 17, 25, 21, 19, 17, 17),
    "O": (14, 17, 17, 17, 17, 17, 14), "P": (30, 17, 17, 30, 16, 16, 16),
    "Q": (14, 17, 17, 17, 21, 18, 13), "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30), "T": (31, 4, 4, 4, 4, 4, 4),
    "U": (17, 17, 17, 17, 17, 17, 14), "V": (17, 17, 17, 17, 17, 10, 4),
    "W": (17, 17, 17, 21, 21, 21, 10), "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 10, 4, 4, 4, 4), "Z": (31, 1, 2, 4, 8, 16, 31),
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14),
    "2": (14, 17, 1, 2, 4, 8, 31), "3": (31, 2, 4, 2, 1, 17, 14),
    "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8),
    "8": (14, 17, 17, 14, 17, 17, 14), "9": (14, 17, 17, 15, 1, 2, 12),
    ".": (0, 0, 0, 0, 0, 12, 12), ",": (0, 0, 0, 0, 12, 4, 8),
    "-": (0, 0, 0, 31, 0, 0, 0), "_": (0, 0, 0, 0, 0, 0, 31),
    "/": (1, 1, 2, 4, 8, 16, 16), ":": (0, 12, 12, 0, 12, 12, 0),
    "=": (0, 0, 31, 0, 31, 0, 0), "%": (24, 25, 2, 4, 8, 19, 3),
    "(": (2, 4, 8, 8, 8, 4, 2), ")": (8, 4, 2, 2, 2, 4, 8),
    "+": (0, 4, 4, 31, 4, 4, 0), " ": (0, 0, 0, 0, 0, 0, 0),
}  # fmt: skip


def _draw_text(canvas: np.ndarray, text: str, x: int, y: int, max_width: int) -> None:
    """Draw ``text`` in black at (x, y), cut at ``max_width`` pixels; unknown chars as '?' box."""
    for ch in text.upper():
        if x + _GLYPH_W > canvas.shape[1] or max_width < _GLYPH_W:
            return
        rows = _FONT.get(ch, (31, 17, 17, 17, 17, 17, 31))
        for r, bits in enumerate(rows):
            for c in range(_GLYPH_W):
                if bits >> (_GLYPH_W - 1 - c) & 1:
                    canvas[y + r, x + c] = 0
        x += _GLYPH_W + 1
        max_width -= _GLYPH_W + 1
