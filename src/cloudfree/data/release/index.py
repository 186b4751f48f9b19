"""The patch index: one row per SEN12MS-CR patch, as written by ``cloudfree index``.

The CSV has exactly the columns ``roi_season,scene,patch,split,s1,s2,s2_cloudy``; the three file
columns are paths relative to the dataset root, empty where that kind of file is missing. A
sidecar ``<name>.summary.json`` records the root, the counts and the problems found, so that
later commands (``pack``, training) find the files without being told the root again.
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cloudfree.bands import KINDS, SPLITS
from cloudfree.errors import DataError, read_json_file, read_text_file
from cloudfree.io import atomic_path

INDEX_COLUMNS: tuple[str, ...] = ("roi_season", "scene", "patch", "split", "s1", "s2", "s2_cloudy")


@dataclass(frozen=True, order=True)
class IndexRow:
    """One patch: where its S1, cloud-free S2 and cloudy S2 files are ("" = missing).

    ``roi_season`` is the release prefix (``"ROIs1970_fall"``), ``scene`` the ROI number within
    it, ``patch`` the patch number (``..._p100.tif`` -> 100).
    """

    roi_season: str
    scene: int
    patch: int
    split: str = "train"
    s1: str = ""
    s2: str = ""
    s2_cloudy: str = ""

    @property
    def id(self) -> str:
        """A unique patch id, ``ROIs1970_fall_136_p100``."""
        return f"{self.roi_season}_{self.scene}_p{self.patch}"

    @property
    def season(self) -> str:
        """``"fall"`` for ``"ROIs1970_fall"``."""
        return self.roi_season.rsplit("_", 1)[-1]

    def path(self, kind: str) -> str:
        """Relative path of one kind of file (``"s1"``, ``"s2"`` or ``"s2_cloudy"``)."""
        if kind not in KINDS:
            raise KeyError(f"unknown kind {kind!r}; expected one of {KINDS}")
        return getattr(self, kind)

    def has(self, *kinds: str) -> bool:
        """True if every named kind of file is present."""
        return all(self.path(k) for k in kinds)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of file this patch has, in ``KINDS`` order."""
        return tuple(k for k in KINDS if self.path(k))

    @property
    def complete(self) -> bool:
        """S1, cloud-free S2 and cloudy S2 are all present."""
        return self.has(*KINDS)


@dataclass(frozen=True)
class Problem:
    """A file that was found but is not usable, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class IndexSummary:
    """What is complete and what is not, in the categories users ask about."""

    total: int
    complete: int  # s1 + s2 + s2_cloudy
    pairs_without_s1: int  # s2 + s2_cloudy
    pairs_without_target: int  # s1 + s2_cloudy
    pairs_without_cloudy: int  # s1 + s2
    lone: dict[str, int]  # only one kind present, by kind
    by_split: dict[str, int]
    complete_by_split: dict[str, int]

    @property
    def lone_total(self) -> int:
        return sum(self.lone.values())


@dataclass
class IndexResult:
    """An index in memory: its rows, the dataset root they are relative to, and the problems."""

    rows: list[IndexRow]
    root: Path
    problems: list[Problem] = field(default_factory=list)
    split_source: str = "official"
    layout: str = ""
    #: usable oddities worth telling the user (e.g. "12 file(s) of kind s2 are int16"), kept rows
    notes: list[str] = field(default_factory=list)

    def summary(self) -> IndexSummary:
        return summarize(self.rows)

    def resolve(self, row: IndexRow, kind: str) -> Path:
        """Absolute path of one file of a row (may point into an archive)."""
        rel = row.path(kind)
        if not rel:
            raise DataError(None, f"patch {row.id} has no {kind} file", f"an index row with {kind}")
        return self.root / rel

    def select(self, split: str | None = None, require: Sequence[str] = ()) -> list[IndexRow]:
        """Rows of one split (None = all) that have every kind in ``require``."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return [r for r in self.rows if (split is None or r.split == split) and r.has(*require)]


def summarize(rows: Iterable[IndexRow]) -> IndexSummary:
    """Count complete triplets, each kind of pair, and lone files."""
    rows = list(rows)
    combos = Counter(r.kinds for r in rows)
    return IndexSummary(
        total=len(rows),
        complete=combos[("s1", "s2", "s2_cloudy")],
        pairs_without_s1=combos[("s2", "s2_cloudy")],
        pairs_without_target=combos[("s1", "s2_cloudy")],
        pairs_without_cloudy=combos[("s1", "s2")],
        lone={k: combos[(k,)] for k in KINDS},
        by_split=dict(Counter(r.split for r in rows)),
        complete_by_split=dict(Counter(r.split for r in rows if r.complete)),
    )


def format_summary(result: IndexResult) -> str:
    """A short human-readable report of an index (printed by ``cloudfree index``)."""
    s = result.summary()
    splits = ", ".join(f"{k} {s.by_split.get(k, 0)}" for k in SPLITS)
    lone = ", ".join(f"{s.lone[k]} {k}" for k in KINDS)
    lines = [
        f"{s.total} patches under {result.root} ({result.layout or 'layout unknown'}; "
        f"split: {result.split_source})",
        f"  complete triplets (s1, s2, s2_cloudy): {s.complete}",
        f"  cloudy/clear pairs without S1:         {s.pairs_without_s1}  (usable without SAR)",
        f"  S1 + cloudy pairs without target:      {s.pairs_without_target}  (prediction only)",
        f"  S1 + clear pairs without cloudy input: {s.pairs_without_cloudy}",
        f"  lone files:                            {s.lone_total} ({lone})",
        f"  by split: {splits}",
    ]
    if result.problems:
        lines.append(f"  problems: {len(result.problems)} file(s) unusable, e.g.:")
        lines += [f"    {p.path}: {p.reason}" for p in result.problems[:10]]
    lines += [f"  note: {n}" for n in result.notes]
    return "\n".join(lines)


def summary_path(index_path: str | os.PathLike[str]) -> Path:
    """Sidecar of an index CSV: ``index.csv`` -> ``index.summary.json``."""
    p = Path(index_path)
    return p.with_name(p.stem + ".summary.json")


def write_index(result: IndexResult, out: str | os.PathLike[str]) -> Path:
    """Write the CSV (sorted by roi_season, scene, patch) and its summary sidecar, atomically:
    both are staged, and renamed into place only once both are complete."""
    out = Path(out)
    rows = sorted(result.rows)
    side = {
        "root": str(Path(result.root).resolve()),
        "layout": result.layout,
        "split_source": result.split_source,
        "summary": asdict(result.summary()),
        "problems": [asdict(p) for p in result.problems],
        "notes": list(result.notes),
    }
    with atomic_path(out) as tmp, atomic_path(summary_path(out)) as side_tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(INDEX_COLUMNS)
            for r in rows:
                w.writerow([r.roi_season, r.scene, r.patch, r.split, r.s1, r.s2, r.s2_cloudy])
        side_tmp.write_text(json.dumps(side, indent=2) + "\n")
    return out


def read_index(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> IndexResult:
    """Read an index CSV.

    Args:
        path: the CSV written by ``cloudfree index``.
        root: dataset root the paths are relative to; default: the root recorded in the
            summary sidecar, else the CSV's folder.

    Raises:
        DataError: the file is missing, lacks a column, or has a malformed row.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            path, "index file does not exist", "a CSV written by 'cloudfree index ROOT --out FILE'"
        )
    side: dict = {}
    if summary_path(path).is_file():
        loaded = read_json_file(
            summary_path(path), "the summary 'cloudfree index' writes beside its CSV (delete it "
            "to read the CSV alone, or index the dataset again)",
        )  # fmt: skip
        side = loaded if isinstance(loaded, dict) else {}
    if root is None:
        root = side.get("root") or path.parent
    rows: list[IndexRow] = []
    seen: dict[tuple[str, int, int], int] = {}
    duplicates: list[int] = []
    # A CSV saved by a spreadsheet starts with a byte-order mark (read_text_file skips it).
    text = read_text_file(path, "a CSV written by 'cloudfree index ROOT --out FILE'")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in INDEX_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(
            path, f"missing column(s) {missing}", f"the header {','.join(INDEX_COLUMNS)}"
        )
    for n, rec in enumerate(reader, start=2):
        try:
            row = IndexRow(
                roi_season=rec["roi_season"],
                scene=int(rec["scene"]),
                patch=int(rec["patch"]),
                split=rec["split"],
                s1=rec["s1"] or "",
                s2=rec["s2"] or "",
                s2_cloudy=rec["s2_cloudy"] or "",
            )
        except (TypeError, ValueError) as e:
            raise DataError(path, f"line {n} is malformed ({e})", "integer scene and patch") from e
        if row.split not in SPLITS:
            raise DataError(path, f"line {n} has split {row.split!r}", f"one of {SPLITS}")
        key = (row.roi_season, row.scene, row.patch)
        if key in seen:  # scored or packed twice, a patch would weigh double
            duplicates.append(n)
            continue
        seen[key] = n
        rows.append(row)
    if duplicates:
        warnings.warn(
            f"{path}: {len(duplicates)} duplicate row(s) of a patch already listed (lines "
            f"{', '.join(map(str, duplicates[:5]))}{', ...' if len(duplicates) > 5 else ''}); "
            "each patch is used once",
            stacklevel=2,
        )
    return IndexResult(
        rows=rows,
        root=Path(root),
        problems=[Problem(**p) for p in side.get("problems", [])],
        split_source=side.get("split_source", "unknown"),
        layout=side.get("layout", ""),
        notes=list(side.get("notes", [])),
    )
