"""A series of dates of one place in the viewer: the dates as a strip with their cloud cover,
and the composites made of them beside it (``cloudfree view SERIES`` and ``cloudfree render
SERIES --out strip.png``).

A series is what ``cloudfree composite`` reads (:func:`cloudfree.predict.series.
resolve_series`): a series folder (``s2/<YYYY-MM-DD>*.tif``, optional ``s1/`` and ``masks/``),
or a folder of dated GeoTIFFs. Its composites are the GeoTIFFs that ``composite`` wrote (tag
``software=cloudfree composite``) in the predictions folder, each with its ``*_made.tif``.

Cloud cover of a date: the share of its pixels with data that its mask file (``masks/``)
marks, else that the scene masker (``auto``) finds on an overview of at most
:data:`COVER_SIDE` pixels (the pixel size scaled to match), computed once per date and kept:
an estimate for browsing, not the composite's own masks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.errors import DataError

#: Longest side of the overview a date's cloud cover is estimated on.
COVER_SIDE: Final[int] = 512
#: Colours of the ``made`` codes: no data, filled, no clear date (kept), 1, 2, 3+ clear dates.
MADE_COLOURS: Final[dict[int, tuple[int, int, int]]] = {
    -2: (0, 0, 0),
    -1: (214, 39, 160),
    0: (150, 150, 150),
    1: (199, 233, 192),
    2: (116, 196, 118),
    3: (35, 139, 69),
}


def is_series(path: str | os.PathLike[str]) -> bool:
    """A series folder (``s2/`` of GeoTIFFs with a date in their names)."""
    from cloudfree.predict.series import date_in_text

    s2 = Path(path) / "s2"
    return s2.is_dir() and any(
        f.suffix.lower() in (".tif", ".tiff") and date_in_text(f.stem) for f in s2.iterdir()
    )


def made_rgb(made: np.ndarray) -> np.ndarray:
    """(H, W) ``made`` codes (NaN or -32768: nodata) -> (H, W, 3) uint8 (:data:`MADE_COLOURS`;
    4 and more clear dates as 3)."""
    m = np.nan_to_num(np.asarray(made, dtype=np.float64), nan=-2)
    m = np.where(m < -2, -2, np.minimum(m, 3)).astype(np.int64)
    out = np.zeros((*m.shape, 3), np.uint8)
    for code, colour in MADE_COLOURS.items():
        out[m == code] = colour
    return out


@dataclass(frozen=True)
class Composite:
    """A composite of the series: its file, its ``made`` file (if found) and its tags."""

    path: Path
    made: Path | None
    tags: dict[str, str]

    @property
    def name(self) -> str:
        return self.path.stem


class Series:
    """The dates of one place and their composites (module docstring).

    Args:
        root: a series folder or a folder of dated GeoTIFFs.
        predictions: a folder holding composites of it (searched recursively), or None.

    Raises:
        DataError: no dated GeoTIFF in ``root``.
    """

    def __init__(
        self, root: str | os.PathLike[str], predictions: str | os.PathLike[str] | None = None
    ) -> None:
        from cloudfree.predict.series import resolve_series

        self.root = Path(root)
        self.dates = resolve_series([str(self.root)])
        self._cover: dict[int, float] = {}
        self.composites = _composites(Path(predictions)) if predictions else []

    def date(self, i: int) -> Any:
        """The ``i``-th date (oldest first); :class:`IndexError` naming the count."""
        if not 0 <= i < len(self.dates):
            raise IndexError(f"no date {i}: the series has {len(self.dates)} (0-based)")
        return self.dates[i]

    def composite(self, i: int) -> Composite:
        if not 0 <= i < len(self.composites):
            raise IndexError(f"no composite {i}: {len(self.composites)} found")
        return self.composites[i]

    def cover(self, i: int) -> float:
        """Cloud cover of date ``i`` in [0, 1] (module docstring); NaN without data."""
        if i not in self._cover:
            self._cover[i] = _cover(self.date(i))
        return self._cover[i]

    def summary(self) -> dict[str, Any]:
        """What the page lists: each date (day, file, S1, mask file) and each composite."""
        return {
            "root": str(self.root),
            "dates": [
                {
                    "index": i,
                    "day": str(d.day),
                    "name": d.s2.name,
                    "s1": d.s1 is not None,
                    "mask_file": d.mask is not None,
                }
                for i, d in enumerate(self.dates)
            ],  # fmt: skip
            "composites": [
                {
                    "index": i,
                    "name": c.name,
                    "made": c.made is not None,
                    "method": c.tags.get("method", ""),
                    "target_date": c.tags.get("target_date", ""),
                    "dates": c.tags.get("dates", ""),
                }
                for i, c in enumerate(self.composites)
            ],  # fmt: skip
        }


def _composites(folder: Path) -> list[Composite]:
    from cloudfree.viewer.layers import output_tags

    if not folder.is_dir():
        raise DataError(folder, "is not a folder", "the folder 'cloudfree composite' wrote into")
    out = []
    for f in sorted(folder.rglob("*.tif")):
        if f.stem.endswith("_made"):
            continue
        tags = output_tags(f)
        if tags.get("software") != "cloudfree composite":
            continue
        made = f.with_name(f"{f.stem}_made{f.suffix}")
        out.append(Composite(f, made if made.is_file() else None, tags))
    return out


def _cover(d: Any) -> float:
    """Cloud cover of one date (module docstring)."""
    from cloudfree.viewer.layers import overview_shape, raster_size, read_display

    h, w, count = raster_size(d.s2)
    shape = overview_shape(h, w, COVER_SIDE)
    if d.mask is not None:
        m, _ = read_display(d.mask, out_size=shape, categorical=True)
        valid = np.isfinite(m[0])
        return float((m[0][valid] != 0).mean()) if valid.any() else float("nan")
    from cloudfree.bands import GSD_M, S2_BANDS, S2_L2A_BANDS
    from cloudfree.masks.scene import mask_array

    dn, _ = read_display(d.s2, out_size=shape)
    valid = np.isfinite(dn).all(axis=0) & (np.nan_to_num(dn) > 0).any(axis=0)
    if not valid.any():
        return float("nan")
    bands, level = (S2_BANDS, "l1c") if count == len(S2_BANDS) else (S2_L2A_BANDS, "l2a")
    mask = mask_array(np.nan_to_num(dn), "auto", level, GSD_M * h / shape[0], bands=bands)
    return float((mask[valid] != 0).mean())
