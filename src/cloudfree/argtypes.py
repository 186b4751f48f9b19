"""Argument types of the command line: numbers checked when the arguments are parsed, so that
a negative ``--workers`` or a ``--b10 nan`` is a usage error (exit 2, naming the flag) before
any work, not a failure deep inside (or a result computed with it).

Standard library only (every subcommand's parser imports it).
"""

from __future__ import annotations

import argparse
import math


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} must be {low} or more")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, sizes, limits)."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (worker processes: 0 works in the process itself; overlaps)."""
    return _int_at_least(text, 0)


def dn_value(text: str) -> float:
    """A Sentinel-2 digital number: finite and >= 0 (reflectance x 10000)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text} is not a digital number (finite, >= 0; reflectance x 10000, e.g. 10)"
        )
    return value
