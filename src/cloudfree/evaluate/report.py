"""``report.html`` of an evaluation: the table, metric distributions and example patches.

An evaluation folder (written by :func:`cloudfree.evaluate.run.evaluate`) gets, next to
``table.md``:

- ``report.html``: one self-contained page (inline CSS, images as base64 PNG data URIs, no
  script, no external resource): the run (method, data, split, protocol, patches, date), the
  Table-1 row (the cells of :func:`cloudfree.evaluate.table.format_table`), the breakdowns by
  season and by cloud cover, the metric distributions and the best/median/worst patches;
- ``distributions.png``: histograms of the per-patch metrics (:data:`DISTRIBUTION_KEYS`),
  undefined (NaN) and infinite values left out and counted in the page;
- ``examples.png`` + ``examples.csv``: the grid of best, median and worst patches (each row:
  cloudy input | SAR (when the samples carry S1) | prediction | target | cloud/shadow mask |
  error map) and which patch each row shows.

Choosing the examples without keeping predictions (issue 5, "streams"): after the streaming
pass, :func:`select_examples` ranks the patches of ``per_patch.csv`` by one metric
(:data:`RANK_KEY`, MAE over the whole patch; lower is better, higher for PSNR/SSIM) and picks
the ``k`` best, the ``k`` around the median and the ``k`` worst (fewer when the set is small;
no patch twice; NaN values are not ranked). :func:`write_examples` then re-loads just those
samples from the dataset and re-runs the method on them, one at a time (a second, small pass).
The ranking holds one float per patch (8 bytes), no image.

:func:`write_report` rebuilds ``report.html`` and ``distributions.png`` from a folder's
``per_patch.csv`` and ``summary.json`` (plus ``examples.png``/``examples.csv`` when present),
so the page can be regenerated without the method or the data.
"""

from __future__ import annotations

import array
import base64
import csv
import datetime as dt
import html
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.data.bands import S2_DN_PER_REFLECTANCE, get_scaling
from cloudfree.data.io import atomic_path
from cloudfree.errors import DataError
from cloudfree.evaluate.protocols import EvalProtocol, get_protocol
from cloudfree.evaluate.table import format_table, read_summary

#: Metric that ranks the example patches: MAE over the whole patch (reflectance).
RANK_KEY: Final[str] = "mae"
#: Metrics where a higher value is better (ranked in descending order).
HIGHER_IS_BETTER: Final[frozenset[str]] = frozenset({"psnr", "ssim"})
#: Patches per example group.
EXAMPLES_PER_GROUP: Final[int] = 3
#: Per-patch metrics drawn in ``distributions.png``, with their axis labels.
DISTRIBUTION_KEYS: Final[dict[str, str]] = {
    "mae": "MAE target (reflectance)",
    "mae_reprod": "MAE reprod (reflectance)",
    "mae_recon": "MAE recon (reflectance)",
    "rmse": "RMSE (reflectance)",
    "psnr": "PSNR (dB)",
    "sam": "SAM target (degrees)",
    "ssim": "SSIM",
}
#: Titles of the image columns of ``examples.png`` (the SAR column only with S1).
COLUMN_TITLES: Final[tuple[str, ...]] = ("INPUT", "SAR", "PRED", "TARGET", "MASK", "ERROR")
EXAMPLES_CSV_COLUMNS: Final[tuple[str, ...]] = (
    "group", "rank", "id", "key", "value", "cloud_fraction", "sar",
)  # fmt: skip

#: Files of the report in an evaluation folder.
REPORT_FILES: Final[tuple[str, ...]] = (
    "report.html", "distributions.png", "examples.png", "examples.csv",
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


def distribution_figure(values: Mapping[str, np.ndarray]) -> Any:
    """Histograms of per-patch metrics, one panel per key of :data:`DISTRIBUTION_KEYS`.

    NaN (undefined) and infinite values are left out; each panel's title gives how many
    patches it shows, and a dashed line marks their mean.

    Args:
        values: ``{metric key: (N,) float values}`` (keys missing here are skipped).

    Returns:
        A ``matplotlib.figure.Figure`` with an Agg canvas (no pyplot state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    keys = [k for k in DISTRIBUTION_KEYS if k in values]
    ncols = 4
    nrows = max(1, math.ceil(len(keys) / ncols))
    # A fixed layout: the constrained one costs seconds per figure for nothing here.
    fig = Figure(figsize=(3.2 * ncols, 2.6 * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.12, top=0.92, wspace=0.3, hspace=0.55)
    for ax, key in zip(axes, keys, strict=False):
        v = np.asarray(values[key], dtype=np.float64)
        v = v[np.isfinite(v)]
        ax.set_title(f"{key} (n={v.size} of {np.size(values[key])})", fontsize=9)
        ax.set_xlabel(DISTRIBUTION_KEYS[key], fontsize=8)
        ax.set_ylabel("patches", fontsize=8)
        ax.tick_params(labelsize=7)
        if v.size == 0:
            ax.text(0.5, 0.5, "no finite value", ha="center", va="center", transform=ax.transAxes)
            continue
        bins = int(min(30, max(5, math.ceil(math.sqrt(v.size)))))
        ax.hist(v, bins=bins, color="#4878a8", edgecolor="white", linewidth=0.5)
        ax.axvline(float(v.mean()), color="#c03030", linestyle="--", linewidth=1)
        # Few ticks: most of the drawing time of a small figure goes into tick labels.
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.yaxis.set_major_locator(MaxNLocator(4, integer=True))
    for ax in axes[len(keys) :]:
        ax.set_axis_off()
    return fig


def figure_png(fig: Any, dpi: int = 80) -> bytes:
    """PNG bytes of a matplotlib figure (no 'Software' metadata: it holds a URL)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _s1_db(s1: np.ndarray, scaling_name: str) -> np.ndarray:
    """Network S1 values back to dB (inverse of ``preprocess.normalize_s1``, clipped range)."""
    scaling = get_scaling(scaling_name)
    out = np.empty(s1.shape, dtype=np.float64)
    for i, (lo, hi) in enumerate(scaling.s1_clip):
        out[i] = s1[i] / scaling.s1_max * (hi - lo) + lo
    return out


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
    from cloudfree.evaluate.run import as_numpy, centre_window
    from cloudfree.viewer.render import (
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
            sar_composite(centre_window(_s1_db(as_numpy(batch["s1"])[0], scaling_name), crop))
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
    from cloudfree.evaluate.run import add_mask
    from cloudfree.viewer.render import stack_rows, write_png

    out = Path(out)
    for name in ("examples.png", "examples.csv"):
        (out / name).unlink(missing_ok=True)
    s2_scale = get_scaling(scaling_name).s2_scale
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
        mask = add_mask(batch, s2_scale)
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


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.meta th { text-align: left; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
.note { color: #555; font-size: 0.9em; }
"""

_PIPE = re.compile(r"(?<!\\)\|")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def markdown_table_html(md: str, first: str | None = None) -> str:
    """A Markdown table of :func:`format_table` as an escaped HTML ``<table>`` (same cells).

    ``first`` replaces the header of the first column ("Method"), e.g. "Season".
    """
    lines = [ln.strip() for ln in md.strip().splitlines() if ln.strip()]
    cells = [[c.strip().replace("\\|", "|") for c in _PIPE.split(ln)[1:-1]] for ln in lines]
    head, body = cells[0], cells[2:]  # cells[1] is the alignment row
    if first is not None:
        head[0] = first
    out = ['<table class="metrics">', "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for row in body:
        tds = [f'<th scope="row">{_e(row[0])}</th>'] + [
            f'<td class="num">{_e(c)}</td>' for c in row[1:]
        ]
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _groups(summary: Mapping[str, Any], key: str) -> list[tuple[str, dict[str, float]]]:
    # summary.json writes NaN/inf as null: undefined here ("n/a"), not "not reported".
    groups = summary.get(key) or {}
    return [
        (str(g), {m: math.nan if v is None else float(v) for m, v in vals.items()})
        for g, vals in groups.items()
    ]


def render_html(
    summary: Mapping[str, Any],
    columns: Mapping[str, np.ndarray],
    distributions_png: bytes,
    examples: Sequence[Example],
    examples_png: bytes | None,
    sar: bool,
) -> str:
    """The text of ``report.html`` (see the module docstring); every text is HTML-escaped."""
    metrics = {k: math.nan if v is None else v for k, v in summary["metrics"].items()}
    name = str(summary["method"])
    try:
        proto: EvalProtocol | None = get_protocol(str(summary["protocol"]))
    except KeyError:  # a folder from a newer version: show the name only
        proto = None
    title = f"{name} on {summary.get('data', '?')} (split {summary['split']})"
    meta = [
        ("Method", name),
        ("Data", summary.get("data", "?")),
        ("Split", summary["split"]),
        (
            "Protocol",
            f"{summary['protocol']}: {proto.description}" if proto else summary["protocol"],
        ),
        ("Comparable with", proto.comparable_with if proto else "?"),
        ("Patches", f"{summary['count']} evaluated, {summary.get('skipped', 0)} skipped"),
        ("Evaluated (UTC)", summary.get("created_utc", "?")),
        ("cloudfree", summary.get("cloudfree_version", "?")),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        '<table class="meta">',
        *(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta),
        "</table>",
        "<h2>Table 1</h2>",
        markdown_table_html(format_table([(name, metrics)])),
        '<p class="note">MAE and RMSE in reflectance (DN / 10000), PSNR in dB, SAM in degrees; '
        "n/a = undefined (e.g. recon over cloud-free patches only).</p>",
    ]
    for heading, key, first in (
        ("By season", "by_season", "Season"),
        ("By cloud cover", "by_cloud_bin", "Cloud cover"),
    ):
        groups = _groups(summary, key)
        if groups:
            parts += [f"<h2>{_e(heading)}</h2>", markdown_table_html(format_table(groups), first)]
    parts += ["<h2>Metric distributions</h2>", _img(distributions_png, "metric distributions")]
    parts.append(
        '<table class="counts"><tr><th>Metric</th><th>Shown</th><th>NaN (undefined)</th><th>Infinite</th></tr>'
    )
    for key in DISTRIBUTION_KEYS:
        if key in columns:
            v = columns[key]
            n_nan, n_inf = int(np.isnan(v).sum()), int(np.isinf(v).sum())
            cells = (v.size - n_nan - n_inf, n_nan, n_inf)
            parts.append(
                f"<tr><th>{_e(key)}</th>"
                + "".join(f'<td class="num">{c}</td>' for c in cells)
                + "</tr>"
            )
    parts.append("</table>")
    parts.append(
        '<p class="note">Dashed line: mean of the values shown. '
        "NaN and infinite values are left out of the histograms.</p>"
    )

    key = examples[0].key if examples else RANK_KEY
    order = "higher" if key in HIGHER_IS_BETTER else "lower"
    cols = [c for c in COLUMN_TITLES if sar or c != "SAR"]
    parts += [
        "<h2>Best, median and worst patches</h2>",
        f'<p class="note">Ranked by per-patch {_e(key)} ({_e(order)} is better); patches '
        f"whose {_e(key)} is NaN are not ranked. Columns: {_e(' | '.join(cols))} (mask: white "
        "cloud, blue shadow; error: mean absolute reflectance error, black 0, yellow 0.2 or more).</p>",
    ]
    if examples_png is not None:
        parts.append(_img(examples_png, "best, median and worst patches"))
    else:
        parts.append(
            '<p class="note">Images not rendered (no examples.png; they need the method '
            "and the data: run cloudfree evaluate).</p>"
        )
    parts.append(
        f'<table class="examples"><tr><th>Group</th><th>Rank</th><th>Patch</th><th>{_e(key)}</th><th>Cloud cover</th></tr>'
    )
    for ex in examples:
        cover = "n/a" if math.isnan(ex.cloud_fraction) else f"{100 * ex.cloud_fraction:.1f} %"
        parts.append(
            f'<tr class="{_e(ex.group)}"><td>{_e(ex.group)}</td><td class="num">{ex.rank}</td>'
            f'<td class="id">{_e(ex.id)}</td><td class="num">{_e(format_value(ex.key, ex.value))}</td>'
            f'<td class="num">{_e(cover)}</td></tr>'
        )
    parts.append("</table>")
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts.append(f'<p class="note">Report written {_e(made)}.</p></body></html>')
    return "\n".join(parts) + "\n"


def write_report(
    eval_dir: str | os.PathLike[str],
    summary: Mapping[str, Any] | None = None,
    rank_by: str = RANK_KEY,
    k: int = EXAMPLES_PER_GROUP,
) -> Path:
    """Write ``report.html`` and ``distributions.png`` of an evaluation folder.

    Args:
        eval_dir: a folder written by ``cloudfree evaluate`` (``per_patch.csv``,
            ``summary.json``; ``examples.png`` + ``examples.csv`` are embedded when present).
        summary: the evaluation's summary (as :func:`~cloudfree.evaluate.run.evaluate`
            returns it, with inf kept); None reads ``summary.json``.
        rank_by, k: only without ``examples.csv``: the ranking listed (no images).

    Returns:
        The path of ``report.html``.

    Raises:
        DataError: a file is missing or malformed.
    """
    folder = Path(eval_dir)
    if summary is None:
        summary = read_summary(folder)
    columns = read_columns(folder / "per_patch.csv", tuple(DISTRIBUTION_KEYS))
    dist_png = figure_png(distribution_figure(columns))
    with atomic_path(folder / "distributions.png") as tmp:
        tmp.write_bytes(dist_png)
    png_path, csv_path = folder / "examples.png", folder / "examples.csv"
    if png_path.is_file() and csv_path.is_file():
        examples, sar = read_examples(csv_path)
        examples_png: bytes | None = png_path.read_bytes()
    else:
        examples, sar, examples_png = (
            pick_examples(folder / "per_patch.csv", rank_by, k),
            False,
            None,
        )
    text = render_html(summary, columns, dist_png, examples, examples_png, sar)
    out = folder / "report.html"
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out
