"""Several scenes in one call, split across processes (``--shard i/n`` or torchrun ranks).

Scenes come from a folder or a list file:

- a folder: every ``*.tif`` / ``*.tiff`` in it (not recursive), sorted by name, S2 only; with
  ``s1`` another folder, each S2 takes the S1 file of the same name there, if any;
- a list file (any other file): one scene per line, ``s2[,s1]`` (comma-separated; blank lines
  and lines starting with ``#`` are skipped; relative paths are relative to the list file's
  folder)::

      # s2, s1 (optional)
      T31TCJ_20230701.tif,S1_20230701.tif
      T31TCJ_20230716.tif

The output of ``DIR/name.tif`` is ``OUT/name_cloudfree.tif`` (``OUT/name_mask.tif`` for masks,
``name_std.tif`` for uncertainty maps);
existing outputs are skipped unless ``overwrite``. Sharding is deterministic: process ``i`` of
``n`` takes scenes ``i, i + n, i + 2n, ...`` of the sorted list, so any number of processes
(on as many GPUs: with ``device="auto"`` a torchrun process uses ``cuda:LOCAL_RANK``) covers
every scene exactly once with no communication.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudfree.errors import CloudfreeError, DataError
from cloudfree.outputs import check_output_dir, check_outputs

log = logging.getLogger(__name__)

TIF_SUFFIXES = (".tif", ".tiff")
OUT_SUFFIX = "_cloudfree.tif"
MASK_SUFFIX = "_mask.tif"
STD_SUFFIX = "_std.tif"


@dataclass(frozen=True)
class Scene:
    """One scene to predict: its S2 file and optional S1 file."""

    s2: Path
    s1: Path | None = None


def is_many(s2: str | os.PathLike[str]) -> bool:
    """True if ``s2`` names several scenes: a folder, or a file that is not a GeoTIFF."""
    p = Path(s2)
    return p.is_dir() or (p.is_file() and p.suffix.lower() not in TIF_SUFFIXES)


def list_scenes(
    s2: str | os.PathLike[str], s1: str | os.PathLike[str] | None = None
) -> list[Scene]:
    """The scenes named by a folder or a list file (see the module docstring), sorted by S2 path;
    a series folder (``s2/<date>.tif`` with ``s1/<date>.tif``, as ``cloudfree fetch`` writes)
    is its dates, each with its S1.

    Raises:
        DataError: missing folder / file, an empty list, a line with more than 2 fields, or
            ``s1`` given with a list file (the list says which S1 goes with which S2).
    """
    src = Path(s2)
    series = (
        src.is_dir()
        and (src / "s2").is_dir()
        and not any(p.suffix.lower() in TIF_SUFFIXES for p in src.iterdir())
    )
    if series:  # a series folder (cloudfree fetch): s2/<date>.tif, and s1/<date>.tif
        src, s1 = src / "s2", s1 if s1 is not None else (src / "s1" if (src / "s1").is_dir()
                                                          else None)  # fmt: skip
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in TIF_SUFFIXES)
        s1_dir = None if s1 is None else Path(s1)
        if s1_dir is not None and not s1_dir.is_dir():
            raise DataError(
                s1_dir, "is not a folder", "a folder of S1 files named like the S2 files"
            )
        scenes = [
            Scene(
                f, s1_dir / f.name if s1_dir is not None and (s1_dir / f.name).is_file() else None
            )
            for f in files
        ]
    elif src.is_file():
        if s1 is not None:
            raise DataError(s1, "given with a list file", "the S1 files in the list (s2,s1 lines)")
        scenes = []
        for n, line in enumerate(src.read_text().splitlines(), start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = [p.strip() for p in text.split(",")]
            if len(parts) > 2 or not parts[0]:
                raise DataError(src, f"line {n} ({text!r}) is not 's2[,s1]'", "s2[,s1] per line")
            s2p = (src.parent / parts[0]).resolve()
            s1p = (src.parent / parts[1]).resolve() if len(parts) == 2 and parts[1] else None
            scenes.append(Scene(s2p, s1p))
        scenes.sort(key=lambda s: str(s.s2))
    else:
        raise DataError(src, "does not exist", "a folder of S2 GeoTIFFs or a list file")
    if not scenes:
        raise DataError(src, "names no scene", "at least one S2 GeoTIFF (*.tif)")
    return scenes


def parse_shard(shard: str | None, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(index, count)`` of this process: from ``"i/n"``, else torchrun's RANK / WORLD_SIZE.

    Args:
        shard: ``"i/n"`` with ``0 <= i < n``, or None.
        env: environment to read (default ``os.environ``).

    Raises:
        ValueError: malformed ``shard`` or environment values.
    """
    env = os.environ if env is None else env
    if shard is None:
        if "WORLD_SIZE" not in env:
            return 0, 1
        text = f"{env.get('RANK', '0')}/{env['WORLD_SIZE']}"
    else:
        text = shard
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must be 'i/n' (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"shard {text!r}: need 0 <= i < n")
    return i, n


def shard_scenes(scenes: list[Scene], index: int, count: int) -> list[Scene]:
    """Scenes ``index, index + count, ...`` of the list (every scene in exactly one shard)."""
    return scenes[index::count]


def device_for_rank(device: str, env: Mapping[str, str] | None = None) -> str:
    """``"auto"`` under torchrun with CUDA -> ``cuda:LOCAL_RANK``; anything else unchanged."""
    env = os.environ if env is None else env
    if device == "auto" and "LOCAL_RANK" in env:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{int(env['LOCAL_RANK']) % torch.cuda.device_count()}"
    return device


def _is_output(path: Path, out_dirs: set[Path]) -> bool:
    """Whether ``path`` is a file this command writes (a folder predicted into itself: a second
    run must not predict its own outputs again, ``a_cloudfree_cloudfree.tif``)."""
    suffixes = (OUT_SUFFIX, MASK_SUFFIX, STD_SUFFIX)
    return path.resolve().parent in out_dirs and path.name.endswith(suffixes)


def output_path(out_dir: Path, s2: Path, suffix: str = OUT_SUFFIX) -> Path:
    """``OUT/<s2 stem><suffix>``."""
    return out_dir / f"{s2.stem}{suffix}"


def predict_many(
    s2: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    s1: str | os.PathLike[str] | None = None,
    *,
    shard: str | None = None,
    overwrite: bool = False,
    mask_dir: str | os.PathLike[str] | None = None,
    uncertainty_dir: str | os.PathLike[str] | None = None,
    summary: str | os.PathLike[str] | None = None,
    inputs: Sequence[str | os.PathLike[str] | None] = (),
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Predict every scene of this process's shard into ``out_dir``.

    Args:
        s2: folder or list file (module docstring); s1: a folder of S1 files (folder mode only).
        out_dir: output folder (created).
        shard: ``"i/n"``; None: torchrun's RANK / WORLD_SIZE, else all scenes.
        overwrite: predict even if the output exists.
        mask_dir: also write each scene's mask there (``<stem>_mask.tif``).
        uncertainty_dir: also write each scene's predicted standard deviation there
            (``<stem>_std.tif``, see ``predict_scene``'s ``uncertainty_out``).
        summary: the JSON file the caller writes afterwards (``--summary``): checked with the
            outputs, before any scene is predicted.
        inputs: other files the command reads (weights...), for the output guard.
        **kwargs: passed to :func:`cloudfree.predict.scene.predict_scene` (checkpoint, tile...).

    Returns:
        One dict per scene of the shard: ``{"s2", "out", "status": "done" | "skipped" |
        "failed", "error"?, **summary}``. A failed scene (bad input) does not stop the others;
        it leaves no output file.
    """
    from cloudfree.predict.scene import predict_scene

    out_dirs = {Path(d).resolve() for d in (out_dir, mask_dir, uncertainty_dir) if d is not None}
    scenes = [s for s in list_scenes(s2, s1) if not _is_output(s.s2, out_dirs)]
    if not scenes:
        raise DataError(s2, "names only cloudfree outputs", "S2 scenes to predict")
    index, count = parse_shard(shard)
    mine = shard_scenes(scenes, index, count)
    out_root = check_output_dir(out_dir, "--out")
    for flag, d in (("--mask-out", mask_dir), ("--uncertainty-out", uncertainty_dir)):
        if d is not None:
            check_output_dir(d, flag)
    read = [*inputs, *(s.s2 for s in scenes), *(s.s1 for s in scenes)]
    check_outputs({"--summary": summary}, read, example="summary.json")
    if count > 1:
        log.info("shard %d/%d: %d of %d scenes", index, count, len(mine), len(scenes))
    out_root.mkdir(parents=True, exist_ok=True)
    kwargs = dict(kwargs)
    kwargs["device"] = device_for_rank(kwargs.get("device", "auto"))
    results: list[dict[str, Any]] = []
    for scene in mine:
        out = output_path(out_root, scene.s2)
        row: dict[str, Any] = {"s2": str(scene.s2), "out": str(out)}
        if out.exists() and not overwrite:
            row["status"] = "skipped"
            results.append(row)
            continue
        mask = None if mask_dir is None else output_path(Path(mask_dir), scene.s2, MASK_SUFFIX)
        if uncertainty_dir is not None:
            Path(uncertainty_dir).mkdir(parents=True, exist_ok=True)
            kwargs["uncertainty_out"] = output_path(Path(uncertainty_dir), scene.s2, STD_SUFFIX)
        try:
            row.update(predict_scene(scene.s2, out, s1=scene.s1, mask_out=mask, **kwargs))
            row["status"] = "done"
        except CloudfreeError as e:
            log.error("%s failed: %s", scene.s2, e)
            row.update(status="failed", error=str(e))
        results.append(row)
    return results
