"""The dates of one place given to ``cloudfree composite``: files, their dates, their grid.

Inputs are GeoTIFFs, folders of them, list files (one path per line), or a series folder
(``s2/<YYYY-MM-DD>[_n].tif`` with optional ``s1/<YYYY-MM-DD>[_n].tif``, the layout fetching
from catalogues writes). The date of each file comes from ``--dates`` (one per file, in
order), else the first ``YYYY-MM-DD`` or ``YYYYMMDD`` in its name, else its acquisition-date
tag (``ACQUISITION_DATE``, ``DATETIME``, ``datetime``, ``PRODUCT_START_TIME``); a file
without any is refused, naming it. A cloud/shadow mask of a date (0 clear, 1 cloud, 2 shadow,
or any nonzero value masked) is taken from a mask folder (``--masks DIR``, or ``masks/`` of a
series folder) holding a file of the same name. Two files of the same date (two orbits of one day, or one
scene twice) are both used, as two observations of that day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

from cloudfree.errors import DataError

#: Tags that may hold a file's acquisition date, tried in order.
DATE_TAGS: Final[tuple[str, ...]] = (
    "ACQUISITION_DATE", "DATETIME", "datetime", "PRODUCT_START_TIME", "TIFFTAG_DATETIME",
)  # fmt: skip
_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_COMPACT = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)")
_TIF = (".tif", ".tiff")


@dataclass(frozen=True)
class Dated:
    """One input date: the S2 file, its date, and the S1 file of that date (series folders)."""

    s2: Path
    day: date
    s1: Path | None = None
    mask: Path | None = None


def date_in_text(text: str) -> date | None:
    """The first valid ``YYYY-MM-DD`` or ``YYYYMMDD`` date in ``text`` (a file name), or None."""
    for pattern in (_ISO, _COMPACT):
        for m in pattern.finditer(text):
            try:
                return date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                continue
    return None


def _date_of(path: Path) -> date | None:
    found = date_in_text(path.stem)
    if found is not None:
        return found
    import rasterio

    try:
        with rasterio.open(path) as ds:
            tags = ds.tags()
    except rasterio.errors.RasterioError:
        return None
    for key in DATE_TAGS:
        if key in tags:
            found = date_in_text(tags[key].replace(":", "-", 2)[:10]) or date_in_text(tags[key])
            if found is not None:
                return found
    return None


def _files(inputs: list[str]) -> list[tuple[Path, Path | None]]:
    """(S2 file, S1 file or None) of every input, folders and list files expanded."""
    out: list[tuple[Path, Path | None]] = []
    for text in inputs:
        p = Path(text)
        if p.is_dir() and (p / "s2").is_dir():  # a series folder
            s1_dir = p / "s1"
            for f in sorted(x for x in (p / "s2").iterdir() if x.suffix.lower() in _TIF):
                s1 = s1_dir / f.name
                out.append((f, s1 if s1.is_file() else None))
        elif p.is_dir():
            out += [(f, None) for f in sorted(x for x in p.iterdir() if x.suffix.lower() in _TIF)]
        elif p.suffix.lower() in (".txt", ".lst") and p.is_file():
            from cloudfree.errors import read_text_file

            for line in read_text_file(p, "a list of GeoTIFF paths, one per line").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    q = Path(line) if Path(line).is_absolute() else p.parent / line
                    out.append((q, None))
        elif p.is_file():
            out.append((p, None))
        else:
            raise DataError(p, "does not exist", "S2 GeoTIFFs, folders of them, or a list file")
    return out


def resolve_series(
    inputs: list[str], dates: list[str] | None = None, masks: str | None = None
) -> list[Dated]:
    """The dated inputs, oldest first (module docstring).

    Raises:
        DataError: an input that does not exist, an empty folder, a file without a date, or
            ``dates`` that do not match the files one for one.
    """
    files = _files(inputs)
    if not files:
        raise DataError(None, f"no GeoTIFF among the inputs {inputs}",
                        "S2 GeoTIFFs, folders of them, or a list file")  # fmt: skip
    if dates is not None:
        if len(dates) != len(files):
            raise DataError(None, f"--dates gives {len(dates)} dates for {len(files)} files",
                            "one date (YYYY-MM-DD) per input file, in the order given")  # fmt: skip
        days = []
        for text in dates:
            d = date_in_text(text.strip())
            if d is None:
                raise DataError(None, f"--dates: {text!r} is not a date", "YYYY-MM-DD")
            days.append(d)
    else:
        days = []
        for f, _ in files:
            d = _date_of(f)
            if d is None:
                raise DataError(
                    f, "has no date in its name (YYYY-MM-DD or YYYYMMDD) nor in its tags",
                    "a date in the file name, or --dates (one per input, in order)",
                )  # fmt: skip
            days.append(d)
    out = [Dated(f, d, s1, _mask_of(f, masks)) for (f, s1), d in zip(files, days, strict=True)]
    return sorted(out, key=lambda x: (x.day, str(x.s2)))


def _mask_of(s2: Path, masks: str | None) -> Path | None:
    """The mask file of a date: ``masks/<name>`` given, or ``masks/`` beside a series folder's
    ``s2/``; None when there is none (the mask is computed)."""
    if masks is not None:
        m = Path(masks) / s2.name
        if not m.is_file():
            raise DataError(m, "does not exist", f"a mask file for each input in {masks}")
        return m
    beside = s2.parent.parent / "masks" / s2.name
    return beside if s2.parent.name == "s2" and beside.is_file() else None
