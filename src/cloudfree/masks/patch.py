"""The cloud mask of a patch, taken one way by every part of cloudfree.

A patch's mask is the DSen2-CR cloud/shadow mask (spec section 3) of its **raw cloudy DN**, as
the original code computes it: before clipping or scaling, on the whole patch (evaluation,
the mask caches) or on the raw training crop (``SampleConfig(mask="crop")``). Training,
validation, ``evaluate``, the baselines, the hybrid and the viewer all get it from here, or
from a cache filled from here (:class:`~cloudfree.data.release.mask_cache.MaskCache`, the packed
shards' mask slot), so that one patch is split into its cloudy and clear areas alike
everywhere. A whole scene is masked window by window by
:class:`cloudfree.masks.csm_scene.SceneMasker`, which gives the mask of the whole image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Final

import numpy as np

from cloudfree.arrays import as_numpy
from cloudfree.masks.params import DEFAULT_PARAMS, CSMParams

#: Name of the mask algorithm in pack manifests and cache records.
MASK_ALGORITHM: Final[str] = "dsen2cr-csm"
#: Class values of the mask, as stored.
MASK_CLASSES: Final[dict[str, str]] = {"0": "clear", "1": "cloud", "2": "shadow"}
#: Value of a stored mask pixel not computed yet (never a class: a mask store holding it
#: anywhere in a patch's row has no complete mask of that patch).
MASK_NOT_COMPUTED: Final[int] = 255


def mask_record(params: CSMParams | None = None) -> dict[str, Any]:
    """What a stored mask is: ``{"algorithm", "params" (CSMParams as a dict), "classes"}``.

    Args:
        params: the mask constants; None for the published ones.
    """
    p = DEFAULT_PARAMS if params is None else params
    return {
        "algorithm": MASK_ALGORITHM,
        "params": json.loads(json.dumps(asdict(p))),  # tuples -> lists, as read back from JSON
        "classes": dict(MASK_CLASSES),
    }


def finite_dn(s2_dn: np.ndarray) -> np.ndarray:
    """``s2_dn`` with non-finite values (float nodata) as 0 DN; integer input as it is."""
    a = np.asarray(s2_dn)
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    return a


def patch_mask(s2_cloudy_dn: np.ndarray) -> np.ndarray:
    """The DSen2-CR mask of raw cloudy DN, uint8 ``(H, W)`` or ``(B, H, W)``.

    Args:
        s2_cloudy_dn: ``(13, H, W)`` or ``(B, 13, H, W)`` L1C digital numbers as read (uint16
            as released, or float; non-finite values count as 0 DN).

    Returns:
        0 clear, 1 cloud, 2 shadow; each image with its own shadow thresholds (the original).

    Raises:
        DataError: not 13 L1C bands (12-band L2A input gets an explanation).
    """
    from cloudfree.masks.csm import cloud_shadow_mask

    return cloud_shadow_mask(finite_dn(s2_cloudy_dn))


def batch_mask(batch: Mapping[str, Any]) -> np.ndarray:
    """The ``"mask"`` of a batch of samples as numpy uint8 ``(B, H, W)``, 0 clear / 1 cloud /
    2 shadow: the :func:`patch_mask` the dataset took on the raw DN (or its cache).

    Every batch a method sees carries it: evaluation datasets are opened with a mask
    (``SampleConfig(mask="crop")``), and the scene predictor adds the mask of each window. It
    is never recomputed from network values, which are clipped and scaled.

    Raises:
        ValueError: the batch has no ``"mask"``.
    """
    m = batch.get("mask")
    if m is None:
        raise ValueError(
            "the batch has no 'mask': methods take the cloud/shadow mask of the raw cloudy DN "
            "from the batch; open the dataset with SampleConfig(mask='crop') (or 'cached'), or "
            "add batch['mask'] = cloudfree.masks.patch.patch_mask(raw_cloudy_dn)"
        )
    return as_numpy(m).astype(np.uint8, copy=False)
