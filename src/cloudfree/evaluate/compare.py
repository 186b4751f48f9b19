"""``cloudfree compare``: evaluation folders (and methods evaluated on the spot) side by side.

The table itself is :func:`cloudfree.evaluate.table.compare`'s, from the folders' summaries;
this module adds the command: methods named with ``--checkpoint`` are evaluated first
(:func:`cloudfree.evaluate.run.evaluate`), then compared with the given folders.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from cloudfree.evaluate.run import evaluate
from cloudfree.evaluate.table import compare
from cloudfree.io import atomic_path


def run_compare_cli(
    run_dirs: Sequence[str],
    out: str | None,
    include_published: bool,
    checkpoints: Sequence[str] = (),
    data: str | None = None,
    split: str | None = "test",
    protocol: str = "paper",
    batch_size: int | None = None,
    device: str = "auto",
    limit: int | None = None,
    eval_out: str | None = None,
    coverage: str = "s2cloudless",
) -> int:
    """``cloudfree compare [EVAL_DIR ...] [--checkpoint SPEC ... --data DIR] [--out FILE]``.

    Args:
        run_dirs: evaluation folders (``cloudfree evaluate --out``).
        out: also write the Markdown to this file (atomically), if given.
        include_published: add the published reference rows (``--no-published`` turns it off).
        checkpoints: methods to evaluate first (:func:`cloudfree.evaluate.run.evaluate`,
            without the HTML report) on ``data``; their rows follow ``run_dirs``' rows.
        data, split, protocol, batch_size, device, limit: of those evaluations; ``data`` may
            be a SEN12MS-CR-TS index or pack (``coverage``: its masker; protocol
            ``sen12mscr-ts``, :func:`cloudfree.evaluate.series.evaluate_series_dir`).
        eval_out: keep those evaluations in ``eval_out/<short name>/``; None: a temporary
            folder, removed afterwards.

    Returns:
        0 on success; bad folders raise :class:`cloudfree.errors.DataError`.
    """
    import tempfile

    from cloudfree.errors import CloudfreeError

    if not run_dirs and not checkpoints:
        raise CloudfreeError(
            "compare needs evaluation folders (cloudfree evaluate --out DIR) or --checkpoint "
            "SPEC with --data DIR"
        )
    if checkpoints and data is None:
        raise CloudfreeError("--checkpoint needs --data: the dataset to evaluate it on")
    from cloudfree.outputs import check_output_dir, check_outputs

    # Before any evaluation: a bad output path is an error now, not after an hour's work.
    from cloudfree.runs import run_folder_of

    given = [*run_dirs, data, *checkpoints, *(run_folder_of(c) for c in checkpoints)]
    check_outputs({"--out": out}, given, example="table.md")
    if eval_out is not None:
        check_output_dir(eval_out, "--eval-out", given)
    with tempfile.TemporaryDirectory(prefix="cloudfree-compare-") as tmp:
        dirs: list[str | Path] = list(run_dirs)
        if data is not None:
            from cloudfree.data.source import series_kind

            if series_kind(data) is not None:
                dirs += _evaluate_series_all(checkpoints, Path(eval_out or tmp), data,
                                             split or "all", device, limit, coverage)  # fmt: skip
            else:
                dirs += _evaluate_all(checkpoints, Path(eval_out or tmp), data, split,
                                      protocol, batch_size, device, limit, keep=given)  # fmt: skip
        text = compare(dirs, include_published=include_published)
    print(text, end="")
    if out is not None:
        with atomic_path(out) as tmp_out:
            tmp_out.write_text(text, encoding="utf-8")
    return 0


def _evaluate_series_all(
    specs: Sequence[str],
    root: Path,
    data: str,
    split: str,
    device: str,
    limit: int | None,
    coverage: str,
) -> list[Path]:
    """Each method of ``specs`` on the series of ``data`` into ``root/<slug of the spec>``."""
    from cloudfree.evaluate.series import evaluate_series_dir
    from cloudfree.methods.load import load_method

    # All loaded first (a misspelt name fails before any evaluation has run), and once.
    methods = [load_method(spec, device=device, series=True) for spec in specs]
    folders = []
    for i, (spec, method) in enumerate(zip(specs, methods, strict=True)):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(spec).stem or spec).strip("-")
        folder = root / (slug or f"method-{i}")
        if folder in folders:
            folder = root / f"{folder.name}-{i}"
        folders.append(folder)
        evaluate_series_dir(method, data, folder, split=split, coverage=coverage, limit=limit,
                            device=device, progress=False)  # fmt: skip
    return folders


def _evaluate_all(
    specs: Sequence[str],
    root: Path,
    data: str,
    split: str | None,
    protocol: str,
    batch_size: int | None,
    device: str,
    limit: int | None,
    keep: Sequence[str | Path | None] = (),
) -> list[Path]:
    """Evaluate each method of ``specs`` into ``root/<slug of its short name>``, writing over
    none of ``keep`` (the folders and files the command was given)."""
    # All loaded first: a misspelt name fails before any evaluation has run.
    from cloudfree.evaluate.run import EVALUATION_FILES
    from cloudfree.methods.load import load_method
    from cloudfree.outputs import check_output_dir

    methods = [load_method(spec, device=device) for spec in specs]
    folders: list[Path] = []
    for i, method in enumerate(methods):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", method.name).strip("-") or f"method-{i}"
        folder = root / slug
        if folder in folders:
            folder = root / f"{slug}-{i}"
        folders.append(folder)
    kept = [k for k in keep if k is not None]
    for folder in folders:  # every folder checked before the first evaluation
        check_output_dir(folder, "--eval-out", [data, *kept], writes=EVALUATION_FILES)
    for method, folder in zip(methods, folders, strict=True):
        evaluate(method, data, folder, split=split, protocol=protocol, batch_size=batch_size,
                 device=device, limit=limit, report=False, keep=kept)  # fmt: skip
    return folders
