"""Named weights (:mod:`cloudfree.weights.registry`): every checkpoint cloudfree knows, by name.

``--checkpoint NAME`` works wherever a checkpoint is accepted; ``list_weights()`` shows the table.
"""

from cloudfree.weights.registry import (
    BUNDLED_DIR,
    MODEL_CARD,
    WEIGHTS,
    WeightsEntry,
    find_weights,
    get_weights,
    list_weights,
)

__all__ = [
    "BUNDLED_DIR",
    "MODEL_CARD",
    "WEIGHTS",
    "WeightsEntry",
    "find_weights",
    "get_weights",
    "list_weights",
]
