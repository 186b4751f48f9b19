"""Typed errors whose messages say what was expected and how to fix it."""

from __future__ import annotations

import os


class CloudfreeError(Exception):
    """Base class of every error cloudfree raises on purpose."""


class DataError(CloudfreeError, ValueError):
    """A data file or folder is missing, unreadable or not what was expected.

    Args:
        path: the offending file or folder (named first in the message).
        problem: what is wrong.
        expected: what was expected instead, and how to fix it, if known.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None, problem: str, expected: str | None = None
    ) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        self.expected = expected
        msg = problem if self.path is None else f"{self.path}: {problem}"
        if expected:
            msg += f" (expected {expected})"
        super().__init__(msg)


class DatasetNotFoundError(DataError):
    """No usable patches were found under a root folder."""


class UnknownNameError(CloudfreeError, ValueError):
    """A name (a method, a weights entry) that cloudfree does not know; the message suggests
    the closest known names."""


def read_text_file(path: str | os.PathLike[str], expected: str) -> str:
    """The text of a file cloudfree reads (a CSV, a YAML config, a JSON sidecar): UTF-8, a
    byte-order mark (as spreadsheets save CSV) skipped.

    Raises:
        DataError: the file is not text (a binary file given by mistake), naming it and
            ``expected``; OSError as usual for a missing or unreadable file.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise DataError(
            path, f"is not a text file (byte {e.start} is not UTF-8 text)", expected
        ) from None


def read_json_file(path: str | os.PathLike[str], expected: str) -> object:
    """The JSON value of a file (:func:`read_text_file`).

    Raises:
        DataError: not text, or damaged JSON (where it breaks), naming the file and
            ``expected``.
    """
    import json

    text = read_text_file(path, expected)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            path,
            f"is damaged: not valid JSON ({e.msg}, line {e.lineno} column {e.colno})",
            expected,
        ) from None


def root_reason(e: BaseException) -> str:
    """The message of ``e`` or, where it only points back ("Read failed. See previous
    exception for details", as rasterio wraps GDAL's errors), of the exception it was raised
    from: the reason a user can act on."""
    seen: BaseException | None = e
    text = str(e)
    while seen is not None and "See previous exception" in str(seen):
        seen = seen.__cause__ or seen.__context__
        if seen is not None:
            text = str(seen)
    return text
