"""What the viewer may show: the patches of an index, the predictions folder, and nothing else.

Requests name things by id (a patch's row number or its id ``ROIs1970_fall_136_p100``, a method
name, a scene id); ids are looked up in tables built at start-up, never joined onto a path. Every
file is still checked before it is opened: its path, with symlinks resolved, must lie inside the
dataset root or the predictions folder (:meth:`Catalog.checked`), so a symlink or an index row
pointing elsewhere is refused.

Predictions layout (``--predictions DIR``):

- each subfolder of DIR is one method, named after the folder (files directly in DIR form a
  method named after DIR itself, so DIR may also be a single ``cloudfree evaluate`` folder);
- in a method folder (searched recursively), a GeoTIFF whose name contains a patch's id
  (``ROIs1970_fall_136_p100.tif``) or is named like one of its release files
  (``ROIs1970_fall_s2_cloudy_136_p100.tif``) is that method's prediction for the patch: 13-band
  DN like the cloudy input;
- every other GeoTIFF is a whole scene (e.g. written by ``cloudfree predict``): it opens as a
  zoomable view drawn from tiles, never read whole;
- an optional ``per_patch.csv`` written by ``cloudfree evaluate`` gives the method's metrics per
  patch (matched on its ``id`` column).
"""

from __future__ import annotations

import csv
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.data.release.index import IndexResult, IndexRow, read_index
from cloudfree.errors import CloudfreeError, DataError, DatasetNotFoundError
from cloudfree.io import split_archive_path

#: What the completeness filter accepts.
COMPLETENESS: tuple[str, ...] = ("any", "triplet", "no_s1", "no_target", "incomplete")
#: Patch-id pattern in prediction file names: release (with kind) or flat names.
_PATCH_IN_NAME = re.compile(
    r"(?P<roi_season>ROIs\d+_[A-Za-z]+)_(?:(?:s2_cloudy|s2|s1)_)?(?P<scene>\d+)_p(?P<patch>\d+)"
)
_TIF = (".tif", ".tiff")
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")
#: Non-metric columns of per_patch.csv.
_ID_COLUMNS = ("id", "roi_season", "scene", "patch", "season")


class NotFound(CloudfreeError):
    """The requested patch, method, scene or file does not exist (HTTP 404)."""


class Forbidden(CloudfreeError):
    """A file lies outside the dataset root and the predictions folder (HTTP 403)."""


class LRU:
    """A small thread-safe least-recently-used cache of computed values."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = compute()  # outside the lock: two threads may compute once each, harmlessly
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class Method:
    """One folder of predictions (files and metrics per patch id), or a live method.

    A live method (``cloudfree view --checkpoint SPEC``) has no files: ``runner`` (a
    :class:`cloudfree.methods.base.Method`) predicts a patch when it is first shown.
    """

    name: str
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    runner: Any = None

    def has(self, row: IndexRow) -> bool:
        """Whether this method has (or can make) a prediction for ``row``."""
        if self.runner is None:
            return row.id in self.files
        return bool(row.s2_cloudy) and (not self.runner.include_sar or bool(row.s1))


@dataclass(frozen=True)
class Scene:
    """A whole-scene GeoTIFF of the predictions folder.

    ``kind``: ``"prediction"`` (written by ``cloudfree predict`` or ``inpaint``), ``"mask"``
    (1 band of classes: ``mask``, ``--mask-out``), or ``"image"`` (anything else). A prediction
    knows its ``input`` (the S2 its ``source`` tag names) and its ``mask`` (a mask of the
    folder made from the same input), when they exist.
    """

    id: str
    name: str
    method: str
    path: Path
    kind: str = "image"
    input: Path | None = None
    mask: Path | None = None


def _pair_scenes(scenes: list[Scene]) -> list[Scene]:
    """Each prediction with its input and its mask (the masks made from the same input),
    read from the ``source`` tags cloudfree writes."""
    from dataclasses import replace

    from cloudfree.viewer.layers import output_kind, output_tags

    tags = {s.id: output_tags(s.path) for s in scenes}
    # A standard deviation is shown as any image is.
    kinds = {s.id: output_kind(tags[s.id]) for s in scenes}
    out = [replace(s, kind="image" if kinds[s.id] == "std" else kinds[s.id]) for s in scenes]
    masks = {tags[s.id].get("source"): s.path for s in out if s.kind == "mask"}
    paired = []
    for s in out:
        source = tags[s.id].get("source")
        if s.kind == "prediction" and source:
            src = Path(source)
            paired.append(replace(s, input=src if src.is_file() else None,
                                  mask=masks.get(source)))  # fmt: skip
        else:
            paired.append(s)
    return paired


def load_index(root: str | os.PathLike[str]) -> IndexResult:
    """An index CSV (``cloudfree index --out``) or a dataset folder (indexed on the fly)."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        return read_index(root)
    from cloudfree.data.release.discover import build_index

    return build_index(root)


def _read_metrics(path: Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if "id" not in (reader.fieldnames or []):
            raise DataError(path, "has no 'id' column", "a per_patch.csv of 'cloudfree evaluate'")
        for rec in reader:
            vals: dict[str, float] = {}
            for k, v in rec.items():
                if k in _ID_COLUMNS or k is None:
                    continue
                try:
                    x = float(v)
                except (TypeError, ValueError):
                    continue
                vals[k] = x if math.isfinite(x) else float("nan")
            out[rec["id"]] = vals
    return out


def scan_predictions(
    folder: str | os.PathLike[str], patch_ids: set[str]
) -> tuple[dict[str, Method], list[Scene]]:
    """Find methods, per-patch predictions and scenes in a predictions folder (see module doc)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "predictions folder does not exist", "a folder of GeoTIFFs")
    candidates = [(folder.name, folder, False)]
    candidates += [(d.name, d, True) for d in sorted(folder.iterdir()) if d.is_dir()]
    methods: dict[str, Method] = {}
    scenes: list[Scene] = []
    used: set[str] = set()
    for name, d, recursive in candidates:
        files = sorted(d.rglob("*") if recursive else d.iterdir())
        m = Method(name, d)
        for f in files:
            if f.suffix.lower() not in _TIF or not f.is_file():
                continue
            hit = _PATCH_IN_NAME.search(f.stem)
            pid = f"{hit['roi_season']}_{int(hit['scene'])}_p{int(hit['patch'])}" if hit else ""
            if pid in patch_ids:
                m.files.setdefault(pid, f)
            else:
                sid = _SAFE_ID.sub("_", f"{name}.{f.stem}")
                while sid in used:
                    sid += "_"
                used.add(sid)
                scenes.append(Scene(sid, f.name, name, f))
        if (d / "per_patch.csv").is_file():
            m.metrics = _read_metrics(d / "per_patch.csv")
        if m.files or m.metrics:
            methods[name] = m
    return methods, _pair_scenes(scenes)


class Catalog:
    """The index, the predictions, their allowed roots, and the caches of derived data.

    Args:
        root: dataset folder or index CSV.
        predictions: predictions folder (see the module docstring), or None.
        mask_cache: how many cloud masks to keep in memory.
        checkpoints: methods that predict live (weights names, files, run folders, baselines:
            :func:`cloudfree.methods.load.load_method`), each patch when first shown.
        device: where those run.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        predictions: str | os.PathLike[str] | None = None,
        mask_cache: int = 64,
        checkpoints: Sequence[str] = (),
        device: str = "auto",
    ) -> None:
        try:
            self.index = load_index(root)
        except DatasetNotFoundError:
            if predictions is None or not Path(root).is_dir():
                raise
            # A folder of whole scenes (the inputs of predict), not a dataset: no patches;
            # its files may be shown beside their predictions.
            self.index = IndexResult(rows=[], root=Path(root))
        self.rows: list[IndexRow] = list(self.index.rows)
        self.by_id = {r.id: n for n, r in enumerate(self.rows)}
        self.data_root = Path(self.index.root).resolve()
        self.roots = [self.data_root]
        self.methods: dict[str, Method] = {}
        self.scenes: dict[str, Scene] = {}
        if predictions is not None:
            self.predictions_root = Path(predictions).resolve()
            self.roots.append(self.predictions_root)
            methods, scenes = scan_predictions(self.predictions_root, set(self.by_id))
            self.methods = methods
            self.scenes = {s.id: s for s in scenes}
        self.masks = LRU(mask_cache)
        self.overviews = LRU(16)
        self.live = LRU(32)  # (row, method) -> (prediction DN, metrics or None, std or None)
        for spec in checkpoints:
            from cloudfree.methods.load import load_method

            runner = load_method(spec, device=device)
            name = runner.name if runner.name not in self.methods else f"{runner.name} (live)"
            self.methods[name] = Method(name, self.data_root, runner=runner)
        self._cloud: dict[int, float | None] = {}
        self._cloud_lock = threading.Lock()

    # ------------------------------------------------------------------ look-ups by id
    def row(self, pid: str) -> tuple[int, IndexRow]:
        """A patch by row number (``"3"``) or id (``"ROIs1970_fall_136_p100"``)."""
        if pid.isdigit() and int(pid) < len(self.rows):
            return int(pid), self.rows[int(pid)]
        if pid in self.by_id:
            return self.by_id[pid], self.rows[self.by_id[pid]]
        raise NotFound(f"no patch {pid!r} in the index")

    def method(self, name: str) -> Method:
        if name not in self.methods:
            raise NotFound(f"no prediction method {name!r}")
        return self.methods[name]

    def scene(self, sid: str) -> Scene:
        if sid not in self.scenes:
            raise NotFound(f"no scene {sid!r}")
        return self.scenes[sid]

    # ------------------------------------------------------------------ the file check
    def allowed(self, path: str | os.PathLike[str]) -> bool:
        """Whether :meth:`checked` accepts ``path`` (it exists inside an allowed root)."""
        try:
            self.checked(path)
        except (NotFound, Forbidden):
            return False
        return True

    def checked(self, path: str | os.PathLike[str]) -> Path:
        """The path, after checking that it exists inside an allowed root (symlinks resolved).

        Paths into archives (``x.tar.gz/member.tif``) are checked on the archive file.

        Raises:
            NotFound: the file does not exist.
            Forbidden: it resolves to a place outside the dataset root and predictions folder.
        """
        parts = split_archive_path(path)
        real = Path(parts[0] if parts else path)
        try:
            resolved = real.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"file not found: {Path(path).name}") from None
        except (OSError, RuntimeError):  # symlink loops
            raise Forbidden(f"cannot resolve {Path(path).name}") from None
        if not any(resolved == r or resolved.is_relative_to(r) for r in self.roots):
            raise Forbidden(f"{Path(path).name} lies outside the dataset and predictions folders")
        if not resolved.is_file():
            raise NotFound(f"not a file: {Path(path).name}")
        # open what was checked, so a symlink swapped after the check is not followed
        return Path(path) if parts else resolved

    def file(self, row: IndexRow, kind: str) -> Path:
        """The checked path of one kind of file of a patch."""
        if not row.path(kind):
            raise NotFound(f"patch {row.id} has no {kind} file")
        return self.checked(self.index.root / row.path(kind))

    # ------------------------------------------------------------------ live methods
    def live_prediction(self, n: int, name: str) -> tuple[np.ndarray, dict[str, float] | None]:
        """A live method's prediction of patch ``n``, (13, H, W) float32 DN, and its metrics
        against the target (None without one), computed once and cached (LRU)."""
        pred, scores, _ = self._live(n, name)
        return pred, scores

    def _live(
        self, n: int, name: str
    ) -> tuple[np.ndarray, dict[str, float] | None, np.ndarray | None]:
        """Prediction, metrics and (a method with a variance) standard deviation, cached.

        The method sees what ``cloudfree evaluate`` gives it: the cloudy input and S1 scaled
        by its protocol, and the DSen2-CR cloud/shadow mask of the cloudy input.
        """
        m, row = self.method(name), self.rows[n]
        if m.runner is None or not m.has(row):
            raise NotFound(f"method {name!r} cannot predict patch {row.id} (missing inputs)")

        def compute() -> tuple[np.ndarray, dict[str, float] | None, np.ndarray | None]:
            from cloudfree.bands import S2_DN_PER_REFLECTANCE
            from cloudfree.evaluate.run import score_patch
            from cloudfree.io import read_raster
            from cloudfree.masks.patch import patch_mask
            from cloudfree.methods.model import predict_dn

            cloudy = read_raster(self.file(row, "s2_cloudy"))[0].astype(np.float32)
            mask = patch_mask(cloudy)
            s1 = None
            if m.runner.include_sar:
                s1 = read_raster(self.file(row, "s1"))[0].astype(np.float32)
            std = None
            if m.runner.predicts_variance:
                pred, var = predict_dn(m.runner, cloudy, s1, mask, variance=True)
                std = np.sqrt(var) / S2_DN_PER_REFLECTANCE  # DN^2 -> reflectance
            else:
                pred = predict_dn(m.runner, cloudy, s1, mask)
            scores = None
            if row.s2:  # scored by evaluate's own code (its paper protocol): one answer
                target = read_raster(self.file(row, "s2"))[0]
                scores = score_patch(pred, cloudy, target, mask)
            return pred, scores, std

        return self.live.get((n, name), compute)

    def live_uncertainty(self, n: int, name: str) -> np.ndarray:
        """A live method's predicted standard deviation of patch ``n``, (13, H, W) float
        reflectance (computed with its prediction, cached).

        Raises:
            NotFound: the method predicts no variance, or cannot predict this patch.
        """
        m = self.method(name)
        if m.runner is None or not m.runner.predicts_variance:
            raise NotFound(f"method {name!r} predicts no uncertainty (no variance output)")
        std = self._live(n, name)[2]
        assert std is not None  # computed for every method that predicts a variance
        return std

    def uncertain_methods(self) -> list[str]:
        """Live methods that predict a variance (their uncertainty is a layer)."""
        return sorted(k for k, m in self.methods.items()
                      if m.runner is not None and m.runner.predicts_variance)  # fmt: skip

    # ------------------------------------------------------------------ masks and filters
    def mask(self, n: int, max_size: int = 1024) -> np.ndarray:
        """Cloud/shadow mask (H, W) uint8 of a patch's cloudy input, cached (LRU)."""

        def compute() -> np.ndarray:
            from cloudfree.masks.patch import patch_mask
            from cloudfree.viewer.layers import read_display

            arr, _ = read_display(self.file(self.rows[n], "s2_cloudy"), max_size=max_size)
            return patch_mask(arr)

        return self.masks.get((n, max_size), compute)

    def cloud_fraction(self, n: int) -> float | None:
        """Share of the patch the mask flags as cloud or shadow; None if it cannot be computed."""
        with self._cloud_lock:
            if n in self._cloud:
                return self._cloud[n]
        try:
            value: float | None = float(np.mean(self.mask(n) != 0))
        except CloudfreeError:
            value = None  # no cloudy input, L2A without B10, unreadable: unknown cover
        with self._cloud_lock:
            self._cloud[n] = value
        return value

    def known_cloud(self, n: int) -> float | None:
        """The cloud fraction if already computed (never computes)."""
        with self._cloud_lock:
            return self._cloud.get(n)

    def select(
        self,
        split: str = "",
        season: str = "",
        scene: str = "",
        completeness: str = "any",
        cloud_min: float = 0.0,
        cloud_max: float = 1.0,
    ) -> list[int]:
        """Row numbers passing every filter; the cloud filter computes masks only when narrowed.

        ``scene`` is ``<roi_season>_<scene>`` (``ROIs1970_fall_136``). A patch whose cloud cover
        is unknown is dropped by a narrowed cloud filter.
        """
        if completeness not in COMPLETENESS:
            raise ValueError(f"unknown completeness {completeness!r}; expected {COMPLETENESS}")
        out = []
        for n, r in enumerate(self.rows):
            if (split and r.split != split) or (season and r.season != season):
                continue
            if scene and f"{r.roi_season}_{r.scene}" != scene:
                continue
            kinds = set(r.kinds)
            if completeness == "triplet" and not r.complete:
                continue
            if completeness == "no_s1" and kinds != {"s2", "s2_cloudy"}:
                continue
            if completeness == "no_target" and kinds != {"s1", "s2_cloudy"}:
                continue
            if completeness == "incomplete" and r.complete:
                continue
            out.append(n)
        if cloud_min > 0.0 or cloud_max < 1.0:
            keep = []
            for n in out:
                c = self.cloud_fraction(n)
                if c is not None and cloud_min <= c <= cloud_max:
                    keep.append(n)
            out = keep
        return out

    def summary(self, n: int) -> dict[str, Any]:
        r = self.rows[n]
        return {
            "n": n,
            "id": r.id,
            "roi_season": r.roi_season,
            "season": r.season,
            "scene": f"{r.roi_season}_{r.scene}",
            "patch": r.patch,
            "split": r.split,
            "kinds": list(r.kinds),
            "complete": r.complete,
            "cloud": self.known_cloud(n),
        }
