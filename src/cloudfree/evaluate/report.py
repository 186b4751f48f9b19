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

How the examples are chosen without keeping predictions: :mod:`cloudfree.evaluate.examples`.

:func:`write_report` rebuilds ``report.html`` and ``distributions.png`` from a folder's
``per_patch.csv`` and ``summary.json`` (plus ``examples.png``/``examples.csv`` when present),
so the page can be regenerated without the method or the data.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.evaluate.examples import (
    COLUMN_TITLES,
    EXAMPLES_PER_GROUP,
    HIGHER_IS_BETTER,
    RANK_KEY,
    Example,
    format_value,
    pick_examples,
    read_columns,
    read_examples,
)
from cloudfree.evaluate.protocols import EvalProtocol, get_protocol
from cloudfree.evaluate.table import (
    format_table,
    patch_counts,
    read_summary,
    table_psnr,
    table_values,
)
from cloudfree.io import atomic_path

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
#: Files of the report in an evaluation folder.
REPORT_FILES: Final[tuple[str, ...]] = (
    "report.html", "distributions.png", "examples.png", "examples.csv",
)  # fmt: skip


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
    psnr = table_psnr(summary)
    return [
        (
            str(g),
            table_values({m: math.nan if v is None else float(v) for m, v in vals.items()}, psnr),
        )
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
    metrics = table_values(metrics, table_psnr(summary))
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
        ("Patches", patch_counts(summary)),
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
    how = summary.get("columns") or {}
    if how:
        parts += [
            "<h3>How each column was computed</h3>",
            "<ul>",
            *(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in how.items()),
            "</ul>",
        ]
    for heading, key, first in (
        ("By season", "by_season", "Season"),
        ("By cloud cover", "by_cloud_bin", "Cloud cover"),
    ):
        groups = _groups(summary, key)
        if groups:
            parts += [f"<h2>{_e(heading)}</h2>", markdown_table_html(format_table(groups), first)]
    unc = summary.get("uncertainty")
    if unc:
        from cloudfree.evaluate.calibration import reliability_figure

        cal = {k: (math.nan if v is None else v) for k, v in unc.items()}
        parts += [
            "<h2>Uncertainty calibration</h2>",
            f"<p>UCE {cal['uce']:.4f}, AUCE {cal['auce']:.4f}, RMS predicted standard "
            f"deviation {cal['rms_std']:.4f} (reflectance) over {int(cal['patches'])} "
            "patches.</p>",
            _img(figure_png(reliability_figure(cal)), "reliability plot and discard curve"),
            '<p class="note">Left: each bin of patches (by predicted variance), RMS error against '
            "RMS predicted standard deviation; on the dashed line the uncertainty is calibrated. "
            "Right: mean squared error of the most certain patches. As UnCRtainTS computes "
            "them (cloudfree.evaluate.calibration).</p>",
        ]
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
