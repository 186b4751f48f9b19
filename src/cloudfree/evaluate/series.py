"""Evaluation on series (SEN12MS-CR-TS): every method, temporal or one-date, on the same samples
(issue 31, step 4; the command line follows).

Each sample of a :class:`~cloudfree.data.timeseries.dataset.SeriesDataset` (built with a
``masker``) is given to the method as a batch of one: a temporal method reads ``s2_series``,
``masks_series`` and ``dates``; a one-date method reads ``s2_cloudy`` (the least cloudy input),
its ``mask`` and, for SAR methods, its ``s1``. The metrics are those of UnCRtainTS's test
script (:data:`~cloudfree.evaluate.protocols.SEN12MSCR_TS`: RMSE, MAE, PSNR, SAM and the
zero-padded SSIM over the target's 13 bands in reflectance), plus the reproduction and
reconstruction areas against the least cloudy input and its mask; per-sample rows, then the
NaN-aware mean over samples. :func:`evaluate_series_dir` is ``cloudfree evaluate --data
INDEX.csv`` on a SEN12MS-CR-TS index.
"""

from __future__ import annotations

import os
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
        metric keys of :func:`cloudfree.metrics.patch.compute`; for a method that
        ``predicts_variance`` also the columns of :data:`cloudfree.evaluate.calibration.
        UNCERTAINTY_COLUMNS`), and the NaN-aware means of the metrics.

    Raises:
        ValueError: a dataset built without a ``masker`` (no masks for the methods), or a
            method of another scaling than the dataset's.
    """
    from cloudfree.bands import get_scaling
    from cloudfree.evaluate.calibration import patch_uncertainty
    from cloudfree.metrics.patch import METRIC_KEYS, aggregate, compute

    if getattr(dataset, "masker", None) is None:
        raise ValueError("build the SeriesDataset with masker='s2cloudless' (or 'dsen2cr'): "
                         "the methods and the recon/reprod split read the input masks")  # fmt: skip
    scaling = get_scaling(method.scaling)
    if scaling.name != dataset.scaling.name:
        raise ValueError(f"the method works in the {scaling.name!r} scaling, the dataset in "
                         f"{dataset.scaling.name!r}: build the dataset with its scaling")  # fmt: skip
    to_refl = np.float32(scaling.reflectance_per_unit)
    uncertain = bool(getattr(method, "predicts_variance", False))
    rows = []
    for i in range(len(dataset)) if items is None else items:
        sample = dataset[i]
        batch = _batch(sample)
        var = None
        if uncertain:
            mean, v = method.predict_variance(batch)
            pred = mean[0].numpy() * to_refl
            var = v[0].numpy().astype(np.float64) * float(to_refl) ** 2
        else:
            pred = method.predict(batch)[0].numpy() * to_refl
        if protocol.clip_prediction:
            pred = np.clip(pred, 0.0, 1.0)
        target = sample["s2"].numpy() * to_refl
        cloudy = sample["s2_cloudy"].numpy() * to_refl
        metrics = compute(pred, target, cloudy, sample["mask"].numpy(),
                          ssim_padding=protocol.ssim_padding)  # fmt: skip
        if var is not None:
            metrics.update(patch_uncertainty(pred.astype(np.float64),
                                             target.astype(np.float64), var))  # fmt: skip
        rows.append({"id": sample["id"], "target_t": sample["target_t"],
                     "input_t": sample["input_t"].tolist(), **metrics})  # fmt: skip
    return rows, aggregate({k: r[k] for k in METRIC_KEYS} for r in rows)


#: Files an evaluation on series writes (all staged and renamed together).
SERIES_FILES = ("per_patch.csv", "summary.json", "table.md")


def evaluate_series_dir(
    method: Any,
    index: str | os.PathLike[str],
    out: str | os.PathLike[str],
    split: str = "test",
    input_t: int = 3,
    coverage: str = "s2cloudless",
    samples: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    device: str = "auto",
    backend: str = "auto",
    upstream_quirk: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """``cloudfree evaluate`` on a SEN12MS-CR-TS index (or a pack of one,
    :mod:`cloudfree.data.timeseries.pack`): ``method`` (temporal or one-date) on
    the ``fixed`` samples of ``split``, scored by :func:`evaluate_series`; writes
    ``per_patch.csv`` (one row per sample: ``id``, ``target_t``, ``input_t`` and the metrics),
    ``summary.json`` and ``table.md`` (with the benchmark's published rows) into ``out``.

    Args:
        method: a method spec (:func:`~cloudfree.methods.load.load_method`, loaded for series)
            or a method already loaded so.
        coverage: the cloud masker of the coverage that picks the dates and of the masks given
            to the methods (``"s2cloudless"`` as upstream, or ``"dsen2cr"``); computed once and
            cached beside the index (``<index>.coverage-<masker>.csv``).
        samples: the authors' pre-computed sample file (``generic_3_test_all_s2cloudless_mask
            .npy``): its coverages choose the dates, as upstream's ``--precomputed``.
        upstream_quirk: the ``fixed`` sampler exactly as upstream, target possibly among the
            inputs (:mod:`cloudfree.data.timeseries.sampling`).

    Returns:
        The summary written to ``summary.json``.
    """
    import contextlib
    import csv
    import datetime as dt
    import json
    import math

    from tqdm.auto import tqdm

    from cloudfree import __version__
    from cloudfree.data.source import series_kind
    from cloudfree.data.timeseries.coverage import (
        COVERAGE_MASKERS,
        compute_coverage,
        coverage_cache_path,
    )
    from cloudfree.data.timeseries.dataset import SeriesDataset
    from cloudfree.data.timeseries.index import read_ts_index, ts_index_root
    from cloudfree.data.timeseries.pack import PackedSeries
    from cloudfree.evaluate.calibration import UNCERTAINTY_COLUMNS
    from cloudfree.evaluate.run import _json_safe, _model_info, _uncertainty_summary
    from cloudfree.io import atomic_path
    from cloudfree.methods.load import load_method
    from cloudfree.metrics.patch import METRIC_KEYS
    from cloudfree.outputs import check_output_dir, created_folder

    if coverage not in COVERAGE_MASKERS:
        raise ValueError(f"--coverage must be one of {COVERAGE_MASKERS}, got {coverage!r}")
    spec = method if isinstance(method, str | os.PathLike) else None
    out = check_output_dir(out, "--out", [index, spec], writes=SERIES_FILES)
    packed = PackedSeries(index) if series_kind(index) == "packed" else None
    rows = packed.rows if packed is not None else read_ts_index(index)
    root = packed.root if packed is not None else ts_index_root(index)
    m = method if spec is None else load_method(str(spec), device, backend=backend, series=True)
    in_split = [r for r in rows if split == "all" or r["split"] == split]
    if not in_split:
        raise ValueError(f"{index} has no patch of the {split!r} split")
    if samples is not None:
        from cloudfree.data.timeseries.samples import read_sample_file

        cov = read_sample_file(samples).coverage_of(in_split)
    elif packed is not None:
        cov = packed.coverage(coverage, progress=progress)
    else:
        cov = compute_coverage(root, [r["s2"] for r in in_split if r["s2"]],
                               coverage_cache_path(index, coverage), coverage, progress=progress)  # fmt: skip
    ds = SeriesDataset(root, in_split, cov, split=split, n_input=input_t,
                       include_sar=bool(m.include_sar), scaling=m.scaling, masker=coverage,
                       upstream_quirk=upstream_quirk,
                       reader=None if packed is None else packed.read)  # fmt: skip
    if len(ds) == 0:
        raise ValueError(
            f"no complete series in the {split!r} split of {index} ({ds.left_out} patches lack "
            "a date"
            + (" of S1: evaluate a method without SAR, or " if m.include_sar else "; ")
            + "check the copy with 'cloudfree index ROOT --out ts.csv --check')"
        )
    items = range(len(ds) if limit is None else min(limit, len(ds)))
    rows_out, means = evaluate_series(
        ds, m, SEN12MSCR_TS, tqdm(items, desc="series", unit="sample", disable=not progress)
    )
    uncertain = bool(getattr(m, "predicts_variance", False))
    keys = METRIC_KEYS + (UNCERTAINTY_COLUMNS if uncertain else ())
    unc = None
    if uncertain:
        unc = _uncertainty_summary({k: [r[k] for r in rows_out] for k in UNCERTAINTY_COLUMNS})
    summary: dict[str, Any] = {
        "method": m.name,
        "protocol": SEN12MSCR_TS.name,
        "split": split,
        "metrics": means,
        "count": len(rows_out),
        "left_out": {"incomplete series": ds.left_out} if ds.left_out else {},
        "input_t": input_t,
        "sampler": "fixed" + (" (upstream quirk)" if upstream_quirk else ""),
        "coverage": str(samples) if samples is not None else coverage,
        "temporal": bool(getattr(m, "temporal", False)),
        "table_psnr": SEN12MSCR_TS.psnr_key,
        "columns": SEN12MSCR_TS.columns(),
        "data": str(index),
        **_model_info(m),
        **({"uncertainty": unc} if unc is not None else {}),
        "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cloudfree_version": __version__,
    }
    with created_folder(out), contextlib.ExitStack() as staged:
        path = staged.enter_context(atomic_path(out / "per_patch.csv"))
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "target_t", "input_t", *keys])
            for r in rows_out:
                vals = ["" if math.isnan(r[k]) else f"{r[k]:.6g}" for k in keys]
                w.writerow([r["id"], r["target_t"], " ".join(map(str, r["input_t"])), *vals])
        staged.enter_context(atomic_path(out / "summary.json")).write_text(
            json.dumps(_json_safe(summary), indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        staged.enter_context(atomic_path(out / "table.md")).write_text(
            _series_table(summary), encoding="utf-8"
        )
        staged.close()
    return summary


def _series_table(summary: dict[str, Any]) -> str:
    """``table.md`` of a series evaluation: its row, then the benchmark's published rows."""
    from cloudfree.evaluate.table import PUBLISHED, format_table, patch_counts, table_values

    rows = [(str(summary["method"]), table_values(summary["metrics"], "psnr"))]
    refs = [(n, r) for n, r in PUBLISHED.items() if r["protocol"] == SEN12MSCR_TS.name]
    rows += [(f"(published) {n}", r["values"]) for n, r in refs]
    what = "temporal" if summary["temporal"] else "one-date (the least cloudy input)"
    return "\n".join([
        f"# {summary['method']} on {summary['data']} (split {summary['split']})",
        "",
        f"Protocol `{SEN12MSCR_TS.name}`: {SEN12MSCR_TS.description}.",
        f"Comparable with: {SEN12MSCR_TS.comparable_with}.",
        f"{summary['input_t']} input dates per sample ({summary['sampler']} sampler, coverage "
        f"{summary['coverage']}); a {what} method.",
        patch_counts(summary).replace("patches", "samples", 1) + ".",
        "",
        format_table(rows).rstrip(),
        "",
        f"Published rows: {refs[0][1]['source']}; {refs[0][1]['note']}." if refs else "",
        *_calibration_lines(summary.get("uncertainty")),
    ]) + "\n"  # fmt: skip


def _calibration_lines(unc: dict[str, Any] | None) -> list[str]:
    """The calibration of a model's variances in ``table.md`` (as the SEN12MS-CR report's)."""
    if not unc:
        return []
    return [
        "", "## Uncertainty calibration", "",
        "| UCE | AUCE | RMS predicted std | samples |", "|---|---|---|---|",
        f"| {unc['uce']:.4f} | {unc['auce']:.4f} | {unc['rms_std']:.4f} | {unc['patches']} |",
        "", "Reflectance; UCE / AUCE as UnCRtainTS computes them (cloudfree.evaluate."
        "calibration). 0 is perfect calibration.",
    ]  # fmt: skip
