"""The cloudfree user folder: downloaded weights, converted models, tiling plans.

``$CLOUDFREE_HOME`` if set, else the platform's user cache folder
(``platformdirs.user_cache_dir("cloudfree")``: ``~/.cache/cloudfree`` on Linux,
``~/Library/Caches/cloudfree`` on macOS, ``%LOCALAPPDATA%\\cloudfree\\Cache`` on Windows).
The weights cache (:mod:`cloudfree.weights.cache`), the OpenVINO IR cache
(:mod:`cloudfree.models.openvino`) and the tile-size plans (:mod:`cloudfree.predict.plan`)
live under it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

#: Environment variable overriding the folder.
HOME_ENV: Final[str] = "CLOUDFREE_HOME"


def cache_dir() -> Path:
    """The folder's root (not created)."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("cloudfree", appauthor=False))
