"""Input checks shared by the models that take cloudy S2 and, optionally, S1 (what a model
reads from a batch is its contract: :mod:`cloudfree.models.contract`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS


def reads_sar(model: Any) -> bool:
    """Whether ``model`` takes S1: its ``config.include_sar`` (a dataclass attribute or a mapping
    key, as weights metadata store it). Every registered model has one; an object without one
    takes S2 only."""
    config = getattr(model, "config", None)
    sar = config.get("include_sar") if isinstance(config, Mapping) else None
    if sar is None:
        sar = getattr(config, "include_sar", False)
    return bool(sar)


def check_optical_sar_inputs(
    s2_cloudy: torch.Tensor, s1: torch.Tensor | None, include_sar: bool, family: str
) -> None:
    """Raise a clear ValueError unless the inputs fit a model of ``family`` (e.g. "dsen2cr").

    Args:
        s2_cloudy: (B, 13, H, W) normalised cloudy Sentinel-2.
        s1: (B, 2, H, W) normalised Sentinel-1, required iff ``include_sar``.
        include_sar: whether the model was built with the SAR input.
        family: registry name of the SAR variant; the no-SAR variant is ``family + "-nosar"``.
    """
    if s2_cloudy.ndim != 4 or s2_cloudy.shape[1] != NUM_S2_BANDS:
        raise ValueError(
            f"s2_cloudy must be (B, {NUM_S2_BANDS}, H, W) normalised cloudy Sentinel-2, "
            f"got shape {tuple(s2_cloudy.shape)}"
        )
    label = {"dsen2cr": "DSen2-CR", "uncrtaints": "UnCRtainTS"}.get(family, family)
    if include_sar:
        if s1 is None:
            raise ValueError(
                f"this {label} model was built with include_sar=True and needs s1 "
                f"(B, {NUM_S1_BANDS}, H, W); pass s1, or use a model without SAR "
                f"('{family}-nosar', include_sar=False)"
            )
        if s1.ndim != 4 or s1.shape[1] != NUM_S1_BANDS:
            raise ValueError(
                f"s1 must be (B, {NUM_S1_BANDS}, H, W) normalised Sentinel-1 (VV, VH), "
                f"got shape {tuple(s1.shape)}"
            )
        if s1.shape[0] != s2_cloudy.shape[0] or s1.shape[2:] != s2_cloudy.shape[2:]:
            raise ValueError(
                f"s1 {tuple(s1.shape)} and s2_cloudy {tuple(s2_cloudy.shape)} must have "
                "the same batch size and the same H, W"
            )
    elif s1 is not None:
        raise ValueError(
            f"this {label} model was built with include_sar=False and takes no s1; "
            f"call it with s2_cloudy only, or use a SAR model ('{family}', include_sar=True)"
        )
