"""The user's weights cache: downloaded and imported checkpoints, converted to safetensors.

Where: ``$CLOUDFREE_HOME`` if set, else the platform's user cache folder
(``platformdirs.user_cache_dir("cloudfree")``: ``~/.cache/cloudfree`` on Linux,
``~/Library/Caches/cloudfree`` on macOS, ``%LOCALAPPDATA%\\cloudfree\\Cache`` on Windows).

Layout::

    weights/<name>.safetensors   the weights, ready to load (written atomically)
    weights/<name>.json          their record: source, checksums, when, by which version
    downloads/<name>/<filename>  a download in progress (gdown's ``*.part``), until verified

An entry counts as cached only when both its file and its record exist and the file has the
recorded size: the record is written after the file, so an interrupted install is never
mistaken for a complete one, and nothing unverified ever sits under the final name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from cloudfree.home import HOME_ENV, cache_dir  # noqa: F401 (HOME_ENV: where the cache is)

_WEIGHTS: Final[str] = "weights"
_DOWNLOADS: Final[str] = "downloads"


def weights_path(name: str) -> Path:
    """Where the safetensors file of ``name`` lives once cached."""
    return cache_dir() / _WEIGHTS / f"{name}.safetensors"


def record_path(name: str) -> Path:
    """Where the JSON record of ``name`` lives once cached."""
    return cache_dir() / _WEIGHTS / f"{name}.json"


def download_dir(name: str) -> Path:
    """The staging folder of a download of ``name`` (partial files are resumed from here)."""
    return cache_dir() / _DOWNLOADS / name


def read_record(name: str) -> dict[str, Any] | None:
    """The record of a cached entry, or None if it is not (completely) cached."""
    record, path = record_path(name), weights_path(name)
    if not (record.is_file() and path.is_file()):
        return None
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # a damaged record: the entry is fetched / imported again
    if not isinstance(data, dict) or data.get("size_bytes") != path.stat().st_size:
        return None
    return data


def cached_path(name: str) -> Path | None:
    """The safetensors file of ``name`` if it is completely cached, else None."""
    return weights_path(name) if read_record(name) is not None else None


def write_record(name: str, record: dict[str, Any]) -> Path:
    """Write the record of ``name`` atomically (after its weights file is in place)."""
    from cloudfree.io import atomic_path

    path = record_path(name)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def cached_records() -> dict[str, dict[str, Any]]:
    """Every completely cached entry: ``{name: record}``, sorted by name."""
    folder = cache_dir() / _WEIGHTS
    if not folder.is_dir():
        return {}
    out = {}
    for record in sorted(folder.glob("*.json")):
        data = read_record(record.stem)
        if data is not None:
            out[record.stem] = data
    return out


def remove_record(name: str) -> None:
    """Drop the record of ``name`` (it stops counting as cached; its weights file stays)."""
    record_path(name).unlink(missing_ok=True)
