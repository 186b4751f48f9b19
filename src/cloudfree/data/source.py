"""Which kind of dataset a path is, decided once for every command that takes ``--data``.

- ``"packed"``: a folder written by ``cloudfree pack`` (it holds ``manifest.json``);
- ``"index"``: a CSV written by ``cloudfree index``;
- ``"root"``: any other folder, a SEN12MS-CR root in one of the layouts ``index`` reads
  (indexed on the fly).

:func:`series_kind` says whether such a path is SEN12MS-CR-TS instead: the index of a copy
(``"index"``) or its pack (``"packed"``), which ``evaluate`` and training read as series.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final, Literal

from cloudfree.errors import DataError

DataKind = Literal["packed", "index", "root"]
#: The file that marks a packed folder (cloudfree.data.packed.manifest.MANIFEST).
PACK_MARKER: Final[str] = "manifest.json"


def data_kind(data: str | os.PathLike[str]) -> DataKind:
    """The kind of the dataset ``data`` (module docstring).

    Raises:
        DataError: ``data`` is none of them (missing, or a file that is not a CSV).
    """
    path = Path(data)
    if path.is_dir():
        return "packed" if (path / PACK_MARKER).is_file() else "root"
    if path.is_file() and path.suffix.lower() == ".csv":
        return "index"
    raise DataError(
        path,
        "does not exist" if not path.exists() else "is neither a dataset folder, an index CSV "
        "nor a packed folder",
        "a SEN12MS-CR root, an index written by 'cloudfree index', or a folder written by "
        "'cloudfree pack'",
    )  # fmt: skip


#: ``format`` of the manifest of a SEN12MS-CR-TS pack (cloudfree.data.timeseries.pack).
SERIES_PACK_FORMAT: Final[str] = "cloudfree-ts-packed"
#: How the index CSV of a SEN12MS-CR-TS copy begins (cloudfree.data.timeseries.index).
SERIES_INDEX_HEADER: Final[str] = "roi,patch,t,"


def series_kind(data: str | os.PathLike[str]) -> Literal["index", "packed"] | None:
    """``"index"`` for the index CSV of a SEN12MS-CR-TS copy (its header starts
    ``roi,patch,t``), ``"packed"`` for its pack (a manifest of :data:`SERIES_PACK_FORMAT`),
    None for anything else (a SEN12MS-CR dataset, a path that does not exist)."""
    import json

    path = Path(data)
    if path.is_file() and path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            return "index" if fh.readline().startswith(SERIES_INDEX_HEADER) else None
    marker = path / PACK_MARKER
    if not marker.is_file():
        return None
    try:
        fmt = json.loads(marker.read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        return None
    return "packed" if fmt == SERIES_PACK_FORMAT else None
