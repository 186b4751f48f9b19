"""The best, median and worst patches of an evaluation, chosen without keeping predictions.

After the streaming pass of :func:`cloudfree.evaluate.run.evaluate` (issue 5, "streams"),
:func:`select_examples` ranks the patches of ``per_patch.csv`` by one metric (:data:`RANK_KEY`,
MAE over the whole patch; lower is better, higher for PSNR/SSIM) and picks the ``k`` best, the
``k`` around the median and the ``k`` worst (fewer when the set is small; no patch twice; NaN
values are not ranked). :func:`write_examples` then re-loads just those samples from the dataset
and re-runs the method on them, one at a time (a second, small pass), and writes
``examples.png`` (rows: cloudy input | SAR (when the samples carry S1) | prediction | target |
cloud/shadow mask | error map) and ``examples.csv`` (which patch each row shows). The ranking
holds one float per patch (8 bytes), no image.
"""

from __future__ import annotations

import array
import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.arrays import as_numpy
from cloudfree.bands import S2_DN_PER_REFLECTANCE, get_scaling
from cloudfree.data.preprocess import denormalize_s1
from cloudfree.errors import DataError
from cloudfree.evaluate.protocols import EvalProtocol, centre_window
from cloudfree.io import atomic_path
from cloudfree.masks.patch import batch_mask

#: Metric that ranks the example patches: MAE over the whole patch (reflectance).
RANK_KEY: Final[str] = "mae"
#: Metrics where a higher value is better (ranked in descending order).
HIGHER_IS_BETTER: Final[frozenset[str]] = frozenset({"psnr", "ssim"})
#: Patches per example group.
EXAMPLES_PER_GROUP: Final[int] = 3


#: Titles of the image columns of ``examples.png`` (the SAR column only with S1).
COLUMN_TITLES: Final[tuple[str, ...]] = ("INPUT", "SAR", "PRED", "TARGET", "MASK", "ERROR")
EXAMPLES_CSV_COLUMNS: Final[tuple[str, ...]] = (
    "group", "rank", "id", "key", "value", "cloud_fraction", "sar",
)  # fmt: skip


#: Decimals of a metric value: as the Table-1 columns (MAE/RMSE 4, PSNR/SAM 2, SSIM 3).
_DECIMALS: Final[dict[str, int]] = {"psnr": 2, "sam": 2, "sam_reprod": 2, "sam_recon": 2, "ssim": 3}


@dataclass(frozen=True)
class Example:
    """One picked patch.

    Attributes:
        group: ``"best"``, ``"median"`` or ``"worst"``.
        rank: 1-based place in its group (best 1 is the best patch, worst 1 the worst; the
            median group runs from better to worse).
        position: 0-based row of ``per_patch.csv``.
        id: the patch id.
        key: the ranking metric; ``value`` its per-patch value; ``cloud_fraction`` in [0, 1].
    """

    group: str
    rank: int
    position: int
    id: str
    key: str
    value: float
    cloud_fraction: float


def format_value(key: str, value: float) -> str:
    """A metric value as the table prints it (4 decimals; PSNR/SAM 2; SSIM 3), NaN as n/a."""
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{_DECIMALS.get(key, 4)}f}"


def read_columns(csv_path: str | os.PathLike[str], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Numeric columns of ``per_patch.csv``, streamed: ``{key: float64 (N,)}``, "" read as NaN.

    Raises:
        DataError: the file is missing, lacks a column or holds a value that is not a number.
    """
    path = Path(csv_path)
    expected = "per_patch.csv written by 'cloudfree evaluate' with columns " + ", ".join(keys)
    if not path.is_file():
        raise DataError(path, "does not exist", expected)
    cols = {k: array.array("d") for k in keys}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [k for k in keys if k not in (reader.fieldnames or ())]
        if missing:
            raise DataError(path, f"has no column {', '.join(missing)}", expected)
        for line, row in enumerate(reader, start=2):
            for k in keys:
                try:
                    cols[k].append(float(row[k]) if row[k] else math.nan)
                except (TypeError, ValueError):
                    raise DataError(
                        path, f"line {line}: {k}={row[k]!r} is not a number", expected
                    ) from None
    return {
        k: np.frombuffer(v, dtype=np.float64) if len(v) else np.zeros(0) for k, v in cols.items()
    }


def select_examples(
    values: np.ndarray, k: int = EXAMPLES_PER_GROUP, higher_is_better: bool = False
) -> list[tuple[str, int, int]]:
    """Pick the best, median and worst patches of one metric.

    Patches with a NaN value are not ranked; ties keep the file order. With ``n`` ranked
    patches: best = the first ``min(k, n)``, worst = the last ``min(k, n - best)``, median = up
    to ``k`` of the rest, centred on the median position ``(n - 1) // 2``. No patch is picked
    twice, so fewer than ``3 k`` come back when ``n < 3 k``.

    Args:
        values: (N,) per-patch values, in ``per_patch.csv`` order.
        k: patches per group, >= 1.
        higher_is_better: rank in descending order (PSNR, SSIM).

    Returns:
        ``[(group, rank, position)]``: best 1..k (best first), median (better to worse),
        worst 1..k (worst first).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    values = np.asarray(values, dtype=np.float64)
    ok = np.flatnonzero(~np.isnan(values))
    ranked = ok[np.argsort(-values[ok] if higher_is_better else values[ok], kind="stable")]
    n = len(ranked)
    kb = min(k, n)
    kw = min(k, n - kb)
    km = min(k, n - kb - kw)
    start = min(max((n - 1) // 2 - km // 2, kb), n - kw - km)
    picks = [("best", i + 1, int(p)) for i, p in enumerate(ranked[:kb])]
    picks += [("median", i + 1, int(p)) for i, p in enumerate(ranked[start : start + km])]
    picks += [("worst", i + 1, int(p)) for i, p in enumerate(ranked[n - kw :][::-1])]
    return picks


def pick_examples(
    csv_path: str | os.PathLike[str], rank_by: str = RANK_KEY, k: int = EXAMPLES_PER_GROUP
) -> list[Example]:
    """:func:`select_examples` on a ``per_patch.csv``, with the ids of the picked rows."""
    values = read_columns(csv_path, (rank_by,))[rank_by]
    picks = select_examples(values, k, rank_by in HIGHER_IS_BETTER)
    wanted = {p for _, _, p in picks}
    rows: dict[int, dict[str, str]] = {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        for pos, row in enumerate(csv.DictReader(f)):
            if pos in wanted:
                rows[pos] = row
    return [
        Example(
            g, r, p, rows[p]["id"], rank_by, float(values[p]), _float(rows[p], "cloud_fraction")
        )
        for g, r, p in picks
    ]


def _float(row: Mapping[str, str], key: str) -> float:
    try:
        return float(row.get(key) or "nan")
    except ValueError:
        return math.nan


def example_row(
    batch: Mapping[str, Any],
    pred: Any,
    mask: np.ndarray,
    protocol: EvalProtocol,
    scaling_name: str,
    label: str,
) -> np.ndarray:
    """The picture of one evaluated patch: a label strip over its image panel.

    Images show the window the protocol evaluates (its centre crop, its clipping), so the
    error map is the error the metrics saw.

    Args:
        batch: one collated sample (``s2_cloudy``, ``s2`` (1, 13, H, W) network scale,
            ``s1`` (1, 2, H, W) optional).
        pred: (1, 13, H, W) prediction, network scale.
        mask: (1, H, W) uint8, 0 clear / 1 cloud / 2 shadow.
        protocol: the evaluation protocol.
        scaling_name: network scaling of the method (``"dsen2cr"``).
        label: text above the row (drawn with the panel's bitmap font).

    Returns:
        (h, w, 3) uint8.
    """
    from cloudfree.render import (
        error_map,
        mask_rgb,
        panel,
        sar_composite,
        stack_rows,
        true_colour,
    )

    s2_scale = get_scaling(scaling_name).s2_scale
    crop = protocol.crop
    cloudy = centre_window(as_numpy(batch["s2_cloudy"])[0].astype(np.float64) * s2_scale, crop)
    target = centre_window(as_numpy(batch["s2"])[0].astype(np.float64) * s2_scale, crop)
    p = centre_window(as_numpy(pred)[0].astype(np.float64) * s2_scale, crop)
    if protocol.clip_prediction:
        p = np.clip(p, 0.0, S2_DN_PER_REFLECTANCE)
    images = [true_colour(cloudy)]
    titles = [COLUMN_TITLES[0]]
    if "s1" in batch:
        images.append(
            sar_composite(
                centre_window(
                    denormalize_s1(as_numpy(batch["s1"])[0], get_scaling(scaling_name)), crop
                )
            )
        )
        titles.append(COLUMN_TITLES[1])
    images += [true_colour(p), true_colour(target), mask_rgb(centre_window(mask[0], crop))]
    images.append(error_map(p, target))
    titles += list(COLUMN_TITLES[2:])
    body = panel(images, titles)
    strip = panel([np.full((1, body.shape[1], 3), 255, np.uint8)], [label])
    return stack_rows([strip, body], gap=0)


def _label(e: Example) -> str:
    return f"{e.group} {e.rank}: {e.id} {e.key} {format_value(e.key, e.value)}"


def write_examples(
    out: str | os.PathLike[str],
    method: Any,
    dataset: Any,
    dataset_index: Sequence[int],
    protocol: EvalProtocol,
    scaling_name: str,
    rank_by: str = RANK_KEY,
    k: int = EXAMPLES_PER_GROUP,
) -> list[Example]:
    """Render the best/median/worst patches of an evaluation: ``examples.png`` + ``examples.csv``.

    The second, small pass: the picks of :func:`pick_examples` on ``out/per_patch.csv`` are
    re-loaded from ``dataset`` and re-predicted one at a time. A patch that cannot be re-read
    is left out.

    Args:
        out: the evaluation folder (holds ``per_patch.csv``).
        method: the evaluated method (``predict(batch)``).
        dataset: the evaluated dataset (items: samples of ``make_sample``, or None).
        dataset_index: for each row of ``per_patch.csv``, the index of its sample in
            ``dataset``.
        protocol: the evaluation protocol; scaling_name: the method's network scaling.
        rank_by, k: ranking metric and patches per group (:func:`select_examples`).

    Returns:
        The examples drawn, in row order (none: nothing is written).
    """
    import torch

    from cloudfree.data.collate import collate_skip_bad
    from cloudfree.render import stack_rows, write_png

    out = Path(out)
    for name in ("examples.png", "examples.csv"):
        (out / name).unlink(missing_ok=True)
    rows: list[np.ndarray] = []
    drawn: list[tuple[Example, bool]] = []
    for e in pick_examples(out / "per_patch.csv", rank_by, k):
        batch = collate_skip_bad([dataset[dataset_index[e.position]]])
        if batch is None:
            continue
        if str(batch["id"][0]) != e.id:
            raise RuntimeError(
                f"row {e.position} of {out / 'per_patch.csv'} is patch {e.id} but the dataset "
                f"now gives {batch['id'][0]} at index {dataset_index[e.position]}"
            )
        mask = batch_mask(batch)
        with torch.no_grad():
            pred = method.predict(batch)
        rows.append(example_row(batch, pred, mask, protocol, scaling_name, _label(e)))
        drawn.append((e, "s1" in batch))
    if not rows:
        return []
    write_png(out / "examples.png", stack_rows(rows, gap=8))
    with atomic_path(out / "examples.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(EXAMPLES_CSV_COLUMNS)
        for e, sar in drawn:
            w.writerow([e.group, e.rank, e.id, e.key, repr(e.value), repr(e.cloud_fraction), sar])
    return [e for e, _ in drawn]


def read_examples(csv_path: str | os.PathLike[str]) -> tuple[list[Example], bool]:
    """Read ``examples.csv``: the examples (position -1: unknown) and whether SAR is shown."""
    path = Path(csv_path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != EXAMPLES_CSV_COLUMNS:
            raise DataError(
                path, "has unexpected columns", "columns " + ", ".join(EXAMPLES_CSV_COLUMNS)
            )
        rows = list(reader)
    try:
        examples = [
            Example(
                r["group"],
                int(r["rank"]),
                -1,
                r["id"],
                r["key"],
                float(r["value"]),
                float(r["cloud_fraction"]),
            )
            for r in rows
        ]
    except ValueError as err:
        expected = "numbers in rank, value and cloud_fraction, as write_examples writes them"
        raise DataError(path, f"holds a value that is not a number ({err})", expected) from None
    return examples, any(r["sar"] == "True" for r in rows)
