"""cloudfree: cloud removal for Sentinel-2 with Sentinel-1 SAR fusion (DSen2-CR and beyond).

Nothing happens at import time: submodules are imported where they are used.
"""

from typing import Any

__version__ = "0.1.0"

#: Entry points importable from the top level, loaded on first use (``cloudfree.predict_array``).
_LAZY = {
    "predict_array": "cloudfree.predict.arrays",
    "predict_dataarray": "cloudfree.predict.arrays",
    "predict_scene": "cloudfree.predict.scene",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cloudfree' has no attribute {name!r}")
