"""Find every SEN12MS-CR patch under a folder: the engine of ``cloudfree index``.

Three forms are recognised, and one root may mix them:

* **release folders**, the archives unpacked (spec section 1):
  ``ROIs1970_fall_s1/s1_136/ROIs1970_fall_s1_136_p100.tif``; the kind (``s1``, ``s2``,
  ``s2_cloudy``) is read from the file name, so the folders above it may be arranged freely.
* **release archives** ``ROIs1970_fall_s1.tar.gz`` (also ``.tgz``, ``.tar``), listed with
  :mod:`tarfile` without unpacking anything; rows then hold paths *into* the archive
  (``ROIs1970_fall_s1.tar.gz/ROIs1970_fall_s1/s1_136/...tif``), which
  :func:`cloudfree.io.read_raster` opens through GDAL's ``/vsitar/``. An archive with its
  unpacked folder beside it (``ROIs1970_fall_s1/`` next to ``ROIs1970_fall_s1.tar.gz``) is not
  opened: listing a 50 GB ``.tar.gz`` means decompressing all of it, and the folder is faster
  to read anyway. Delete or move the folder to index the archive instead.
* **flat DSen2-CR**: folders ``s1/``, ``s2_cloudFree/``, ``s2_cloudy/`` holding equal names
  ``ROIs1158_spring_<scene>_p<patch>.tif`` (the old ``..._<scene>_<n>.tif`` too), optionally with
  the DSen2-CR CSV file list (see :func:`read_file_list`). With a file list, its lines are the
  rows and its first column the split; without one, the three folders are scanned.

Nothing is opened unless ``check=True``: discovery only lists folders (``os.scandir``) and
archive headers (about 45k files a second here, so ~10 s for the 366k files of the full
release).
"""

from __future__ import annotations

import os
import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final, NamedTuple

from cloudfree.bands import KINDS
from cloudfree.data.release.file_list import looks_like_file_list, read_file_list
from cloudfree.data.release.index import IndexResult, IndexRow, Problem
from cloudfree.data.release.names import FLAT_NAME, RELEASE_NAME, patch_key
from cloudfree.data.release.splits import SplitTable
from cloudfree.errors import DataError, DatasetNotFoundError
from cloudfree.io import ARCHIVE_SUFFIXES

#: Flat folder names (lower case) -> kind.
FLAT_DIRS: Final[dict[str, str]] = {
    "s1": "s1",
    "s2_cloudfree": "s2",
    "s2": "s2",
    "s2_cloudy": "s2_cloudy",
}
_LAYOUT_OF: Final[dict[bool, str]] = {False: "release folders", True: "flat DSen2-CR"}

LAYOUT_EXAMPLES: Final[str] = (
    "one of these layouts:\n"
    "  release folders:  ROOT/ROIs1970_fall_s1/s1_136/ROIs1970_fall_s1_136_p100.tif "
    "(also s2_136/..._s2_136_p100.tif, s2_cloudy_136/..._s2_cloudy_136_p100.tif)\n"
    "  release archives: ROOT/ROIs1970_fall_s1.tar.gz, ROOT/ROIs1970_fall_s2.tar.gz, ... "
    "(.tar.gz, .tgz or .tar, as downloaded from https://dataserv.ub.tum.de/s/m1554803)\n"
    "  flat DSen2-CR:    ROOT/s1/ROIs1158_spring_101_p100.tif, ROOT/s2_cloudFree/<same name>, "
    "ROOT/s2_cloudy/<same name> (optionally listed in ROOT/<list>.csv)"
)

Key = tuple[str, int, int]  # (roi_season, scene, patch)


class PatchFile(NamedTuple):
    """A recognised patch file: its patch, its kind, and whether it is named the flat way."""

    key: Key  # (roi_season, scene, patch)
    kind: str  # "s1", "s2" or "s2_cloudy"
    flat: bool  # True: DSen2-CR flat name (kind from the folder); False: release name


def parse_patch_path(parent: str, name: str) -> PatchFile | str | None:
    """Recognise one file: a :class:`PatchFile`, a reason, or None.

    Args:
        parent: name of the folder holding the file (decides the kind in the flat layout).
        name: the file name.

    Returns:
        The patch; a string saying why a name that looks like a SEN12MS-CR patch
        was not understood; or None for files that are not patches at all.
    """
    m = RELEASE_NAME.match(name)
    if m is not None:
        return PatchFile((m["roi_season"], int(m["scene"]), int(m["patch"])), m["kind"], False)
    m = FLAT_NAME.match(name)
    if m is not None:
        kind = FLAT_DIRS.get(parent.lower())
        if kind is not None:
            return PatchFile((m["roi_season"], int(m["scene"]), int(m["patch"])), kind, True)
        return (
            f"flat-layout name in folder {parent!r}, which is not one of s1, s2_cloudFree, "
            "s2_cloudy: not indexed"
        )
    if name.startswith("ROIs") and name.lower().endswith((".tif", ".tiff")):
        return (
            "name not understood: expected ROIs<id>_<season>_<kind>_<scene>_p<patch>.tif "
            "(release) or ROIs<id>_<season>_<scene>_p<patch>.tif (flat)"
        )
    return None


def build_index(
    root: str | os.PathLike[str],
    split_file: str | os.PathLike[str] | None = None,
    file_list: str | os.PathLike[str] | None = None,
    check: bool = False,
    strict: bool = False,
) -> IndexResult:
    """Find every SEN12MS-CR patch under ``root`` (see the module docstring for the layouts).

    Every patch found is indexed, complete or not (triplets, pairs, lone files); paths are
    relative to ``root`` (or point into an archive under it). When one file is found twice
    (an unpacked copy and a stray one, a folder and an archive member), the file on disk in its
    release or flat folder is kept and the other listed as a duplicate problem.

    Args:
        root: dataset folder (or a single release archive, indexed relative to its folder).
        split_file: a split CSV (:meth:`SplitTable.from_file`); default: the file list's split
            for rows it lists, the official SEN12MS-CR split for the rest.
        file_list: DSen2-CR CSV file list; default: the one ``*.csv`` in ``root`` that reads as
            a file list, when ``root`` holds flat-layout folders.
        check: open every file's header and drop bad files (see :func:`check_rows`).
        strict: raise DataError on the first bad file (with ``check``), on a listed file that
            does not exist, and on an unreadable archive. Files that are merely not understood
            (odd names, duplicates) are listed in ``problems`` either way.

    Returns:
        The index; ``problems`` lists files found but not indexed, and why.

    Raises:
        DatasetNotFoundError: ``root`` is missing, empty or holds no recognisable patch.
        DataError: a split file or file list is malformed; in strict mode, a bad file.
    """
    root_path = Path(root)
    archives: list[str] = []
    if root_path.is_file() and root_path.name.endswith(ARCHIVE_SUFFIXES):
        archives, root_path = [root_path.name], root_path.parent
    elif not root_path.is_dir():
        raise DatasetNotFoundError(root_path, "dataset folder does not exist", LAYOUT_EXAMPLES)
    # Read the split file first: a typo in it should fail before a long walk.
    table = SplitTable.from_file(split_file) if split_file is not None else SplitTable.official()

    found = _Found(str(root_path), strict)
    list_path = _file_list_path(root_path, file_list) if not archives else None
    skip_dirs = found.add_file_list(list_path) if list_path is not None else set()
    if not archives:
        archives = found.add_tree(skip_dirs)
    for archive in archives:
        found.add_archive(archive)
    files = found.resolve()
    if not files:
        p = found.problems
        hint = f"; {len(p)} file(s) not understood, e.g. {p[0].path}: {p[0].reason}" if p else ""
        raise DatasetNotFoundError(
            root_path, f"no SEN12MS-CR patch found{hint}", f"{LAYOUT_EXAMPLES}\n"
        )

    # A split file decides everything; else the file list its rows, the official split the rest.
    list_splits = found.list_splits if split_file is None else {}
    rows = [
        IndexRow(
            *key,
            split=list_splits.get(key) or table.split_of(*key),
            s1=paths.get("s1", ""),
            s2=paths.get("s2", ""),
            s2_cloudy=paths.get("s2_cloudy", ""),
        )  # fmt: skip
        for key, paths in sorted(files.items())
    ]
    split_source = table.source
    result_notes = [] if table.listed is None else _list_match_notes(table, files)
    if list_splits:
        split_source = f"file list {list_path}"
        if len(rows) > len(list_splits):
            split_source += " + official"
    result = IndexResult(
        rows=rows,
        root=root_path,
        problems=found.problems,
        split_source=split_source,
        layout=" + ".join(sorted(found.layouts, key=_layout_order)),
        notes=result_notes,
    )
    if check:
        from cloudfree.data.release.check import check_rows

        check_rows(result, strict=strict, sizes=found.sizes)
    result.problems.sort(key=lambda p: p.path)
    return result


def _list_match_notes(table: SplitTable, files: dict[Key, dict[str, str]]) -> list[str]:
    """What of a per-patch split list (the DSen2-CR authors') matched the patches found."""
    assert table.listed is not None
    listed, found = table.listed, set(files)
    missing = sorted(listed - found)
    extra = sorted(found - listed)
    notes = [
        f"the split list names {len(listed)} patches: {len(listed & found)} found here, "
        f"{len(missing)} not found"
        + (f" (e.g. {', '.join(_key_name(k) for k in missing[:3])})" if missing else "")
    ]
    if extra:
        notes.append(
            f"{len(extra)} patch(es) found here are not in the list (e.g. "
            f"{', '.join(_key_name(k) for k in extra[:3])}): they take their scene's split "
            f"where the list gives the scene one, else {table.default!r}"
        )
    if table.unmatched:
        notes.append(
            f"{len(table.unmatched)} name(s) of the list are not SEN12MS-CR patch names (e.g. "
            f"{', '.join(table.unmatched[:3])}): ignored"
        )
    return notes


def _key_name(key: Key) -> str:
    return f"{key[0]} scene {key[1]} patch {key[2]}"


class _Found:
    """Files found under one root, from any layout, before duplicates are resolved."""

    def __init__(self, top: str, strict: bool) -> None:
        self.top = top
        self.strict = strict
        # Every file found for a (patch, kind), ranked: files on disk before archive members,
        # files in their release (or flat) folder before stray copies, then by path.
        self.candidates: dict[tuple[Key, str], list[tuple[tuple[bool, bool, str], str]]] = {}
        self.problems: list[Problem] = []
        self.sizes: dict[str, int] = {}  # archive members' sizes, for the truncation check
        self.list_splits: dict[Key, str] = {}
        self.layouts: set[str] = set()

    def add(self, key: Key, kind: str, rel: str, layout: str, in_place: bool = True) -> None:
        rank = (layout == "release archives", not in_place, rel)
        self.candidates.setdefault((key, kind), []).append((rank, layout))

    def add_file_list(self, list_path: Path) -> set[str]:
        """Add the files of a DSen2-CR file list; returns the folders it covers."""
        layout = f"flat DSen2-CR (file list {list_path.name})"
        listing: dict[str, set[str] | None] = {}
        folders: set[str] = set()
        for e in read_file_list(list_path):
            key = patch_key(e.name)
            if key is None:
                reason = f"line {e.line} of {list_path}: file name not understood"
                self.problems.append(Problem(e.name, reason))
                continue
            self.list_splits.setdefault(key, e.split)
            for kind in KINDS:
                rel = getattr(e, kind)
                folders.add(posixpath.dirname(rel))
                if _exists(self.top, rel, listing):
                    self.add(key, kind, rel, layout)
                elif self.strict:
                    raise DataError(
                        list_path,
                        f"line {e.line} lists {rel}, which does not exist under {self.top}",
                        "every listed file present; fix the list or pass the right ROOT",
                    )
                else:
                    reason = f"listed on line {e.line} of {list_path} but does not exist"
                    self.problems.append(Problem(rel, reason))
        return folders

    def add_tree(self, skip_dirs: set[str]) -> list[str]:
        """Add the patch files under the root; returns the archives to list."""
        archives: list[str] = []
        for reldir, parent, entry in walk_files(self.top, skip_dirs):
            rel = f"{reldir}/{entry.name}" if reldir else entry.name
            if entry.name.endswith(ARCHIVE_SUFFIXES):
                # An archive beside its unpacked folder is not listed (module docstring).
                if not os.path.isdir(os.path.join(self.top, reldir, archive_stem(entry.name))):
                    archives.append(rel)
                continue
            parsed = parse_patch_path(parent, entry.name)
            if isinstance(parsed, PatchFile):
                in_place = parsed.flat or _in_release_folder(reldir, parsed)
                self.add(parsed.key, parsed.kind, rel, _LAYOUT_OF[parsed.flat], in_place)
            elif parsed is not None:
                self.problems.append(Problem(rel, parsed))
        return archives

    def add_archive(self, rel_archive: str) -> None:
        """Add the patch files inside one archive, listed without unpacking."""
        try:
            for member, size in list_archive(os.path.join(self.top, rel_archive)):
                parent, _, name = member.rpartition("/")
                parsed = parse_patch_path(posixpath.basename(parent), name)
                rel = f"{rel_archive}/{member}"
                if isinstance(parsed, PatchFile):
                    self.sizes[rel] = size
                    in_place = parsed.flat or _in_release_folder(parent, parsed)
                    self.add(parsed.key, parsed.kind, rel, "release archives", in_place)
                elif parsed is not None:
                    self.problems.append(Problem(rel, parsed))
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            # Members listed before the damage stay indexed; check=True tests them.
            if self.strict:
                raise DataError(
                    Path(self.top, rel_archive),
                    f"cannot read archive: {e}",
                    "a complete .tar.gz; download it again",
                ) from e
            self.problems.append(Problem(rel_archive, f"cannot read archive (truncated?): {e}"))

    def resolve(self) -> dict[Key, dict[str, str]]:
        """``{patch: {kind: path}}`` keeping the best-ranked file of each; the rest are problems."""
        files: dict[Key, dict[str, str]] = {}
        for (key, kind), cands in self.candidates.items():
            cands.sort()
            (_, _, rel), layout = cands[0]
            files.setdefault(key, {})[kind] = rel
            self.layouts.add(layout)
            for (_, _, dup), _ in cands[1:]:
                self.problems.append(Problem(dup, f"duplicate of {rel}: not indexed"))
        return files


def _in_release_folder(folder: str, f: PatchFile) -> bool:
    """True if a release-named file sits in its release folder ``ROIs1970_fall_s1/s1_136``."""
    roi_season, scene, _ = f.key
    return folder.split("/")[-2:] == [f"{roi_season}_{f.kind}", f"{f.kind}_{scene}"]


def _layout_order(layout: str) -> int:
    for i, prefix in enumerate(("release folders", "release archives", "flat DSen2-CR")):
        if layout.startswith(prefix):
            return i
    return 3


def _file_list_path(root: Path, file_list: str | os.PathLike[str] | None) -> Path | None:
    """The file list to use: the given one, or the single one in a flat-layout root."""
    if file_list is not None:
        p = Path(file_list)
        if not p.is_file() and (root / p).is_file():
            p = root / p
        if not p.is_file():
            raise DataError(p, "file list does not exist", "a DSen2-CR CSV file list")
        return p
    with os.scandir(root) as it:
        names = [(e.name, e.is_dir()) for e in it if not e.name.startswith(".")]
    if not any(d and n.lower() in FLAT_DIRS for n, d in names):
        return None
    candidates = [root / n for n, d in names if not d and n.lower().endswith(".csv")]
    lists = [p for p in candidates if looks_like_file_list(p)]
    if len(lists) > 1:
        raise DataError(
            root,
            f"several CSV file lists found: {sorted(p.name for p in lists)}",
            "one; choose it with --file-list",
        )
    return lists[0] if lists else None


def _exists(top: str, rel: str, listing: dict[str, set[str] | None]) -> bool:
    """``top/rel`` exists; one ``os.scandir`` per folder instead of one stat per file."""
    folder, name = posixpath.split(rel)
    if folder not in listing:
        try:
            with os.scandir(os.path.join(top, folder)) as it:
                listing[folder] = {e.name for e in it}
        except OSError:
            listing[folder] = None
    names = listing[folder]
    return names is not None and name in names


def walk_files(top: str, skip: set[str]) -> Iterator[tuple[str, str, os.DirEntry[str]]]:
    """Yield ``(relative folder, folder name, entry)`` for every file under ``top``.

    Hidden names (``.git``, temporary ``.part`` files) and the folders in ``skip`` (relative,
    ``/``-separated) are left out. Symlinked folders are followed once each.
    """
    stack = [("", os.path.basename(os.path.abspath(top)))]
    seen: set[tuple[int, int]] = set()
    while stack:
        reldir, dirname = stack.pop()
        try:
            it = os.scandir(os.path.join(top, reldir) if reldir else top)
        except OSError:
            continue  # unreadable folder: nothing to index there
        with it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                rel = f"{reldir}/{entry.name}" if reldir else entry.name
                if entry.is_dir():
                    if rel in skip:
                        continue
                    if entry.is_symlink():
                        st = entry.stat()
                        if (st.st_dev, st.st_ino) in seen:
                            continue
                        seen.add((st.st_dev, st.st_ino))
                    stack.append((rel, entry.name))
                elif entry.is_file():
                    yield reldir, dirname, entry


def archive_stem(name: str) -> str:
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def list_archive(path: str) -> Iterator[tuple[str, int]]:
    """Member names (``./`` stripped, as GDAL's /vsitar/ names them) and sizes of the files."""
    # "r:*" seeks over member data: free for .tar, a sequential decompression for .tar.gz.
    with tarfile.open(path, "r:*") as tf:
        for m in tf:
            if m.isfile():
                name = m.name
                while name.startswith(("./", "/")):
                    name = name[2:] if name.startswith("./") else name[1:]
                yield name, m.size
