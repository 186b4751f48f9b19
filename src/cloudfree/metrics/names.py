"""Names of metric options, importable without numpy (protocols and the CLI name them)."""

from __future__ import annotations

from typing import Final

#: Border handling of :func:`cloudfree.metrics.ssim.ssim_numpy`: "valid" (``tf.image.ssim``:
#: only where the window fits, the paper) or "zero" (zero padding, every pixel averaged:
#: UnCRtainTS / the leaderboard).
SSIM_PADDINGS: Final[tuple[str, ...]] = ("valid", "zero")
