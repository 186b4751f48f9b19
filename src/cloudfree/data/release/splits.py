"""Train / val / test splits of SEN12MS-CR: the official ROI split, or a user's split file.

SEN12MS-CR is split by ROI (scene), never by patch, so that no test scene leaks into training
(spec section 1). The official split below is the one used by the SEN12MS-CR leaderboard
(UnCRtainTS ``data/dataLoader.py``); every scene it does not name is ``train``.

A user's split file is a CSV with a header naming the columns ``roi_season,scene,split`` and
optionally ``patch``::

    roi_season,scene,split,patch
    spring,106,test,
    ROIs1970_fall,136,val,
    ROIs1970_fall,136,test,100

``roi_season`` is the release prefix (``ROIs1970_fall``) or just the season (``fall``). Rows
with a patch number override the row of their scene; scenes the file does not name get the
table's ``default`` split (``train`` unless told otherwise).

The DSen2-CR authors' file list (``Data/datasetfilelist.csv`` of ameraner/dsen2-cr, tab- or
comma-separated, :mod:`cloudfree.data.release.file_list`) is read as a split file too: its names map
onto the release's (roi_season, scene, patch); a scene whose listed patches all share a split
gets that split for its unlisted patches as well (no patch of a test scene can fall into
train), and :attr:`SplitTable.listed` keeps what was listed so that ``cloudfree index``
reports what did not match.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cloudfree.bands import SEASONS, SPLITS
from cloudfree.data.release.file_list import looks_like_file_list, read_file_list
from cloudfree.data.release.names import patch_key
from cloudfree.errors import DataError

#: Official SEN12MS-CR split by season: scenes (ROI numbers) of the test and validation sets
#: (spec section 1, "Commonly used SEN12MS-CR split", from UnCRtainTS ``dataLoader.py``).
OFFICIAL_TEST_SCENES: Final[dict[str, tuple[int, ...]]] = {
    "spring": (106, 123, 140, 31, 44),
    "summer": (119, 73),
    "fall": (139,),
    "winter": (108, 63),
}
OFFICIAL_VAL_SCENES: Final[dict[str, tuple[int, ...]]] = {
    "winter": (22, 107, 130, 84),
    "summer": (19, 80, 127, 17),
    "fall": (65,),
    "spring": (17,),
}

#: The official split keyed by release prefix: ``{("ROIs1158_spring", 106): "test", ...}``.
#: Scenes absent from it are ``train``.
OFFICIAL_SPLIT: Final[dict[tuple[str, int], str]] = {
    **{(SEASONS[s], n): "val" for s, scenes in OFFICIAL_VAL_SCENES.items() for n in scenes},
    **{(SEASONS[s], n): "test" for s, scenes in OFFICIAL_TEST_SCENES.items() for n in scenes},
}

_REQUIRED_COLUMNS: Final[tuple[str, ...]] = ("roi_season", "scene", "split")


def normalize_roi_season(value: str) -> str:
    """``"fall"``, ``"Fall"`` or ``"ROIs1970_fall"`` -> ``"ROIs1970_fall"``.

    Raises:
        ValueError: neither a season name nor the release prefix of one.
    """
    v = value.strip()
    if v.lower() in SEASONS:
        return SEASONS[v.lower()]
    for prefix in SEASONS.values():
        if v.lower() == prefix.lower():
            return prefix
    raise ValueError(
        f"unknown roi_season {value!r}; expected one of {sorted(SEASONS)} "
        f"or {sorted(SEASONS.values())}"
    )


class SplitTable:
    """Which split each scene (or single patch) belongs to.

    Args:
        scenes: ``{(roi_season, scene): split}`` with ``roi_season`` the release prefix.
        patches: ``{(roi_season, scene, patch): split}``; overrides ``scenes``.
        default: split of everything neither mapping names (``"train"``, ``"val"`` or
            ``"test"``).
        source: where the table came from, shown in index summaries (``"official"`` or a path).
        listed: the patches a per-patch file list named (the DSen2-CR authors' list), None for
            a split by scene; unmatched: its file names that name no patch.
    """

    def __init__(
        self,
        scenes: Mapping[tuple[str, int], str],
        patches: Mapping[tuple[str, int, int], str] | None = None,
        default: str = "train",
        source: str = "custom",
        listed: frozenset[tuple[str, int, int]] | None = None,
        unmatched: tuple[str, ...] = (),
    ) -> None:
        for split in (*scenes.values(), *(patches or {}).values(), default):
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        self._scenes = dict(scenes)
        self._patches = dict(patches or {})
        self.default = default
        self.source = source
        self.listed = listed
        self.unmatched = unmatched

    @classmethod
    def official(cls) -> SplitTable:
        """The official SEN12MS-CR ROI split (10 test scenes, 10 val scenes, the rest train)."""
        return cls(OFFICIAL_SPLIT, default="train", source="official")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], default: str = "train") -> SplitTable:
        """Read a split CSV (see the module docstring for its format).

        Args:
            path: the CSV file.
            default: split of the scenes the file does not name.

        Raises:
            DataError: the file is missing, lacks a column, or a line is malformed (bad
                season, non-integer scene/patch, unknown split, or contradicts an earlier line);
                the message names the file and the line.
        """
        path = Path(path)
        if default not in SPLITS:
            raise ValueError(f"unknown default split {default!r}; expected one of {SPLITS}")
        if path.is_file() and looks_like_file_list(path):
            return cls.from_file_list(path, default)
        if not path.is_file():
            raise DataError(
                path,
                "split file does not exist",
                "a CSV with the header roi_season,scene,split[,patch]",
            )
        scenes: dict[tuple[str, int], str] = {}
        patches: dict[tuple[str, int, int], str] = {}
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, skipinitialspace=True)
            columns = [c.strip() for c in reader.fieldnames or []]
            reader.fieldnames = columns
            missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise DataError(
                    path,
                    f"missing column(s) {missing} in the header {columns}",
                    "a first line naming the columns roi_season,scene,split and optionally patch",
                )
            for rec in reader:
                line = reader.line_num
                values = {k: (v or "").strip() for k, v in rec.items() if k is not None}
                if not any(values.values()) or values["roi_season"].startswith("#"):
                    continue  # blank or comment line
                key, split = _parse_split_row(path, line, values)
                table: dict = patches if len(key) == 3 else scenes
                if table.get(key, split) != split:
                    raise DataError(
                        path,
                        f"line {line} puts {_describe(key)} in {split!r} but an earlier line "
                        f"put it in {table[key]!r}",
                        "one split per scene (and per patch)",
                    )
                table[key] = split
        return cls(scenes, patches, default=default, source=str(path))

    @classmethod
    def from_file_list(cls, path: str | os.PathLike[str], default: str = "train") -> SplitTable:
        """The split of the DSen2-CR authors' file list (see the module docstring).

        Raises:
            DataError: the file is missing or a line is malformed (the message names it), or
                one patch is listed in two splits.
        """
        path = Path(path)
        patches: dict[tuple[str, int, int], str] = {}
        unmatched: list[str] = []
        for e in read_file_list(path):
            key = patch_key(e.name)
            if key is None:
                unmatched.append(e.name)
                continue
            if patches.get(key, e.split) != e.split:
                raise DataError(
                    path,
                    f"line {e.line} puts {_describe(key)} in {e.split!r} but an earlier line "
                    f"put it in {patches[key]!r}",
                    "one split per patch",
                )
            patches[key] = e.split
        by_scene: dict[tuple[str, int], set[str]] = {}
        for (roi, scene, _), split in patches.items():
            by_scene.setdefault((roi, scene), set()).add(split)
        scenes = {k: next(iter(v)) for k, v in by_scene.items() if len(v) == 1}
        return cls(scenes, patches, default=default, source=f"DSen2-CR file list {path}",
                   listed=frozenset(patches), unmatched=tuple(unmatched))  # fmt: skip

    def split_of(self, roi_season: str, scene: int, patch: int | None = None) -> str:
        """The split of one patch (``"train"``, ``"val"`` or ``"test"``).

        Args:
            roi_season: release prefix, ``"ROIs1970_fall"``.
            scene: ROI number within it.
            patch: patch number, or None to ask about the whole scene.
        """
        if patch is not None:
            hit = self._patches.get((roi_season, scene, patch))
            if hit is not None:
                return hit
        return self._scenes.get((roi_season, scene), self.default)

    def __repr__(self) -> str:
        return (
            f"SplitTable(source={self.source!r}, {len(self._scenes)} scenes, "
            f"{len(self._patches)} patches, default={self.default!r})"
        )


def _describe(key: tuple) -> str:
    return f"{key[0]} scene {key[1]}" + (f" patch {key[2]}" if len(key) == 3 else "")


def _parse_split_row(
    path: Path, line: int, values: Mapping[str, str]
) -> tuple[tuple[str, int] | tuple[str, int, int], str]:
    """One data line of a split file -> (key, split); DataError naming the line otherwise."""
    expected = "roi_season as 'fall' or 'ROIs1970_fall', integer scene and patch, split in " + (
        "/".join(SPLITS)
    )
    try:
        roi_season = normalize_roi_season(values["roi_season"])
    except ValueError as e:
        raise DataError(path, f"line {line}: {e}", expected) from None
    try:
        scene = int(values["scene"])
        patch_text = values.get("patch", "")
        patch = int(patch_text) if patch_text else None
    except ValueError:
        raise DataError(
            path,
            f"line {line}: scene {values['scene']!r} / patch {values.get('patch', '')!r} "
            "is not an integer",
            expected,
        ) from None
    split = values["split"].lower()
    if split not in SPLITS:
        raise DataError(path, f"line {line}: unknown split {values['split']!r}", expected)
    if patch is None:
        return (roi_season, scene), split
    return (roi_season, scene, patch), split
