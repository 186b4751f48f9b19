"""Which Sentinel-2 band each band of a file holds, and its product level (L1C or L2A).

A scene masker reads its bands by name (``B2``, ``B8``...), so a file may hold any subset of
the 13 bands in any order, as long as the masker's bands are there. The layout of a file is
taken, in this order, from:

1. the names given by the user (``--bands B2,B3,B4,B8,B11,B12``), one per band of the file;
2. the band descriptions of the file, when every band has one that names a Sentinel-2 band
   (``B2``, ``B02``, ``B8A``, or the STAC common names ``blue``, ``nir``, ``swir16``...; a
   trailing note such as ``"B2 (490 nm)"`` is allowed);
3. the band count: 13 bands are the L1C stack (``S2_BANDS``, what ``cloudfree stack`` and
   SEN12MS-CR hold), 12 bands the L2A stack without B10 (``S2_L2A_BANDS``).

Anything else is an error that says how to name the bands. The product level decides which
model a learned masker uses: L1C when B10 (cirrus, dropped by sen2cor) is present, L2A for
the 12-band stack or a file whose name or tags say L2A, else L1C (the mask models of both
levels were trained on the same scenes, and both work on either level: see
``benchmarks/README.md``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from cloudfree.bands import NUM_S2_BANDS, S2_BANDS, S2_L2A_BANDS
from cloudfree.errors import DataError

#: Product levels a masker can be told about.
LEVELS: Final[tuple[str, ...]] = ("l1c", "l2a")

#: STAC ``eo:common_name`` of each band (Earth Search asset keys use these names).
COMMON_NAMES: Final[dict[str, str]] = {
    "coastal": "B1", "blue": "B2", "green": "B3", "red": "B4", "rededge1": "B5",
    "rededge2": "B6", "rededge3": "B7", "nir": "B8", "nir08": "B8A", "nir09": "B9",
    "cirrus": "B10", "swir16": "B11", "swir22": "B12",
}  # fmt: skip

_NUMBERED = re.compile(r"^B0?(1[0-2]|[1-9]|8A)$")


def band_name(text: str | None) -> str | None:
    """The ``S2_BANDS`` name a band description or user name stands for, or None.

    ``"B02"``, ``"b2"``, ``"B2 (490 nm)"``, ``"blue"`` -> ``"B2"``; ``"B8A"``, ``"nir08"`` ->
    ``"B8A"``; ``"cloud"`` -> None.
    """
    if not text:
        return None
    word = re.split(r"[\s(:,;]", text.strip(), maxsplit=1)[0]
    common = COMMON_NAMES.get(word.lower())
    if common is not None:
        return common
    m = _NUMBERED.match(word.upper())
    return f"B{m.group(1)}" if m else None


@dataclass(frozen=True)
class BandLayout:
    """The Sentinel-2 band of each band of a file.

    Attributes:
        names: the ``S2_BANDS`` name of each band, in file order.
        source: how the names were found (``"--bands"``, ``"band descriptions"``,
            ``"13-band L1C stack"``, ``"12-band L2A stack"``), for messages.
    """

    names: tuple[str, ...]
    source: str

    def index(self, band: str) -> int:
        """1-based band index of ``band`` in the file (rasterio's ``indexes``)."""
        return self.names.index(band) + 1

    def indexes(self, bands: Sequence[str]) -> list[int]:
        """1-based indexes of several bands."""
        return [self.index(b) for b in bands]

    @property
    def has_b10(self) -> bool:
        """Whether the file holds B10 (cirrus), which only L1C products have."""
        return "B10" in self.names


def parse_bands(text: str) -> tuple[str, ...]:
    """``"B2,B3,B4,B8"`` (or common names, ``blue,green,...``) -> band names.

    Raises:
        ValueError: a name that is not a Sentinel-2 band, or a band named twice.
    """
    names = []
    for word in (w.strip() for w in text.split(",")):
        name = band_name(word)
        if name is None:
            raise ValueError(
                f"--bands: {word!r} is not a Sentinel-2 band; expected names such as "
                f"{', '.join(S2_BANDS)} or STAC common names ({', '.join(COMMON_NAMES)})"
            )
        names.append(name)
    if len(set(names)) != len(names):
        raise ValueError(f"--bands names a band twice: {text!r}")
    return tuple(names)


def band_layout(
    count: int,
    descriptions: Sequence[str | None] = (),
    bands: Sequence[str] | str | None = None,
    where: str | os.PathLike[str] | None = None,
) -> BandLayout:
    """The layout of a file with ``count`` bands (module docstring: given names, then the
    band descriptions, then the count).

    Args:
        count: bands in the file.
        descriptions: the file's band descriptions (rasterio ``ds.descriptions``).
        bands: names given by the user (a sequence or a comma-separated string), or None.
        where: the file named in messages.

    Raises:
        DataError: given names that do not match the band count, or a file whose bands
            cannot be told apart (no usable descriptions and neither 13 nor 12 bands).
    """
    if bands is not None:
        names = parse_bands(bands) if isinstance(bands, str) else parse_bands(",".join(bands))
        if len(names) != count:
            raise DataError(
                where,
                f"--bands names {len(names)} bands ({', '.join(names)}) but the file has {count}",
                "one name per band of the file, in file order",
            )
        return BandLayout(names, "--bands")
    parsed = [band_name(d) for d in descriptions]
    if len(parsed) == count and all(parsed) and len(set(parsed)) == count:
        return BandLayout(tuple(p for p in parsed if p), "band descriptions")
    if count == NUM_S2_BANDS:
        return BandLayout(S2_BANDS, "13-band L1C stack")
    if count == len(S2_L2A_BANDS):
        return BandLayout(S2_L2A_BANDS, "12-band L2A stack")
    raise DataError(
        where,
        f"has {count} bands and its band descriptions ({', '.join(str(d) for d in descriptions)})"
        " do not name Sentinel-2 bands, so the bands cannot be told apart",
        "band descriptions naming each band (B2, B03, blue, nir...; e.g. 'gdal_edit.py "
        "-colorinterp ...' or rasterio's set_band_description), or --bands B2,B3,B4,B8 giving "
        "the name of each band in file order; 13-band L1C and 12-band L2A stacks need neither",
    )


def product_level(
    layout: BandLayout, where: str | os.PathLike[str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:  # fmt: skip
    """``"l1c"`` or ``"l2a"`` for a file (module docstring): B10 present -> L1C; every band
    but B10, or ``L2A`` in the file name or its tags (a ``PROCESSING_LEVEL`` or product
    name) -> L2A; otherwise L1C."""
    if layout.has_b10:
        return "l1c"
    if set(layout.names) >= set(S2_L2A_BANDS):
        return "l2a"  # every band but B10: the L2A stack, whatever its order
    text = " ".join([os.path.basename(str(where or ""))] + [str(v) for v in (tags or {}).values()])
    return "l2a" if re.search(r"L2A", text, re.IGNORECASE) else "l1c"
