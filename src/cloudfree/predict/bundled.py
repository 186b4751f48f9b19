"""The demonstration weights shipped with the package, so that ``predict`` works out of the box.

They are small DSen2-CR models trained on the few real scenes of ``../shared/data`` (see
``weights/MODEL_CARD.md``): enough to show the pipeline end to end, not for real use, which
needs weights trained on SEN12MS-CR (``cloudfree train``, or the converted published ones).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from cloudfree.errors import DataError

#: Folder of the bundled weight files and their model card.
BUNDLED_DIR: Final[Path] = Path(__file__).parent / "weights"
#: File names of the two bundled models (with and without the S1 input).
SAR_FILE: Final[str] = "dsen2cr_demo_sar.safetensors"
NOSAR_FILE: Final[str] = "dsen2cr_demo_nosar.safetensors"
MODEL_CARD: Final[str] = "MODEL_CARD.md"


def bundled_weights(include_sar: bool) -> Path:
    """Path of the bundled demonstration weights, with or without the S1 input.

    Args:
        include_sar: True for the optical + SAR model, False for the optical-only one.

    Returns:
        ``BUNDLED_DIR / "dsen2cr_demo_sar.safetensors"`` (or ``..._nosar``).

    Raises:
        DataError: the file is not there (an incomplete installation), naming the path.
    """
    path = BUNDLED_DIR / (SAR_FILE if include_sar else NOSAR_FILE)
    if not path.is_file():
        raise DataError(
            path,
            "bundled demonstration weights are missing from this installation",
            "the file shipped with cloudfree (reinstall the package, or pass --checkpoint "
            "with your own weights / a training run folder)",
        )
    return path
