"""Metric tables in the layout of DSen2-CR's Table 1, breakdowns, and the published reference rows.

:func:`format_table` renders ``(name, {metric key: value})`` rows as Markdown with the paper's
columns (MAE target/reprod/recon, RMSE, PSNR, SAM target/reprod/recon, SSIM; spec section 8).
:func:`breakdown` groups per-patch metrics by season or cloud-cover bin. :func:`compare`
assembles several evaluation folders (each with a ``summary.json`` written by
``cloudfree evaluate``) into one table, adding the published numbers of the paper and of the
SEN12MS-CR leaderboard (:data:`PUBLISHED`) as reference rows, marked as such.

Published numbers are only comparable with evaluations under the same protocol (see
``cloudfree.evaluate.protocols`` and ``docs/field.md`` section 1): the paper measured on
the original WGS84 release with its own split, the leaderboard on the public UTM release with
its ROI split, both in reflectance (DN / 10000).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cloudfree.bands import SEASONS
from cloudfree.data.left_out import describe_left_out
from cloudfree.errors import DataError
from cloudfree.evaluate.protocols import ALL_PROTOCOLS, PSNR_MEAN_RMSE_KEY
from cloudfree.metrics.mean import NanMean
from cloudfree.metrics.patch import psnr_of_rmse

#: Metric keys (of ``cloudfree.metrics.METRIC_KEYS``) in the column order of the paper's Table 1.
TABLE1_COLUMNS: tuple[str, ...] = (
    "mae",
    "mae_reprod",
    "mae_recon",
    "rmse",
    "psnr",
    "sam",
    "sam_reprod",
    "sam_recon",
    "ssim",
)

#: Column headers as the paper writes them (MAE/RMSE in reflectance, SAM in degrees).
HEADERS: dict[str, str] = {
    "mae": "MAE target",
    "mae_reprod": "MAE reprod",
    "mae_recon": "MAE recon",
    "rmse": "RMSE",
    "psnr": "PSNR (dB)",
    "sam": "SAM target (°)",
    "sam_reprod": "SAM reprod (°)",
    "sam_recon": "SAM recon (°)",
    "ssim": "SSIM",
}

#: Decimals per column: as many as the paper prints for MAE/RMSE (4), PSNR/SAM (2), SSIM (3).
_DECIMALS: dict[str, int] = {
    "mae": 4,
    "mae_reprod": 4,
    "mae_recon": 4,
    "rmse": 4,
    "psnr": 2,
    "sam": 2,
    "sam_reprod": 2,
    "sam_recon": 2,
    "ssim": 3,
}

MISSING = "–"  # a value the row does not report (e.g. the leaderboard has no RMSE)
UNDEFINED = "n/a"  # a NaN value (e.g. recon columns over cloud-free patches only)
COUNT_KEY = "count"  # rendered as a trailing "n" column when a row carries it

_PAPER_SOURCE = (
    "Meraner et al. 2020, ISPRS J. 166:333-346, Table 1 "
    "(https://pmc.ncbi.nlm.nih.gov/articles/PMC7386944/table/t0005)"
)
_PAPER_NOTE = (
    "measured on the original WGS84 release of SEN12MS-CR with the paper's own split; "
    "the public release is reprocessed into UTM and split differently"
)
_LEADERBOARD_SOURCE = (
    "SEN12MS-CR leaderboard, PatrickTUM/PatrickTUM.github.io:"
    "cloud_removal/sen12mscr/index.html@fa03a0b (2026-06-13)"
)
_LEADERBOARD_NOTE = (
    "all 13 bands, every test-split ROI of the public release; values as published "
    "(MAE and SSIM to 3 decimals); no RMSE and no reprod/recon split reported"
)


def _paper(
    mae: float,
    reprod: float,
    recon: float,
    rmse: float,
    psnr: float,
    sam: float,
    sam_reprod: float,
    sam_recon: float,
    ssim: float,
) -> dict[str, Any]:
    values = dict(
        zip(
            TABLE1_COLUMNS,
            (mae, reprod, recon, rmse, psnr, sam, sam_reprod, sam_recon, ssim),
            strict=True,
        )
    )
    return {
        "source": _PAPER_SOURCE,
        "tag": "paper Table 1",
        "protocol": "paper",
        "note": _PAPER_NOTE,
        "values": values,
    }


def _board(mae: float, sam: float, psnr: float, ssim: float) -> dict[str, Any]:
    values = {"mae": mae, "sam": sam, "psnr": psnr, "ssim": ssim}
    return {
        "source": _LEADERBOARD_SOURCE,
        "tag": "SEN12MS-CR leaderboard",
        "protocol": "leaderboard",
        "note": _LEADERBOARD_NOTE,
        "values": values,
    }


_TS_SOURCE = (
    "SEN12MS-CR-TS benchmark, patricktum.github.io/cloud_removal/sen12mscrts (Ebel et al. "
    "2022, TGRS; 2023, CVPRW)"
)
_TS_NOTE = (
    "3 input dates, the official test split, the fixed sampler on s2cloudless coverage; RMSE, "
    "SAM, PSNR, SSIM only (no MAE, no reprod/recon split); the page counts ensembles apart"
)


def _series(rmse: float, sam: float, psnr: float | None, ssim: float) -> dict[str, Any]:
    values = {"rmse": rmse, "sam": sam, "ssim": ssim}
    if psnr is not None:
        values["psnr"] = psnr
    return {"source": _TS_SOURCE, "tag": "SEN12MS-CR-TS benchmark", "protocol": "sen12mscr-ts",
            "note": _TS_NOTE, "values": values}  # fmt: skip


#: Published reference rows, keyed by display name. Each has ``source`` (citation), ``tag``
#: (short form shown in the table), ``protocol`` (the ``cloudfree.evaluate.protocols`` name
#: its numbers are comparable with), ``note`` and ``values`` ({metric key: value}).
#: Paper rows: spec section 8 (Table 1); leaderboard rows: field.md section 1.
PUBLISHED: dict[str, dict[str, Any]] = {
    # name: MAE target, reprod, recon, RMSE, PSNR, SAM target, reprod, recon, SSIM
    "DSen2-CR, L_CARL": _paper(0.0290, 0.0204, 0.0266, 0.0366, 28.7, 8.15, 3.94, 8.04, 0.875),
    "DSen2-CR, L_T": _paper(0.0270, 0.0398, 0.0266, 0.0343, 29.3, 8.07, 6.33, 8.13, 0.878),
    "DSen2-CR, L_CARL, no SAR": _paper(
        0.0306, 0.0188, 0.0282, 0.0387, 27.6, 8.98, 3.86, 8.97, 0.870
    ),
    "DSen2-CR, L_T, no SAR": _paper(0.0284, 0.0389, 0.0281, 0.0361, 28.8, 8.97, 6.17, 9.05, 0.873),
    "pix2pix": _paper(0.0292, 0.0210, 0.0274, 0.0424, 28.2, 13.68, 13.93, 12.67, 0.844),
    # name: MAE, SAM, PSNR, SSIM
    "McGAN (2017)": _board(0.048, 15.676, 25.14, 0.744),
    "SAR-Opt-cGAN (2018)": _board(0.043, 15.494, 25.59, 0.764),
    "SAR2OPT (2018)": _board(0.042, 14.788, 25.87, 0.793),
    "SpA-GAN (2020)": _board(0.045, 18.085, 24.78, 0.754),
    "Simulation-Fusion GAN (2020)": _board(0.045, 16.633, 24.73, 0.701),
    "DSen2-CR (2020), re-evaluated": _board(0.031, 9.472, 27.76, 0.874),
    "GLF-CR (2022)": _board(0.028, 8.981, 28.64, 0.885),
    "UnCRtainTS L2, t=1 (2023)": _board(0.027, 8.320, 28.90, 0.880),
    "ACA-Net (2024)": _board(0.025, 7.770, 29.78, 0.896),
    "DiffCR (2024)": _board(0.019, 5.821, 31.77, 0.902),
    "EMRDM (2025)": _board(0.018, 5.267, 32.14, 0.924),
    "ECRformer-Light (2026)": _board(0.018, 5.026, 32.75, 0.920),
    "ECRformer (2026)": _board(0.016, 4.693, 33.37, 0.932),
    # SEN12MS-CR-TS, t = 3 (field.md section 1): RMSE, SAM, PSNR, SSIM
    "least cloudy": _series(0.079, 12.204, None, 0.815),
    "mosaicing": _series(0.062, 14.324, 31.68, 0.811),
    "DSen2-CR (SEN12MS-CR-TS)": _series(0.060, 12.147, 26.04, 0.810),
    "STGAN": _series(0.057, 12.548, 25.42, 0.818),
    "CR-TS Net": _series(0.051, 10.657, 26.68, 0.836),
    "U-TAE": _series(0.051, 11.649, 27.05, 0.849),
    "UnCRtainTS L2, t=3": _series(0.049, 10.168, 27.23, 0.859),
    "UnCRtainTS sigma, t=3": _series(0.051, 10.160, 27.84, 0.866),
    "SeqDMs": _series(0.045, 12.777, 28.07, 0.827),
    "UnCRtainTS ensemble, t=3": _series(0.049, 10.18, 28.19, 0.872),
}

#: Cloud-cover bins of :func:`breakdown`, in percent of the patch under cloud or shadow:
#: [0, 10), [10, 30), [30, 60), [60, 100]. Lower ends are inclusive, so a cloud-free patch
#: (0 %) falls in the first bin; the last bin also holds a fully covered patch (100 %).
CLOUD_BINS: tuple[tuple[float, float], ...] = (
    (0.0, 10.0),
    (10.0, 30.0),
    (30.0, 60.0),
    (60.0, 100.0),
)


def _format_value(key: str, value: Any) -> str:
    if value is None:
        return MISSING
    v = float(value)
    if math.isnan(v):
        return UNDEFINED
    if math.isinf(v):  # PSNR of a perfect reproduction
        return "inf" if v > 0 else "-inf"
    return f"{v:.{_DECIMALS[key]}f}"


def _cell(text: str) -> str:
    # A "|" inside a name would split the Markdown cell.
    return text.replace("|", "\\|")


def with_psnr_mean_rmse(means: Mapping[str, Any]) -> dict[str, Any]:
    """``means`` plus ``psnr_mean_rmse``: 20 log10(1 / mean RMSE), dB (``protocols`` module
    docstring); +inf for a zero mean RMSE, NaN where the RMSE mean is undefined."""
    rmse = means.get("rmse")
    return {**means, PSNR_MEAN_RMSE_KEY: psnr_of_rmse(math.nan if rmse is None else float(rmse))}


def table_values(metrics: Mapping[str, Any], psnr_key: str = "psnr") -> dict[str, Any]:
    """The values of a table row: ``metrics`` with the PSNR column taken from ``psnr_key``.

    ``psnr_key`` is the protocol's (:attr:`~cloudfree.evaluate.protocols.EvalProtocol.psnr_key`):
    ``"psnr_mean_rmse"`` for the paper's Table 1, computed from the mean ``rmse``
    (:func:`with_psnr_mean_rmse`) for summaries written before it was recorded.
    """
    values = dict(metrics)
    if psnr_key == PSNR_MEAN_RMSE_KEY:
        if metrics.get(PSNR_MEAN_RMSE_KEY) is None:
            values = with_psnr_mean_rmse(values)
        values["psnr"] = values[PSNR_MEAN_RMSE_KEY]
    return values


def format_table(rows: Sequence[tuple[str, Mapping[str, float]]], reference: bool = False) -> str:
    """Render metric rows as a Markdown table laid out as the paper's Table 1.

    Columns follow :data:`TABLE1_COLUMNS` with the paper's headers; MAE and RMSE get 4
    decimals, PSNR and SAM 2, SSIM 3. A key absent from a row shows "–", a NaN shows "n/a",
    +inf shows "inf". If any row has a ``"count"`` entry, a trailing ``n`` column shows it.
    Keys outside the table are ignored.

    Args:
        rows: ``(name, {metric key: value})`` in display order; values in reflectance units
            (MAE, RMSE), dB (PSNR), degrees (SAM).
        reference: the rows are published numbers: each name is prefixed with "(published) ".

    Returns:
        The table, one line per row plus two header lines, ending with a newline.
    """
    with_count = any(COUNT_KEY in values for _, values in rows)
    headers = ["Method", *(HEADERS[k] for k in TABLE1_COLUMNS)]
    align = ["---", *("---:" for _ in TABLE1_COLUMNS)]
    if with_count:
        headers.append("n")
        align.append("---:")
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    for name, values in rows:
        label = f"(published) {name}" if reference else name
        cells = [_cell(label), *(_format_value(k, values.get(k)) for k in TABLE1_COLUMNS)]
        if with_count:
            n = values.get(COUNT_KEY)
            cells.append(MISSING if n is None else str(int(n)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _number(row: Mapping[str, Any], key: str) -> float:
    """A per-patch value as float; CSV rows carry strings, and "" or "nan" mean undefined."""
    value = row.get(key)
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(
            None, f"per-patch value {key}={value!r} is not a number", "a float or empty"
        ) from None


def cloud_bin(fraction: float) -> str:
    """Label of the :data:`CLOUD_BINS` bin of a cloud fraction in [0, 1] (e.g. ``"10-30 %"``)."""
    pct = float(fraction) * 100.0
    if not 0.0 <= pct <= 100.0:  # also rejects NaN
        raise DataError(
            None,
            f"cloud_fraction {fraction!r} is outside [0, 1]",
            "the fraction of the patch under cloud or shadow, as cloudfree.metrics computes it",
        )
    for lo, hi in CLOUD_BINS[:-1]:
        if lo <= pct < hi:
            return f"{lo:g}-{hi:g} %"
    lo, hi = CLOUD_BINS[-1]
    return f"{lo:g}-{hi:g} %"


def breakdown(
    per_patch: Sequence[Mapping[str, Any]], by: str
) -> list[tuple[str, dict[str, float]]]:
    """Mean metrics per group of patches, skipping NaN per key (:class:`cloudfree.metrics.mean.NanMean`).

    Args:
        per_patch: one mapping per patch holding the :data:`TABLE1_COLUMNS` keys (floats, or
            strings as read from ``per_patch.csv``) and the grouping key: ``"season"``
            (``"spring"``, ...) or ``"cloud_fraction"`` in [0, 1].
        by: ``"season"`` (groups in the order spring, summer, fall, winter, then any other
            season sorted) or ``"cloud_bin"`` (always the four :data:`CLOUD_BINS`, an empty
            bin with count 0 and NaN means).

    Returns:
        ``[(group label, {metric key: mean, "count": patches in the group})]``, ready for
        :func:`format_table`. A key NaN in every patch of a group stays NaN; a
        :data:`TABLE1_COLUMNS` key that no patch has is left out.
    """
    if by == "season":
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for row in per_patch:
            if not row.get("season"):
                raise DataError(None, "a per-patch row has no 'season'", f"keys {sorted(row)}")
            groups.setdefault(str(row["season"]), []).append(row)
        known = [s for s in SEASONS if s in groups]
        order = known + sorted(set(groups) - set(known))
    elif by == "cloud_bin":
        order = [f"{lo:g}-{hi:g} %" for lo, hi in CLOUD_BINS]
        groups = {label: [] for label in order}
        for row in per_patch:
            groups[cloud_bin(_number(row, "cloud_fraction"))].append(row)
    else:
        raise ValueError(f"breakdown by {by!r}: expected 'season' or 'cloud_bin'")

    # A metric no patch carries stays absent (shown "–"), not NaN ("n/a": undefined).
    keys = [k for k in TABLE1_COLUMNS if any(k in row for row in per_patch)]
    out: list[tuple[str, dict[str, float]]] = []
    for label in order:
        members = groups[label]
        acc = NanMean(keys)
        for row in members:
            acc.add({key: _number(row, key) for key in keys})
        means = acc.means()
        means[COUNT_KEY] = float(acc.count)
        out.append((label, means))
    return out


_SUMMARY_FIELDS: dict[str, type] = {
    "method": str,
    "protocol": str,
    "split": str,
    "metrics": dict,
    "count": int,
}


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """Read and check an evaluation folder's ``summary.json``.

    Args:
        run_dir: a folder written by ``cloudfree evaluate``.

    Returns:
        The summary, with ``metrics`` values as floats (JSON ``null`` read as NaN).

    Raises:
        DataError: the folder or its ``summary.json`` is missing, unreadable or lacks a field.
    """
    folder = Path(run_dir)
    path = folder / "summary.json"
    expected = (
        'an evaluation folder written by "cloudfree evaluate", holding summary.json with '
        '{"method": str, "protocol": str, "split": str, "metrics": {key: float}, "count": int}'
    )
    if not folder.is_dir():
        raise DataError(folder, "is not a folder", expected)
    if not path.is_file():
        raise DataError(folder, "has no summary.json", expected)
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(path, f"cannot be read as JSON ({e})", expected) from None
    if not isinstance(summary, dict):
        raise DataError(path, "does not hold a JSON object", expected)
    for name, kind in _SUMMARY_FIELDS.items():
        value = summary.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise DataError(path, f"field {name!r} is missing or not {kind.__name__}", expected)
    metrics: dict[str, float] = {}
    for key, value in summary["metrics"].items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise DataError(path, f"metric {key!r} = {value!r} is not a number", expected)
        metrics[key] = math.nan if value is None else float(value)
    return {**summary, "metrics": metrics}


def display_name(method: str) -> str:
    """The short name of a method as recorded in a ``summary.json``.

    Evaluations written before names were short (issue 12) recorded a checkpoint's path,
    ``"/abs/runs/a (best)"`` or ``"/abs/x.safetensors"``; such a name is shortened as
    :func:`cloudfree.runs.short_name` does (``"a (best)"``, ``"x"``); any other
    name is returned unchanged.
    """
    match = re.fullmatch(r"(.*?)((?: \([^()/\\]*\))?)", method)
    base, suffix = (match.group(1), match.group(2)) if match else (method, "")
    if "/" not in base and "\\" not in base:
        return method
    path = Path(base.replace("\\", "/"))
    if path.suffix == ".safetensors":
        from cloudfree.runs import short_name

        return short_name(path)
    return f"{path.name}{suffix}"


_PSNR_NOTE: dict[str, str] = {
    "psnr": "the mean of per-patch PSNRs",
    "psnr_mean_rmse": "20 log10(1 / mean RMSE), as the paper's Table 1",
}


def table_psnr(summary: Mapping[str, Any]) -> str:
    """The PSNR key of a summary's table: as recorded, else its protocol's."""
    recorded = summary.get("table_psnr")
    if recorded is not None:
        return str(recorded)
    proto = ALL_PROTOCOLS.get(str(summary.get("protocol")))
    return "psnr" if proto is None else proto.psnr_key


def patch_counts(summary: Mapping[str, Any]) -> str:
    """How many patches an evaluation used, skipped (bad: unreadable, or values that are not
    DN or dB) and left out (unusable by the method, e.g. without S1 for a SAR model), and
    why."""
    skipped = summary.get("skipped", 0)
    text = f"{summary['count']} patches evaluated, {skipped} skipped as bad"
    if skipped and summary.get("skipped_example"):
        text += f" (the first: {summary['skipped_example']})"
    left = describe_left_out(summary["count"], summary.get("left_out", {}))
    return f"{text}; {left}" if left else text


def _left_out_mark(summary: Mapping[str, Any]) -> str:
    """``", 13 left out"`` for an evaluation that could not use some patches, else ""."""
    n = sum(summary.get("left_out", {}).values())
    return f", {n} left out" if n else ""


def compare(run_dirs: Sequence[str | Path], include_published: bool = True) -> str:
    """Assemble several evaluations, and the matching published numbers, into one table.

    Each evaluation is a row ``"<method> (<protocol>, <split>, n=<count>)"`` in the given order
    (a hybrid model's row also names its inpainting: ``"<method> [hybrid: mask-fill + DSen2-CR]
    (...)"``).
    Published rows (:data:`PUBLISHED`) follow, marked "(published) <name> [<source>]", for the
    protocols the evaluations used only. Under the table, a note warns when the evaluations
    used different protocols (their numbers are not comparable) and the sources of the
    published rows are cited.

    Args:
        run_dirs: evaluation folders, each holding ``summary.json`` (see :func:`read_summary`).
        include_published: add the published reference rows.

    Returns:
        Markdown: the table, then the notes.

    Raises:
        DataError: a folder has no valid ``summary.json``.
        ValueError: no folder given.
    """
    if not run_dirs:
        raise ValueError("compare needs at least one evaluation folder")
    summaries = [read_summary(d) for d in run_dirs]
    rows: list[tuple[str, Mapping[str, float]]] = []
    for s in summaries:
        # The count is in the name; the metrics' own "count" (from metrics.aggregate) is dropped
        # so that the table has no extra column.
        values = {k: v for k, v in s["metrics"].items() if k != COUNT_KEY}
        values = table_values(values, table_psnr(s))
        # A hybrid's inpainting is part of what it is (issue 11): say it in its row.
        kind = f" [hybrid: {s['inpaint']} + DSen2-CR]" if s.get("inpaint") else ""
        rows.append(
            (
                f"{display_name(s['method'])}{kind} ({s['protocol']}, {s['split']}, "
                f"n={s['count']}{_left_out_mark(s)})",
                values,
            )
        )
    # Two evaluations of one method on the same protocol and split: tell them apart by folder.
    labels = [label for label, _ in rows]
    rows = [
        (f"{label} [{Path(d).name}]" if labels.count(label) > 1 else label, values)
        for (label, values), d in zip(rows, run_dirs, strict=True)
    ]

    protocols = list(dict.fromkeys(s["protocol"] for s in summaries))
    shown: list[dict[str, Any]] = []
    if include_published:
        for name, ref in PUBLISHED.items():
            if ref["protocol"] in protocols:
                rows.append((f"(published) {name} [{ref['tag']}]", ref["values"]))
                shown.append(ref)

    notes: list[str] = []
    counts = {s["count"] + sum(s.get("left_out", {}).values()) for s in summaries}
    for s in summaries:
        if s.get("left_out"):
            notes.append(
                f"{display_name(s['method'])}: {describe_left_out(s['count'], s['left_out'])}; "
                "its row is over the patches it could use."
            )
    if len({s["count"] for s in summaries}) > 1 and len(counts) == 1:
        notes.append("Note: the rows are over different numbers of patches (n); compare with care.")
    if len(protocols) > 1:
        notes.append(
            f"Note: these evaluations used different protocols ({', '.join(protocols)}); "
            "numbers from different protocols are not comparable."
        )
    psnr_notes = {p: _PSNR_NOTE[table_psnr({"protocol": p})] for p in protocols}
    notes.append(
        "PSNR column: "
        + "; ".join(f"{p} rows {how}" for p, how in psnr_notes.items())
        + " (cloudfree.evaluate.protocols)."
    )
    for tag in dict.fromkeys(ref["tag"] for ref in shown):
        ref = next(r for r in shown if r["tag"] == tag)
        notes.append(f"[{tag}] {ref['source']}; protocol {ref['protocol']!r}: {ref['note']}.")
    notes.append(
        f"{MISSING} = not reported; {UNDEFINED} = undefined (an empty area, e.g. recon over cloud-free patches)."
    )
    return format_table(rows) + "\n" + "\n\n".join(notes) + "\n"
