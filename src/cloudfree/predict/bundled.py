"""The bundled weights ``predict`` uses when no checkpoint is given.

They are small models trained on the few real scenes of ``../shared/data`` (see
:mod:`cloudfree.weights` and its ``bundled/MODEL_CARD.md``): enough to show the pipeline end to
end, not for real use, which needs weights trained on SEN12MS-CR (``cloudfree train``, or the
converted published ones).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

#: The weights names ``predict`` uses by default, with and without the S1 input: the bundled
#: hybrids, better than the bundled DSen2-CR models of the same recipe on every held-out set
#: (``weights/bundled/MODEL_CARD.md``).
DEFAULT_SAR: Final[str] = "hybrid-sar"
DEFAULT_NOSAR: Final[str] = "hybrid-nosar"


def default_weights_name(include_sar: bool) -> str:
    """The name (:mod:`cloudfree.weights`) of the default bundled model, with or without S1."""
    return DEFAULT_SAR if include_sar else DEFAULT_NOSAR


def bundled_weights(include_sar: bool) -> Path:
    """Path of the default bundled weights, with or without the S1 input.

    Raises:
        DataError: the file is not there (an incomplete installation), naming the path.
    """
    from cloudfree.weights import get_weights

    return get_weights(default_weights_name(include_sar)).path()


def nosar_default(main: str) -> str:
    """The no-SAR model for pixels without S1 when the SAR model is ``main`` (a method name).

    The registry's no-SAR entry of the same recipe (``dsen2cr-sar-carl`` -> ``dsen2cr-nosar-carl``)
    when it is available here; otherwise the bundled default (logged, with how to get the
    matching one).
    """
    import logging

    from cloudfree.errors import DataError
    from cloudfree.weights import get_weights

    try:
        partner = get_weights(main).nosar
    except KeyError:  # a file, a run folder, a baseline: no registry partner
        return DEFAULT_NOSAR
    if partner is None:
        return DEFAULT_NOSAR
    try:
        get_weights(partner).path()
        return partner
    except (KeyError, DataError):
        logging.getLogger(__name__).warning(
            "pixels without S1 use the bundled %s: run 'cloudfree weights fetch %s' to use "
            "the no-SAR model of %s's recipe (or pass --checkpoint-nosar)",
            DEFAULT_NOSAR, partner, main,
        )  # fmt: skip
    return DEFAULT_NOSAR
