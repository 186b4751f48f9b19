"""Image-quality metrics of DSen2-CR's Table 1, on reflectance (DN / 10000).

- :func:`compute`: one patch, numpy or tensors, float64 -> ``dict[str, float]``.
- :func:`aggregate`: mean over patches, skipping undefined (NaN) values (:class:`NanMean`,
  the running form used by ``evaluate`` and validation).
- :func:`batched_metrics`: torch, any device, per-patch (B,) tensors without host syncs, for
  validation during training.

Keys and definitions: :mod:`cloudfree.metrics.patch`. Importing this package imports numpy
only; torch is imported on first use of the batched names.
"""

from __future__ import annotations

from typing import Any

from cloudfree.metrics.mean import NanMean
from cloudfree.metrics.patch import METRIC_KEYS, aggregate, compute, spectral_angle

_BATCHED = ("batched_metrics", "spectral_angle_torch")


def __getattr__(name: str) -> Any:
    # Lazy: the batched versions need torch, the per-patch ones do not.
    if name in _BATCHED:
        from cloudfree.metrics import batched

        return getattr(batched, name)
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
