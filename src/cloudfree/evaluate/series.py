"""Evaluation on series (SEN12MS-CR-TS): every method, temporal or one-date, on the same samples
(issue 31, step 4; the command line follows).

Each sample of a :class:`~cloudfree.data.timeseries.dataset.SeriesDataset` (built with a
``masker``) is given to the method as a batch of one: a temporal method reads ``s2_series``,
``masks_series`` and ``dates``; a one-date method reads ``s2_cloudy`` (the least cloudy input),
its ``mask`` and, for SAR methods, its ``s1``. The metrics are those of UnCRtainTS's test
script (:data:`~cloudfree.evaluate.protocols.SEN12MSCR_TS`: RMSE, MAE, PSNR, SAM and the
zero-padded SSIM over the target's 13 bands in reflectance), plus the reproduction and
reconstruction areas against the least cloudy input and its mask; per-sample rows, then the
NaN-aware mean over samples.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from cloudfree.evaluate.protocols import SEN12MSCR_TS, EvalProtocol


def _batch(sample: dict[str, Any]) -> dict[str, Any]:
    return {k: v[None] if isinstance(v, torch.Tensor) else v for k, v in sample.items()}


def evaluate_series(
    dataset: Any,
    method: Any,
    protocol: EvalProtocol = SEN12MSCR_TS,
    items: Iterable[int] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Score ``method`` on the samples ``items`` (all by default) of ``dataset``.

    Returns:
        ``(rows, means)``: one dict per sample (``id``, ``target_t``, ``input_t`` and the
        metric keys of :func:`cloudfree.metrics.patch.compute`), and their NaN-aware means.

    Raises:
        ValueError: a dataset built without a ``masker`` (no masks for the methods), or a
            method of another scaling than the dataset's.
    """
    from cloudfree.bands import get_scaling
    from cloudfree.metrics.patch import METRIC_KEYS, aggregate, compute

    if getattr(dataset, "masker", None) is None:
        raise ValueError("build the SeriesDataset with masker='s2cloudless' (or 'dsen2cr'): "
                         "the methods and the recon/reprod split read the input masks")  # fmt: skip
    scaling = get_scaling(method.scaling)
    if scaling.name != dataset.scaling.name:
        raise ValueError(f"the method works in the {scaling.name!r} scaling, the dataset in "
                         f"{dataset.scaling.name!r}: build the dataset with its scaling")  # fmt: skip
    to_refl = np.float32(scaling.reflectance_per_unit)
    rows = []
    for i in range(len(dataset)) if items is None else items:
        sample = dataset[i]
        batch = _batch(sample)
        pred = method.predict(batch)[0].numpy() * to_refl
        if protocol.clip_prediction:
            pred = np.clip(pred, 0.0, 1.0)
        target = sample["s2"].numpy() * to_refl
        cloudy = sample["s2_cloudy"].numpy() * to_refl
        metrics = compute(pred, target, cloudy, sample["mask"].numpy(),
                          ssim_padding=protocol.ssim_padding)  # fmt: skip
        rows.append({"id": sample["id"], "target_t": sample["target_t"],
                     "input_t": sample["input_t"].tolist(), **metrics})  # fmt: skip
    return rows, aggregate({k: r[k] for k in METRIC_KEYS} for r in rows)
