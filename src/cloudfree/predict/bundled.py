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


def nosar_partner(main: str) -> tuple[str | None, bool]:
    """The registry's no-SAR entry of the same recipe as the SAR model ``main`` (a method
    name; ``dsen2cr-sar-carl`` -> ``dsen2cr-nosar-carl``, ``hybrid-sar`` -> ``hybrid-nosar``),
    and whether its weights are here. ``(None, False)`` for a file, a run folder, a baseline
    or an entry without partner."""
    from cloudfree.errors import DataError
    from cloudfree.weights import get_weights

    try:
        partner = get_weights(main).nosar
    except KeyError:  # a file, a run folder, a baseline: no registry partner
        return None, False
    if partner is None:
        return None, False
    try:
        get_weights(partner).path()
    except (KeyError, DataError):
        return partner, False
    return partner, True


def choose_nosar(main: str, checkpoint_nosar: str | None, outside_sar: str | None, why: str) -> str:
    """The no-SAR model for the pixels a SAR model ``main`` cannot predict (no S1 there):
    the one the user named (``--checkpoint-nosar``), else the no-SAR partner of ``main``'s
    recipe (:func:`nosar_partner`), else the bundled :data:`DEFAULT_NOSAR` if the user asked
    for the fallback (``--outside-sar nosar``).

    Args:
        why: where S1 is missing, for the message (e.g. "no --s1 was given").

    Raises:
        CloudfreeError: none of those: which flags choose, never a silent substitute.
    """
    import logging

    from cloudfree.errors import CloudfreeError

    if checkpoint_nosar is not None:
        return checkpoint_nosar
    partner, here = nosar_partner(main)
    if partner is not None and here:
        return partner
    fetch = (
        f" ('cloudfree weights fetch {partner}' gets the no-SAR model of its recipe)"
        if partner is not None
        else ""
    )
    if outside_sar == "nosar":
        logging.getLogger(__name__).warning(
            "%s takes S1 and %s: those pixels are predicted with the bundled %s, as asked by "
            "--outside-sar nosar%s", main, why, DEFAULT_NOSAR, fetch,
        )  # fmt: skip
        return DEFAULT_NOSAR
    raise CloudfreeError(
        f"{main} takes S1, and {why}; no no-SAR model of its recipe is here to predict the "
        f"pixels without S1{fetch}. Say what to do there: --checkpoint-nosar NAME_OR_FILE (a "
        f"no-SAR model), --outside-sar nosar (the bundled {DEFAULT_NOSAR}, a demonstration "
        "model), or --outside-sar input (keep the input there); or give --s1 covering the scene"
    )
