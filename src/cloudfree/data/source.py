"""Which kind of dataset a path is, decided once for every command that takes ``--data``.

- ``"packed"``: a folder written by ``cloudfree pack`` (it holds ``manifest.json``);
- ``"index"``: a CSV written by ``cloudfree index``;
- ``"root"``: any other folder, a SEN12MS-CR root in one of the layouts ``index`` reads
  (indexed on the fly).
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
