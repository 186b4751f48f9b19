"""Image-quality metrics of DSen2-CR's Table 1, on reflectance (DN / 10000).

- :func:`compute`: one patch, numpy or tensors, float64 -> ``dict[str, float]``.
- :func:`aggregate`: mean over patches, skipping undefined (NaN) values (:class:`NanMean`,
  the running form used by ``evaluate`` and validation).
- :func:`batched_metrics`: torch, any device, per-patch (B,) tensors without host syncs, for
  validation during training.

Keys and definitions: :mod:`cloudfree.metrics.patch`. Importing this package imports nothing
heavy; numpy comes with the per-patch names, torch with the batched ones.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudfree.metrics.batched import batched_metrics, spectral_angle_torch
    from cloudfree.metrics.mean import NanMean
    from cloudfree.metrics.patch import METRIC_KEYS, aggregate, compute, spectral_angle

#: Public names and their modules, imported on first use: the per-patch metrics need numpy,
#: the batched ones torch, and the names (:mod:`cloudfree.metrics.names`) neither.
_LAZY: dict[str, str] = {
    "METRIC_KEYS": "cloudfree.metrics.patch",
    "aggregate": "cloudfree.metrics.patch",
    "compute": "cloudfree.metrics.patch",
    "spectral_angle": "cloudfree.metrics.patch",
    "NanMean": "cloudfree.metrics.mean",
    "batched_metrics": "cloudfree.metrics.batched",
    "spectral_angle_torch": "cloudfree.metrics.batched",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "METRIC_KEYS",
    "NanMean",
    "aggregate",
    "batched_metrics",
    "compute",
    "spectral_angle",
    "spectral_angle_torch",
]
