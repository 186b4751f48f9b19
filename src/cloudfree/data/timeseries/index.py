"""The index of a SEN12MS-CR-TS copy: one row per patch and date (``cloudfree index``).

Rows (CSV columns :data:`TS_INDEX_COLUMNS`): ``roi`` (``ROIs1970/21``), ``patch``, ``t``
(time point 0-29), ``split`` (official, :func:`~cloudfree.data.timeseries.names.split_of`),
``region``, ``s2_date`` and ``s1_date`` (each file's own acquisition date, from its name),
``s2`` and ``s1`` (paths relative to ROOT, into an archive as ``s2_africa.tar.gz/africa/...``;
empty where missing). One row per date rather than one per patch, so that a copy with some
dates or one modality missing is described exactly, and a reader groups rows by
``(roi, patch)`` to get a patch's series.

What the index finds: the release's folders unpacked anywhere under ROOT (merged as the
authors' ``dl_data.sh`` does, or not), and its per-modality, per-region ``.tar.gz`` archives
(read without unpacking, through GDAL's ``/vsitar/``). A file both unpacked and inside an
archive is taken unpacked. A copy with only the S2 folders (``s2_*`` archives) is complete
for the methods that need no SAR, and the summary says so.
"""

from __future__ import annotations

import csv
import os
import tarfile
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cloudfree.data.release.discover import list_archive, walk_files
from cloudfree.data.timeseries.names import (
    REGION_SPLITS,
    TIME_POINTS,
    TSFile,
    parse_name,
    region_of,
    split_of,
)
from cloudfree.errors import DataError
from cloudfree.io import ARCHIVE_SUFFIXES

TS_INDEX_COLUMNS: Final[tuple[str, ...]] = (
    "roi", "patch", "t", "split", "region", "s2_date", "s1_date", "s2", "s1",
)  # fmt: skip


@dataclass
class TSIndex:
    """What was found: ``files[(roi, patch, t)][modality] = (path, date)``; ``problems``:
    (path, reason) of what could not be used; ``duplicates``: files found twice (the unpacked
    copy used)."""

    root: Path
    files: dict[tuple[str, int, int], dict[str, tuple[str, str]]] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    duplicates: int = 0

    def add(self, f: TSFile, rel: str, archived: bool) -> None:
        slot = self.files.setdefault((f.roi, f.patch, f.t), {})
        if f.modality in slot:
            self.duplicates += 1
            if archived:  # the unpacked copy wins
                return
        slot[f.modality] = (rel, f.date.isoformat())

    def rows(self) -> list[dict[str, str]]:
        """Index rows in (roi, patch, t) order."""
        out = []
        for (roi, patch, t), slot in sorted(self.files.items()):
            s2, s1 = slot.get("s2", ("", "")), slot.get("s1", ("", ""))
            out.append({
                "roi": roi, "patch": str(patch), "t": str(t), "split": split_of(roi) or "",
                "region": region_of(roi) or "", "s2_date": s2[1], "s1_date": s1[1],
                "s2": s2[0], "s1": s1[0],
            })  # fmt: skip
        return out


def looks_like_timeseries(root: str | os.PathLike[str]) -> bool:
    """Whether ROOT holds SEN12MS-CR-TS: a ``ROIs<id>/<roi>/S1|S2/<t>`` folder within two
    levels, or a release archive (``s1_<region>[_test].tar.gz``, ``s2_...``)."""
    top = Path(root)
    if not top.is_dir():
        return False
    for base in (top, *(p for p in top.iterdir() if p.is_dir())):
        for group in base.glob("ROIs[0-9][0-9][0-9][0-9]"):
            if any(group.glob("*/S[12]/[0-9]*")):
                return True
    return any(_is_ts_archive(p.name) for p in top.iterdir() if p.is_file())


def _is_ts_archive(name: str) -> bool:
    stem = next((name[: -len(s)] for s in ARCHIVE_SUFFIXES if name.endswith(s)), None)
    if stem is None:
        return False
    mod, _, rest = stem.partition("_")
    return mod in ("s1", "s2") and rest.removesuffix("_test") in REGION_SPLITS


def build_ts_index(root: str | os.PathLike[str]) -> TSIndex:
    """Find every SEN12MS-CR-TS file under ``root`` (module docstring).

    Raises:
        DataError: ROOT is not a folder, or holds no SEN12MS-CR-TS file.
    """
    top = Path(root)
    if not top.is_dir():
        raise DataError(top, "is not a folder", "the folder of your SEN12MS-CR-TS copy")
    index = TSIndex(top)
    archives = []
    for reldir, _, entry in walk_files(str(top), set()):
        rel = f"{reldir}/{entry.name}" if reldir else entry.name
        if entry.name.endswith(ARCHIVE_SUFFIXES):
            archives.append(rel)
            continue
        f = parse_name(entry.name)
        if f is None:
            continue
        if not _in_place(reldir, f):
            index.problems.append((rel, f"not in its release folder {_folder(f)}/"))
            continue
        index.add(f, rel, archived=False)
    for rel_archive in sorted(archives):
        try:
            for member, _size in list_archive(str(top / rel_archive)):
                parent, _, name = member.rpartition("/")
                f = parse_name(name)
                if f is None:
                    continue
                rel = f"{rel_archive}/{member}"
                if not _in_place(parent, f):
                    index.problems.append((rel, f"not in its release folder {_folder(f)}/"))
                    continue
                index.add(f, rel, archived=True)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            index.problems.append((rel_archive, f"unreadable archive ({e}): download it again"))
    if not index.files:
        raise DataError(
            top,
            "holds no SEN12MS-CR-TS file (s1|s2_ROIs<id>_<roi>_ImgNo_<t>_<date>_patch_<n>.tif "
            "under ROIs<id>/<roi>/S1|S2/<t>/)",
            "the folder where the release's archives are, unpacked or not",
        )
    return index


def _folder(f: TSFile) -> str:
    return f"{f.roi}/{f.modality.upper()}/{f.t}"


def _in_place(parent: str, f: TSFile) -> bool:
    """The file sits in ``.../<roi_id>/<roi>/<S1|S2>/<t>/`` as its name says (a file moved to
    another date's folder would give a wrong series)."""
    return parent == _folder(f) or parent.endswith("/" + _folder(f))


def summarize(index: TSIndex) -> str:
    """What is complete, per split: patches with all 30 dates of S2 (and of S1)."""
    by_patch: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    for (roi, patch, _t), slot in index.files.items():
        by_patch[(roi, patch)].update(slot.keys())
    lines = []
    for split in ("train", "val", "test", ""):
        keys = [k for k in by_patch if (split_of(k[0]) or "") == split]
        if not keys:
            continue
        s2 = sum(by_patch[k]["s2"] == TIME_POINTS for k in keys)
        both = sum(by_patch[k]["s2"] == by_patch[k]["s1"] == TIME_POINTS for k in keys)
        rois = len({k[0] for k in keys})
        name = split or "no official split"
        lines.append(
            f"{name}: {len(keys)} patches of {rois} ROIs; {s2} with all {TIME_POINTS} S2 dates "
            f"(enough for methods without SAR), {both} with S1 too"
        )
    incomplete = sum(c["s2"] < TIME_POINTS for c in by_patch.values())
    if incomplete:
        lines.append(f"{incomplete} patches miss S2 dates (their series are incomplete)")
    if not any(c["s1"] for c in by_patch.values()):
        lines.append("no S1 in this copy: it serves the methods that need no SAR")
    if index.duplicates:
        lines.append(f"{index.duplicates} files found twice (unpacked and archived): unpacked used")
    for path, reason in index.problems[:10]:
        lines.append(f"skipped {path}: {reason}")
    if len(index.problems) > 10:
        lines.append(f"... and {len(index.problems) - 10} more skipped files")
    return "\n".join(lines)


#: Bands and side of the release's files (S2: 13 bands L1C; S1: VV, VH), 256 x 256 px.
EXPECTED_BANDS: Final[dict[str, int]] = {"s2": 13, "s1": 2}
PATCH_SIDE: Final[int] = 256


def check_ts_files(index: TSIndex, strict: bool = False) -> None:
    """Open every file's header; a file with the wrong band count or size, or unreadable, is
    taken out of the index and reported (``strict``: a DataError at the first).

    Raises:
        DataError: with ``strict``, the first bad file, naming what was expected.
    """
    import rasterio

    from cloudfree.io import gdal_path

    for slot in index.files.values():
        for modality, (rel, _day) in list(slot.items()):
            path = index.root / rel
            try:
                with rasterio.open(gdal_path(path)) as ds:
                    bands, shape = ds.count, (ds.height, ds.width)
            except rasterio.errors.RasterioError as e:
                reason = f"unreadable ({e})"
            else:
                want = EXPECTED_BANDS[modality]
                if bands == want and shape == (PATCH_SIDE, PATCH_SIDE):
                    continue
                reason = (f"{bands} bands of {shape[0]} x {shape[1]} px where the release has "
                          f"{want} bands of {PATCH_SIDE} x {PATCH_SIDE}")  # fmt: skip
            if strict:
                raise DataError(path, reason, "the release's file; download it again")
            index.problems.append((rel, reason))
            del slot[modality]


def write_ts_index(index: TSIndex, out: str | os.PathLike[str]) -> Path:
    """Write the rows as CSV and its sidecar (``<stem>.summary.json``: the root the paths are
    relative to, the dataset, what was skipped), staged and renamed together."""
    import json

    from cloudfree.data.release.index import summary_path
    from cloudfree.io import atomic_path

    out = Path(out)
    side = {
        "root": str(index.root.resolve()),
        "dataset": "SEN12MS-CR-TS",
        "duplicates": index.duplicates,
        "problems": [{"path": p, "reason": r} for p, r in index.problems],
    }
    with atomic_path(out) as tmp, atomic_path(summary_path(out)) as side_tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=TS_INDEX_COLUMNS)
            w.writeheader()
            w.writerows(index.rows())
        side_tmp.write_text(json.dumps(side, indent=2) + "\n", encoding="utf-8")
    return out


def ts_index_root(path: str | os.PathLike[str]) -> Path:
    """The root the paths of an index are relative to: its sidecar's, else the index's
    folder."""
    from cloudfree.data.release.index import summary_path
    from cloudfree.errors import read_json_file

    side = summary_path(path)
    if side.is_file():
        data = read_json_file(side, "the sidecar of a SEN12MS-CR-TS index")
        if isinstance(data, dict) and data.get("root"):
            return Path(str(data["root"]))
    return Path(path).resolve().parent


def read_ts_index(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The rows of an index written by :func:`write_ts_index`.

    Raises:
        DataError: not such an index (the missing columns named).
    """
    from cloudfree.errors import read_text_file

    text = read_text_file(path, "a SEN12MS-CR-TS index CSV")
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in TS_INDEX_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(
            path, f"missing column(s) {missing}", f"the header {','.join(TS_INDEX_COLUMNS)}"
        )
    return list(reader)
