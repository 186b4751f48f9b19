"""``cloudfree replicate``: train and evaluate the five rows of the paper's Table 1, then the table.

The command a replication team runs on their GPUs (Meraner et al. 2020, Table 1; spec
section 8)::

    cloudfree replicate --data /data/sen12mscr_packed --out replication/
    torchrun --nproc_per_node=8 -m cloudfree.cli replicate --data ... --out ...   # 8 GPUs

For each row, in the paper's order, it trains the row's preset (``dsen2cr_sar_carl``,
``dsen2cr_sar_l1``, ``dsen2cr_nosar_carl``, ``dsen2cr_nosar_l1``, ``pix2pix``), then the two
hybrid rows of issue 11 (``hybrid_sar_carl``, ``hybrid_nosar_carl``: mask-fill inpainting then
DSen2-CR with CARL, which nobody has published), into ``OUT/runs/<preset>``, evaluates its best
checkpoint on the test split into ``OUT/eval/<preset>`` (per_patch.csv, summary.json,
table.md, report.html), and finally writes ``OUT/table.md``: our rows beside the paper's
published ones.

The hybrid rows train from packed shards holding the mask-fill inpainting of every patch
(``cloudfree pack --inpaint mask-fill``): given a pack, its inpainting is computed in place if
missing; given a root or an index, the data is packed into ``OUT/packed`` first (both resume).

It can be stopped and run again at any point: a row whose run finished is not trained again, a
run that was interrupted is resumed from its last checkpoint (``cloudfree train --resume``),
and an evaluation that finished after its run is not redone.

``--size tiny`` swaps each preset's network and crops for tiny ones (a few seconds per step on
a CPU): for smoke tests of the whole pipeline, not for results.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudfree.errors import CloudfreeError


@dataclass(frozen=True)
class Row:
    """One row of the paper's Table 1: its label there and the preset that trains it."""

    label: str  # as in the paper and in cloudfree.evaluate.table.PUBLISHED
    preset: str  # a cloudfree.config.PRESETS name


#: The paper's Table 1 rows, in its order (spec section 8).
PAPER_ROWS: tuple[Row, ...] = (
    Row("DSen2-CR, L_CARL", "dsen2cr_sar_carl"),
    Row("DSen2-CR, L_T", "dsen2cr_sar_l1"),
    Row("DSen2-CR, L_CARL, no SAR", "dsen2cr_nosar_carl"),
    Row("DSen2-CR, L_T, no SAR", "dsen2cr_nosar_l1"),
    Row("pix2pix", "pix2pix"),
)
#: The hybrid of issue 11 (mask-fill inpainting, then DSen2-CR with CARL): unpublished rows.
HYBRID_ROWS: tuple[Row, ...] = (
    Row("Hybrid (mask-fill + DSen2-CR), L_CARL", "hybrid_sar_carl"),
    Row("Hybrid (mask-fill + DSen2-CR), L_CARL, no SAR", "hybrid_nosar_carl"),
)
#: Every row ``replicate`` runs by default, in the order of its table.
ROWS: tuple[Row, ...] = PAPER_ROWS + HYBRID_ROWS
SIZES: tuple[str, ...] = ("paper", "tiny")

# Tiny networks for smoke runs: DSen2-CR with 2 blocks of 16 features, a 5-level U-Net of
# width 8 (32-px crops are its minimum), batch 4, 2 epochs (the last one with pix2pix's LR decay).
_TINY_COMMON = (
    "data.crop_size=32", "data.num_workers=0", "train.batch_size=4", "train.epochs=2",
    "train.checkpoint_every=5", "train.log_every=1",
)  # fmt: skip
_TINY_DSEN2CR = ("model.num_layers=2", "model.feature_size=16")
_TINY_PIX2PIX = ("model.num_layers=5", "model.feature_size=8", "optim.decay_epochs=1")


def data_overrides(data: str | os.PathLike[str]) -> list[str]:
    """The ``data.*`` override that points a training config at ``data``.

    A folder with ``manifest.json`` is packed shards (``data.packed``), a ``.csv`` file an index
    (``data.index``), any other folder a SEN12MS-CR root indexed on the fly (``data.root``).
    """
    from cloudfree.data.source import data_kind

    path = Path(data)
    return [f"data.{data_kind(path)}={path}"]


def hybrid_data(data: str | os.PathLike[str], out: Path, method: str = "mask-fill") -> Path:
    """A pack of ``data`` holding the ``method`` inpainting the hybrid rows train from.

    A pack gets the inpainting computed in place if it lacks it; a root or an index is packed
    into ``out / "packed"`` first (with its cloud masks). Both steps resume.

    Raises:
        CloudfreeError: under torchrun with the inpainting missing (prepare it once, before).
    """
    from cloudfree.data.packed.inpaint_cache import fill_inpainting, inpaint_complete
    from cloudfree.data.packed.shards import read_manifest
    from cloudfree.data.source import data_kind

    path = Path(data)
    if data_kind(path) != "packed":
        target = out / "packed"
        if (
            target.is_dir()
            and data_kind(target) == "packed"
            and inpaint_complete(read_manifest(target, complete=False), method)
        ):
            return target
        _single_process(f"cloudfree pack INDEX --out {target} --inpaint {method}")
        from cloudfree.data.packed.pack import pack

        index = path
        if path.is_dir():
            from cloudfree.data.release.discover import build_index
            from cloudfree.data.release.index import write_index

            index = out / "index.csv"
            if not index.is_file():
                write_index(build_index(path), index)
        print(f"[replicate] hybrid rows: packing {data} into {target}", flush=True)
        pack(index, target)
        path = target
    if not inpaint_complete(read_manifest(path), method):
        _single_process(f"cloudfree pack INDEX --out {path} --inpaint {method}")
        print(f"[replicate] hybrid rows: caching the {method} inpainting in {path}", flush=True)
        fill_inpainting(path, method)
    return path


def _single_process(command: str) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise CloudfreeError(
            "the hybrid rows need packed shards with the inpainting of every patch, and "
            f"torchrun ranks must not compute it concurrently: run '{command}' once before, "
            "then replicate with --data on that pack"
        )


def row_config(row: Row, data: str | os.PathLike[str], out: Path, size: str,
               overrides: Sequence[str] = ()) -> Any:  # fmt: skip
    """The resolved training config of ``row`` (a :class:`cloudfree.config.Config`); for a
    hybrid row ``data`` must be a pack with its inpainting (:func:`hybrid_data`)."""
    from cloudfree.config import load_config

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
    extra: list[str] = []
    if size == "tiny":
        model = _TINY_PIX2PIX if row.preset == "pix2pix" else _TINY_DSEN2CR
        extra = [*_TINY_COMMON, *model]
    return load_config(
        row.preset,
        [
            *data_overrides(data),
            f"train.out_dir={out / 'runs'}",
            f"train.run_name={row.preset}",
            *extra,
            *overrides,
        ],
    )


def _finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").is_file()


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def replicate(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    size: str = "paper",
    rows: Sequence[str] | None = None,
    eval_data: str | os.PathLike[str] | None = None,
    split: str = "test",
    protocol: str = "paper",
    device: str = "auto",
    overrides: Sequence[str] = (),
    report: bool = True,
) -> dict[str, Any]:
    """Train and evaluate the paper's rows and write ``OUT/table.md`` (see the module doc).

    Args:
        data: training data: SEN12MS-CR root, index CSV or packed folder (the official ROI
            split decides train / val / test).
        out: output folder (``runs/``, ``eval/``, ``table.md``, ``replicate.json``).
        size: ``"paper"`` (the presets as published) or ``"tiny"`` (smoke runs).
        rows: presets to run (default all five, see :data:`ROWS`), in the paper's order.
        eval_data: data to evaluate on (default ``data``); e.g. unpacked files for the test set.
        split: evaluation split (the paper: ``"test"``).
        protocol: evaluation protocol (``cloudfree.evaluate.protocols``; the paper's by default).
        device: where evaluation runs (training follows ``train.device``).
        overrides: extra ``section.key=value`` config overrides applied to every row (e.g.
            ``train.epochs=1``).
        report: write each evaluation's HTML report.

    Returns:
        ``{"table": path of table.md, "rows": {preset: {"run", "eval", "metrics"}}}``.

    Raises:
        ValueError: unknown row, size or override.
        CloudfreeError: unusable data, or a training / evaluation failure (the message says
            which row; finished rows are kept and the next call resumes).
    """
    from cloudfree.evaluate.run import evaluate
    from cloudfree.evaluate.table import PUBLISHED, format_table, read_summary
    from cloudfree.outputs import check_output_dir
    from cloudfree.runs import find_latest
    from cloudfree.train.loop import train

    out = check_output_dir(out, "--out", [data])
    known = {r.preset: r for r in ROWS}
    chosen = list(rows) if rows else [r.preset for r in ROWS]
    unknown = [p for p in chosen if p not in known]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; expected some of {list(known)}")
    selected = [r for r in ROWS if r.preset in chosen]
    for r in selected:  # the overrides are checked before anything is packed or trained
        row_config(r, data, out, size, overrides)
    hybrid_pack = None
    if any(r in HYBRID_ROWS for r in selected):
        hybrid_pack = hybrid_data(data, out)
    configs = {
        r.preset: row_config(
            r,
            hybrid_pack if hybrid_pack is not None and r in HYBRID_ROWS else data,
            out,
            size,
            overrides,
        )
        for r in selected
    }  # fail early

    results: dict[str, dict[str, Any]] = {}
    # All training first (every rank), then evaluation on rank 0 alone: under torchrun the
    # other ranks are then free, instead of waiting at the next row's rendezvous.
    for row in selected:
        cfg = configs[row.preset]
        run_dir = Path(cfg.train.out_dir) / row.preset
        results[row.preset] = {"run": str(run_dir), "eval": str(out / "eval" / row.preset)}
        if _finished(run_dir):
            continue
        resume = run_dir if find_latest(run_dir) is not None else None
        if _is_main():
            what = f"resuming {run_dir}" if resume else f"training into {run_dir}"
            print(f"[replicate] {row.label}: {what}", flush=True)
        try:
            train(cfg, resume=resume)
        except CloudfreeError as e:
            raise CloudfreeError(f"row {row.label!r} ({row.preset}): {e}") from e
    if not _is_main():
        return {"table": None, "rows": results}

    for row in selected:
        run_dir, eval_dir = Path(results[row.preset]["run"]), Path(results[row.preset]["eval"])
        summary = eval_dir / "summary.json"
        done = summary.is_file() and (
            summary.stat().st_mtime >= (run_dir / "summary.json").stat().st_mtime
        )
        if not done:
            print(f"[replicate] {row.label}: evaluating on the {split} split", flush=True)
            evaluate(str(run_dir), eval_data if eval_data is not None else data, eval_dir,
                     split=split, protocol=protocol, device=device, report=report)  # fmt: skip
        results[row.preset]["metrics"] = read_summary(eval_dir)["metrics"]

    table_rows: list[tuple[str, dict[str, float]]] = []
    for row in selected:
        values = {k: v for k, v in results[row.preset]["metrics"].items() if k != "count"}
        table_rows.append((f"{row.label} (ours, {size})", values))
    for row in selected:
        ref = PUBLISHED.get(row.label)
        if ref is not None and ref["protocol"] == protocol:
            table_rows.append((f"(published) {row.label} [{ref['tag']}]", ref["values"]))
    text = (
        f"# Replication of DSen2-CR Table 1 ({size} size, {protocol} protocol, {split} split)\n\n"
        + format_table(table_rows)
        + "\n\nOur rows: cloudfree presets "
        + ", ".join(r.preset for r in selected)
        + f", trained on {data}. Published rows: Meraner et al. 2020, Table 1."
        + (
            " The hybrid rows (cloud mask, inpainting, then DSen2-CR) have no published counterpart."
            if hybrid_pack
            else ""
        )
        + ("" if size == "paper" else " Tiny networks: a smoke test of the pipeline, not results.")
        + "\n"
    )
    from cloudfree.io import atomic_path

    table = out / "table.md"
    with atomic_path(table) as tmp:
        tmp.write_text(text)
    with atomic_path(out / "replicate.json") as tmp:
        tmp.write_text(json.dumps({"size": size, "protocol": protocol, "split": split,
                                   "data": str(data), "rows": results}, indent=2) + "\n")  # fmt: skip
    return {"table": str(table), "rows": results}
