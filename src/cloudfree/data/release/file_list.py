"""The DSen2-CR CSV file list (``Data/datasetfilelist.csv`` of ameraner/dsen2-cr): the paper's
patches with their train / val / test split.

Each line is ``split, s1 dir, cloud-free dir, cloudy dir, file name`` (split 1 = train, 2 = val,
3 = test; no header). The repository's example is tab-separated, which its own parser
(``tools/dataIO.py:get_train_val_test_filelists``: ``csv.reader(delimiter="\\t")`` then
``split(", ")`` of the first field) breaks on; both separators are read here. File names are
those of the flat layout (``ROIs1158_spring_101_p100.tif``, or ``ROIs1158_spring_101_0.tif``
in the paper's first release), which :func:`cloudfree.data.release.names.patch_key` maps onto the
public release's (roi_season, scene, patch).
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cloudfree.errors import DataError

#: DSen2-CR file list, first column (spec section 1).
FILE_LIST_SPLITS: Final[dict[str, str]] = {"1": "train", "2": "val", "3": "test"}
#: Upstream reads tab-separated lines but splits fields on ", " (issue #11): accept both, and
#: plain commas.
FIELD_SEP = re.compile(r"\t|,[ \t]*")


@dataclass(frozen=True)
class FileListEntry:
    """One line of a DSen2-CR file list: a patch, its split and its three files."""

    line: int  # 1-based line number in the CSV
    split: str  # "train", "val" or "test"
    s1: str  # path relative to the root, e.g. "s1/ROIs1158_spring_101_p100.tif"
    s2: str
    s2_cloudy: str
    name: str  # the file name column


def read_file_list(path: str | os.PathLike[str]) -> list[FileListEntry]:
    """Read a DSen2-CR CSV file list.

    Each line is ``split, s1 dir, cloud-free dir, cloudy dir, file name`` with split 1 = train,
    2 = val, 3 = test, and no header (a header line is skipped). Fields may be separated by
    tabs (the example in the DSen2-CR repository) or by ``", "`` (what its parser needs,
    spec section 1): both are accepted.

    Raises:
        DataError: the file is missing or a line is malformed; the message names the line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file list does not exist", "a DSen2-CR CSV file list")
    expected = (
        "5 fields separated by tabs or commas: split (1=train, 2=val, 3=test), S1 folder, "
        "cloud-free S2 folder, cloudy S2 folder, file name"
    )
    entries: list[FileListEntry] = []
    with open(path, encoding="utf-8-sig") as f:
        for n, text in enumerate(f, start=1):
            text = text.strip()
            if not text or text.startswith("#"):
                continue
            fields = [x.strip() for x in FIELD_SEP.split(text)]
            if fields and fields[-1] == "":
                fields.pop()  # a trailing separator
            if not entries and not fields[0].isdigit():
                continue  # a header line
            if len(fields) != 5 or fields[0] not in FILE_LIST_SPLITS:
                raise DataError(path, f"line {n} is malformed: {text!r}", expected)
            code, s1_dir, s2_dir, cloudy_dir, name = fields
            entries.append(
                FileListEntry(
                    line=n,
                    split=FILE_LIST_SPLITS[code],
                    s1=posixpath.normpath(f"{s1_dir}/{name}"),
                    s2=posixpath.normpath(f"{s2_dir}/{name}"),
                    s2_cloudy=posixpath.normpath(f"{cloudy_dir}/{name}"),
                    name=name,
                )
            )
    return entries


def looks_like_file_list(path: Path) -> bool:
    """True if one of the first two lines of a CSV reads as ``1, s1, s2_cloudFree, ...``.

    (Two lines: the first may be a header.) Our own index CSV, also often kept in the root,
    does not match.
    """
    try:
        with open(path, encoding="utf-8-sig") as f:
            head = [f.readline() for _ in range(2)]
    except (OSError, UnicodeDecodeError):
        return False
    for text in head:
        fields = [x.strip() for x in FIELD_SEP.split(text.strip())]
        if len(fields) >= 5 and fields[0] in FILE_LIST_SPLITS:
            return True
    return False
