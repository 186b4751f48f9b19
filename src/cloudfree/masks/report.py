"""What a mask says about a scene: class fractions, and the warnings every command prints.

A scene that is almost all clear has nothing to remove, and a scene that is almost all cloud
cannot be made clear from one image: the pixels under cloud are then predicted from S1 and
the few clear pixels at best, a guess. ``cloudfree mask``, ``predict`` and ``inpaint`` say so
(a warning, and a line in the summary) instead of returning such a scene without a word.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from cloudfree.masks.params import CLEAR, CLOUD, SHADOW

#: Below this fraction of cloud or shadow (of the pixels with data) a scene is clear.
NOTHING_TO_REMOVE: Final[float] = 0.01
#: From this fraction of cloud (of the pixels with data) a scene is cloud-covered.
MOSTLY_CLOUD: Final[float] = 0.9
#: Index of the nodata pixels in the counts of :func:`mask_fractions` (after the 3 classes).
NODATA: Final[int] = 3


def class_counts(mask: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """``[clear, cloud, shadow, nodata]`` pixel counts of a window's mask (int64 (4,)): the
    classes among the pixels with data, then the pixels without (``holes``, (h, w) bool)."""
    counts = np.zeros(4, dtype=np.int64)
    counts[:3] = np.bincount(mask[~holes], minlength=3)[:3]
    counts[NODATA] = int(holes.sum())
    return counts


def mask_fractions(counts: np.ndarray) -> dict[str, Any]:
    """Class fractions of a mask from its pixel counts ``[clear, cloud, shadow, nodata]``.

    The classes are fractions of the pixels with data (NaN if there is none): a pixel that
    holds no data (:func:`cloudfree.units.nodata_pixels`) is none of clear, cloud or shadow,
    whatever class the mask file gives it.

    Returns:
        ``cloud_fraction``, ``shadow_fraction``, ``clear_fraction`` (of the valid pixels),
        ``nodata_fraction`` (of all pixels), ``num_pixels``, ``valid_pixels``.
    """
    n, valid = int(counts.sum()), int(counts[:3].sum())

    def frac(k: int) -> float:
        return float(counts[k]) / valid if valid else float("nan")

    return {
        "cloud_fraction": frac(CLOUD),
        "shadow_fraction": frac(SHADOW),
        "clear_fraction": frac(CLEAR),
        "nodata_fraction": float(counts[NODATA]) / n if n else float("nan"),
        "num_pixels": n,
        "valid_pixels": valid,
    }


def describe_fractions(stats: Mapping[str, Any]) -> str:
    """``"cloud 12.00 %, shadow 1.00 %, clear 87.00 % of the valid pixels (nodata 5.00 %)"``,
    or that no pixel holds data."""
    if not stats["valid_pixels"]:
        return "no pixel holds data (every pixel is nodata): the mask says nothing"
    text = (
        f"cloud {100 * stats['cloud_fraction']:.2f} %, "
        f"shadow {100 * stats['shadow_fraction']:.2f} %, "
        f"clear {100 * stats['clear_fraction']:.2f} %"
    )
    if stats["nodata_fraction"]:
        text += f" of the pixels with data; nodata {100 * stats['nodata_fraction']:.2f} %"
    return text


def mask_warnings(stats: Mapping[str, Any], changed: float | None = None) -> list[str]:
    """The warnings a mask calls for (empty for an ordinary scene).

    Args:
        stats: :func:`mask_fractions`.
        changed: fraction of the pixels with data whose values a command changed, if it
            changed any (``predict``, ``inpaint``); None for ``cloudfree mask``.

    Returns:
        ``"nothing to remove: ..."`` for a clear scene (cloud + shadow under
        :data:`NOTHING_TO_REMOVE`), ``"... under cloud: the result there is a guess ..."``
        for a cloud-covered one (cloud from :data:`MOSTLY_CLOUD`).
    """
    if not stats.get("valid_pixels"):
        return []
    out = []
    masked = stats["cloud_fraction"] + stats["shadow_fraction"]
    if masked < NOTHING_TO_REMOVE:
        text = f"nothing to remove: {100 * masked:.2f} % of the scene is cloud or shadow"
        if changed is not None:
            text += f"; {100 * changed:.2f} % of its pixels were changed"
        out.append(text)
    if stats["cloud_fraction"] >= MOSTLY_CLOUD:
        out.append(
            f"{100 * stats['cloud_fraction']:.1f} % of the scene is under cloud: the result "
            "there is a guess (from S1 and the few clear pixels at best); use several dates"
        )
    return out
