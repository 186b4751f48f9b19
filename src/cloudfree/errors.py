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
