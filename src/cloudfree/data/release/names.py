"""SEN12MS-CR patch file names: the public release's and the flat DSen2-CR layout's."""

from __future__ import annotations

import posixpath
import re
from typing import Final

#: Release file name: ``ROIs1970_fall_s2_cloudy_136_p100.tif``. ``s2_cloudy`` is tried before
#: ``s2``, and the scene must follow the kind, so ``s2`` can never swallow ``s2_cloudy``.
RELEASE_NAME: Final[re.Pattern[str]] = re.compile(
    r"^(?P<roi_season>ROIs\d+_[A-Za-z]+)_(?P<kind>s2_cloudy|s2|s1)_(?P<scene>\d+)_p(?P<patch>\d+)"
    r"(?i:\.tiff?)$"
)
#: Flat DSen2-CR file name: ``ROIs1158_spring_101_p100.tif`` (the kind is the folder); the ``p``
#: is optional because the paper's first release named patches ``ROIs1158_spring_101_0.tif``.
FLAT_NAME: Final[re.Pattern[str]] = re.compile(
    r"^(?P<roi_season>ROIs\d+_[A-Za-z]+)_(?P<scene>\d+)_p?(?P<patch>\d+)(?i:\.tiff?)$"
)


def patch_key(name: str) -> tuple[str, int, int] | None:
    """``(roi_season, scene, patch)`` of a flat or release file name (any folder in front of it),
    or None if the name is neither."""
    base = posixpath.basename(name)
    m = FLAT_NAME.match(base) or RELEASE_NAME.match(base)
    return None if m is None else (m["roi_season"], int(m["scene"]), int(m["patch"]))
