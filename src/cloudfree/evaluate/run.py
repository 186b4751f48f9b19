"""``cloudfree evaluate``: per-patch metrics of a method on a dataset, streamed to disk.

:func:`evaluate` runs a method (a checkpoint or a named baseline,
:func:`cloudfree.methods.load.load_method`) over the full 256x256 patches of a split and
writes, in ``out``:

- ``per_patch.csv``: one row per patch (:data:`PER_PATCH_COLUMNS`, and for a method that predicts
  a variance the calibration columns of :mod:`cloudfree.evaluate.calibration`, whose UCE, AUCE
  and bins go to the summary's ``uncertainty``), appended as each batch is
  done, under a temporary name renamed at the end (an interrupted run leaves no
  ``per_patch.csv`` that looks complete);
- ``summary.json``: NaN-aware means of every metric, overall, by season and by cloud-cover bin;
- ``table.md``: the same in the layout of DSen2-CR's Table 1
  (:func:`cloudfree.evaluate.table.format_table`);
- with ``report=True`` (default), ``report.html``, ``distributions.png``, ``examples.png`` and
  ``examples.csv`` (:mod:`cloudfree.evaluate.report`).

Memory stays flat however many patches are evaluated: rows go to disk as they are computed and
only running sums are kept for the means (issue 5, "streams"). The report adds one dataset
index per patch (8 bytes) and, after the pass, re-runs the method on the few example patches it
shows instead of keeping predictions.

Cloud mask: the reprod/recon split uses the DSen2-CR cloud/shadow mask
(:func:`cloudfree.masks.patch.patch_mask`, spec section 3) of each full cloudy patch,
computed from its DN (network value x scale, rounded to uint16); methods that need a mask
(``mask-fill``) get the same one as ``batch["mask"]``. ``cloud_fraction`` is the share of
pixels the mask flags (cloud or shadow: the recon area, as
:func:`cloudfree.metrics.compute` defines it) and ``shadow_fraction`` the share flagged as
shadow, both over the window the protocol evaluates.
"""

from __future__ import annotations

import array
import contextlib
import csv
import datetime as dt
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, cast

import numpy as np

from cloudfree.arrays import as_numpy
from cloudfree.bands import SEASONS, Scaling, get_scaling
from cloudfree.errors import DataError
from cloudfree.evaluate.calibration import UNCERTAINTY_COLUMNS
from cloudfree.evaluate.protocols import EvalProtocol, centre_window, get_protocol
from cloudfree.evaluate.report import REPORT_FILES
from cloudfree.evaluate.table import (
    CLOUD_BINS,
    HEADERS,
    cloud_bin,
    format_table,
    patch_counts,
    table_values,
    with_psnr_mean_rmse,
)
from cloudfree.masks.patch import batch_mask
from cloudfree.metrics import METRIC_KEYS, compute
from cloudfree.metrics.mean import NanMean
from cloudfree.outputs import check_output_dir, created_folder

#: Columns of ``per_patch.csv``: identity of the patch, then the mask fractions, then every
#: metric key of :mod:`cloudfree.metrics` (``cloud_fraction`` once).
PER_PATCH_COLUMNS: Final[tuple[str, ...]] = (
    "id",
    "roi_season",
    "scene",
    "patch",
    "season",
    "cloud_fraction",
    "shadow_fraction",
    *(k for k in METRIC_KEYS if k != "cloud_fraction"),
)
#: Files an evaluation writes into its ``--out`` folder, the report's included.
EVALUATION_FILES: Final[tuple[str, ...]] = ("per_patch.csv", "summary.json", "table.md",
                                            *REPORT_FILES)  # fmt: skip
#: Numeric columns averaged in ``summary.json``.
SUMMARY_KEYS: Final[tuple[str, ...]] = (*METRIC_KEYS, "shadow_fraction")


def _json_safe(x: Any) -> Any:
    """NaN and +-inf -> None (strict JSON has neither), recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def open_dataset(
    data: str | os.PathLike[str], split: str | None, include_sar: bool, scaling: str
) -> Any:
    """The eval-mode, full-patch dataset of a root folder, an index CSV or a packed folder.

    Each sample carries the DSen2-CR cloud/shadow mask of its raw cloudy DN (``"mask"``,
    ``SampleConfig(mask="crop")`` on the whole patch): the mask training's validation uses and
    the original code computes, so that ``evaluate`` and ``val_*_recon`` split a patch alike.

    Args:
        data: a SEN12MS-CR root (indexed on the fly), an index CSV written by
            ``cloudfree index``, or a folder written by ``cloudfree pack`` (has manifest.json).
        split: ``"train"``, ``"val"``, ``"test"`` or None for every patch.
        include_sar: read S1 too (the method's input).
        scaling: network scaling of the method (``"dsen2cr"``).

    Raises:
        DataError / DatasetNotFoundError: ``data`` is none of these, or holds no usable patch.
    """
    from cloudfree.data.sample import SampleConfig

    cfg = SampleConfig(
        mode="eval", crop_size=None, include_sar=include_sar, scaling=scaling, mask="crop"
    )
    from cloudfree.data.source import data_kind

    path = Path(data)
    kind = data_kind(path)
    if kind == "packed":
        from cloudfree.data.packed.dataset import PackedDataset

        return PackedDataset(path, split=split, config=cfg, require_target=True)
    from cloudfree.data.release.dataset import SEN12MSCR

    if kind == "index":
        # patch_size=None: read each patch's size from its header (any square size).
        return SEN12MSCR(path, split=split, config=cfg, require_target=True, patch_size=None)
    from cloudfree.data.release.discover import build_index

    index = build_index(path)
    return SEN12MSCR(index, split=split, config=cfg, require_target=True, patch_size=None)


def _model_info(method: Any) -> dict[str, Any]:
    """``{"model": registry name, "weights": file}`` of a network method (plus ``"inpaint"``
    for a hybrid): the row's short name in tables, its full provenance here."""
    model = getattr(method, "model", None)
    name = getattr(model, "registry_name", None)
    if name is None:
        return {}
    info: dict[str, Any] = {"model": name}
    if getattr(method, "path", None) is not None:
        info["weights"] = str(Path(method.path).resolve())
    inpaint = getattr(getattr(model, "config", None), "inpaint", None)
    if inpaint is not None:
        info["inpaint"] = inpaint
    return info


def patch_rows(
    batch: Mapping[str, Any],
    pred: Any,
    mask: np.ndarray,
    protocol: EvalProtocol,
    scaling: Scaling,
    var: Any = None,
) -> Iterator[dict[str, Any]]:
    """Per-patch rows (:data:`PER_PATCH_COLUMNS`) of one evaluated batch.

    Args:
        batch: collated samples (``s2_cloudy`` and ``s2`` (B, 13, H, W) network scale, ids).
        pred: (B, 13, H, W) prediction, network scale (tensor or array).
        mask: (B, H, W) uint8 cloud/shadow mask, 0 clear / 1 cloud / 2 shadow.
        protocol: window and clipping applied to every array before the metrics.
        scaling: the protocol the network values are in (:attr:`Scaling.reflectance_per_unit`
            turns them into reflectance).
        var: (B, 13, H, W) predicted variance (network units squared), or None; adds the
            columns of :data:`cloudfree.evaluate.calibration.UNCERTAINTY_COLUMNS`.
    """
    from cloudfree.evaluate.calibration import patch_uncertainty

    to_refl = scaling.reflectance_per_unit
    v_all = None if var is None else centre_window(
        as_numpy(var).astype(np.float64) * to_refl**2, protocol.crop)  # fmt: skip
    p_all = as_numpy(pred).astype(np.float64) * to_refl
    t_all = as_numpy(batch["s2"]).astype(np.float64) * to_refl
    i_all = as_numpy(batch["s2_cloudy"]).astype(np.float64) * to_refl
    if protocol.clip_prediction:
        p_all = np.clip(p_all, 0.0, 1.0)
    p_all, t_all, i_all, m_all = (
        centre_window(a, protocol.crop) for a in (p_all, t_all, i_all, mask)
    )
    for b in range(p_all.shape[0]):
        roi_season = str(batch["roi_season"][b])
        m = m_all[b]
        metrics = compute(p_all[b], t_all[b], i_all[b], m, ssim_padding=protocol.ssim_padding)
        if v_all is not None:
            metrics.update(patch_uncertainty(p_all[b], t_all[b], v_all[b]))
        yield {
            "id": str(batch["id"][b]),
            "roi_season": roi_season,
            "scene": int(batch["scene"][b]),
            "patch": int(batch["patch"][b]),
            "season": roi_season.rsplit("_", 1)[-1],
            "shadow_fraction": float((m == 2).mean()),
            **metrics,
        }


def _save_predictions(out: Path, batch: Mapping[str, Any], pred: Any, scaling: Scaling) -> None:
    """Write each patch's prediction as ``out/<id>.tif`` (see :func:`evaluate`)."""
    from affine import Affine
    from rasterio.crs import CRS

    from cloudfree.bands import S2_BANDS, S2_DN_PER_REFLECTANCE
    from cloudfree.io import RasterMeta, write_raster

    dn_per_unit = scaling.reflectance_per_unit * S2_DN_PER_REFLECTANCE
    values = as_numpy(pred).astype(np.float64) * dn_per_unit
    for b, pid in enumerate(batch["id"]):
        dn = np.clip(np.rint(values[b]), 0, 65535).astype(np.uint16)
        t = as_numpy(batch["transform"][b]) if "transform" in batch else np.full(6, np.nan)
        crs = str(batch["crs"][b]) if "crs" in batch else ""
        georef = bool(crs) and bool(np.isfinite(t).all())
        meta = RasterMeta(
            width=dn.shape[2], height=dn.shape[1], count=dn.shape[0], dtype="uint16",
            crs=CRS.from_user_input(crs) if georef else None,
            transform=Affine(*t) if georef else None,
        )  # fmt: skip
        write_raster(out / f"{pid}.tif", dn, meta, descriptions=S2_BANDS, compress="deflate")


def score_patch(
    pred_dn: np.ndarray,
    cloudy_dn: np.ndarray,
    target_dn: np.ndarray,
    mask: np.ndarray,
    protocol: str = "paper",
) -> dict[str, float]:
    """The metrics ``cloudfree evaluate`` reports for one patch (its :data:`METRIC_KEYS`
    columns of ``per_patch.csv``), from (13, H, W) digital numbers: the input and the target
    scaled and clipped as the dataset gives them to ``evaluate``, the protocol's window and
    clipping (:func:`patch_rows`). The viewer scores its live predictions with it, so that
    both give one answer.

    Args:
        pred_dn: the prediction, DN (any real dtype); cloudy_dn, target_dn: the cloudy input
            and the cloud-free target as read from their files, DN.
        mask: (H, W) uint8 DSen2-CR mask of the cloudy input (0 clear, 1 cloud, 2 shadow).
        protocol: ``"paper"``, ``"leaderboard"`` or ``"glf-cr"``.
    """
    from cloudfree.data.preprocess import normalize_s2

    scaling = get_scaling("dsen2cr")
    batch = {
        "s2": normalize_s2(np.asarray(target_dn), scaling)[None],
        "s2_cloudy": normalize_s2(np.asarray(cloudy_dn), scaling)[None],
        "id": [""], "roi_season": ["_"], "scene": [0], "patch": [0],
    }  # fmt: skip
    # The network's float32 values, as a model's output reaches patch_rows (not clipped).
    pred = (np.asarray(pred_dn, dtype=np.float32) / np.float32(scaling.s2_scale))[None]
    row = next(patch_rows(batch, pred, np.asarray(mask)[None], get_protocol(protocol), scaling))
    return {k: row[k] for k in METRIC_KEYS}


class _Indexed:
    """A map-style dataset whose samples also carry their index (``"index"``), to find them again."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        sample = self.dataset[i]
        return None if sample is None else {**sample, "index": i}


def _cell(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def evaluate(
    method: str | os.PathLike[str] | Any,
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    split: str | None = "test",
    protocol: str = "paper",
    batch_size: int | None = None,
    device: str = "auto",
    limit: int | None = None,
    include_sar: bool | None = None,
    report: bool = True,
    sd_weights: str | None = None,
    backend: str = "auto",
    mask_backend: str = "dsen2cr",
    keep: Sequence[str | os.PathLike[str]] = (),
    progress: bool = False,
    save_predictions: bool = False,
) -> dict[str, Any]:
    """Evaluate a method on the full patches of a split; write per_patch.csv, summary.json, table.md.

    Args:
        method: a weights name (:mod:`cloudfree.weights`), a checkpoint (``.safetensors``), a
            run folder, or a baseline name (``"identity"``, ``"mask-fill"``, ...), see
            :func:`~cloudfree.methods.load.load_method`;
            or an already loaded ``Method`` object (``name``, ``include_sar``, ``scaling``,
            ``predict(batch)``).
        data: a dataset root, an index CSV or a packed folder (:func:`open_dataset`).
        out: output folder (created).
        split: ``"train"``, ``"val"``, ``"test"``, or None for every patch.
        protocol: ``"paper"``, ``"leaderboard"`` or ``"glf-cr"``
            (:mod:`cloudfree.evaluate.protocols`).
        batch_size: patches per forward pass; None: 4 on CPU, what fits 40 % of the free
            memory on CUDA (:func:`cloudfree.predict.plan.plan_batch`, up to 16).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... for the method.
        limit: evaluate only the first ``limit`` patches of the split.
        include_sar: read S1 for the method; None = what the method needs.
        report: also write ``report.html`` and its figures
            (:mod:`cloudfree.evaluate.report`: the method is re-run on the example patches);
            False removes those of an earlier evaluation in ``out``, now out of date.
        sd_weights: folder of a Stable Diffusion inpainting pipeline, for the
            ``"stable-diffusion"`` baseline and hybrids trained on its inpainting.
        backend: a model's inference backend (``"auto"``, ``"torch"``, ``"openvino"``:
            :func:`cloudfree.models.runtime.resolve_backend`).
        mask_backend: the mask given to the methods that read one (inpainting, hybrids):
            ``"dsen2cr"``, each patch's DSen2-CR mask, as in training; another masker
            (:class:`~cloudfree.methods.masked.OtherMask`) gives them what a whole-scene
            command would. The cloudy and clear areas of the metrics are the DSen2-CR mask's
            either way.
        keep: other files and folders the caller was given, which ``out`` must not write
            over (``compare``'s evaluation folders).
        progress: show a progress bar over the patches (the command line does).
        save_predictions: also write each patch's prediction as ``out/<id>.tif`` (uint16 DN,
            the patch's georeferencing), beside ``per_patch.csv``: ``cloudfree view ROOT
            --predictions PARENT`` then shows them with their metrics. Without it, such files
            of an earlier evaluation in ``out`` are removed (they would not match the rows).

    Returns:
        The summary written to ``summary.json``: ``method``, ``protocol``, ``split``, ``count``
        (patches evaluated), ``skipped`` (unreadable patches), ``metrics`` (NaN-aware mean per
        key of :data:`SUMMARY_KEYS`), ``by_season`` and ``by_cloud_bin`` (``{label: {key:
        mean, ..., "count": n}}``), ``data``, ``created_utc``, ``cloudfree_version``. Means
        that are NaN (never defined) or infinite are ``None`` in the JSON file, NaN/inf in
        the returned dict.

    Raises:
        DataError / DatasetNotFoundError: unusable ``data``; KeyError: unknown protocol;
        ValueError: bad ``limit`` or ``batch_size``, or patches smaller than the protocol's crop.
    """
    import torch
    from torch.utils.data import DataLoader, Subset

    from cloudfree import __version__
    from cloudfree.data.collate import collate_skip_bad
    from cloudfree.io import atomic_path

    proto = get_protocol(protocol)
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    # Before any work: no file of the data, of the method's weights or of the training run
    # they come from is written over (an evaluation into the run folder would replace its
    # summary.json).
    given: list[str | os.PathLike[str] | None] = [data, *keep]
    if isinstance(method, str | os.PathLike):
        from cloudfree.runs import run_folder_of

        given += [method, run_folder_of(method)]
    out = check_output_dir(out, "--out", given, writes=EVALUATION_FILES)
    if isinstance(method, str | os.PathLike):
        from cloudfree.methods.load import load_method

        m = load_method(str(method), device, sd_weights=sd_weights, backend=backend)
    else:  # an already loaded Method (e.g. from Python)
        m = method
    if mask_backend != "dsen2cr":
        from cloudfree.methods.masked import OtherMask

        m = OtherMask(m, mask_backend)
    if batch_size is None:
        from cloudfree.predict.plan import plan_batch

        dev = getattr(m, "device", None)
        # On CPU batching does not speed a forward (NNPACK convolves image by image) but
        # amortises the per-call overhead of small models: 4, as measured before.
        on_cuda = dev is not None and dev.type == "cuda"
        batch_size = plan_batch(m, 256 * 256, dev) if dev is not None and on_cuda else 4
    scaling_name = str(getattr(m, "scaling", "dsen2cr"))  # duck-typed methods too
    scaling = get_scaling(scaling_name)
    sar = bool(m.include_sar) if include_sar is None else bool(include_sar)
    dataset = dataset_all = open_dataset(data, split, sar, scaling_name)
    total = len(dataset)
    if limit is not None and limit < total:
        dataset = Subset(dataset, range(limit))
        total = limit
    loader: DataLoader[Any] = DataLoader(
        cast(Any, _Indexed(dataset)),  # map-style: __len__ and __getitem__
        batch_size=batch_size,
        shuffle=False,
        num_workers=0,
        collate_fn=collate_skip_bad,
    )

    # All or nothing: per_patch.csv, summary.json and table.md are staged and renamed together
    # (a full disk leaves none of them), and a folder this call created is removed on failure.
    with created_folder(out), contextlib.ExitStack() as staged:
        overall = NanMean(SUMMARY_KEYS)
        by_season: dict[str, NanMean] = {}
        by_bin: dict[str, NanMean] = {}
        row_index = array.array("q")  # dataset index of each row of per_patch.csv (for the report)
        uncertain = bool(getattr(m, "predicts_variance", False))
        columns = PER_PATCH_COLUMNS + (UNCERTAINTY_COLUMNS if uncertain else ())
        unc: dict[str, array.array] = {k: array.array("d") for k in UNCERTAINTY_COLUMNS}
        # Predictions an earlier `evaluate --save-predictions` left here (looked for once).
        stale = not save_predictions and any(out.glob("*.tif"))
        per_patch = staged.enter_context(atomic_path(out / "per_patch.csv"))
        with open(per_patch, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            from tqdm.auto import tqdm

            bar = staged.enter_context(
                tqdm(
                    total=total,
                    unit="patch",
                    desc=f"evaluate {getattr(m, 'name', method)}",
                    disable=not progress,
                    smoothing=0.1,
                )  # fmt: skip
            )
            for batch in loader:
                if batch is None:  # every sample of the batch unreadable (counted below)
                    bar.update(batch_size)
                    continue
                bar.update(len(batch["id"]))
                indices = batch.pop("index").tolist()
                mask = batch_mask(batch)
                var = None
                with torch.no_grad():
                    if uncertain:
                        pred, var = m.predict_variance(batch)
                    else:
                        pred = m.predict(batch)
                if save_predictions:
                    _save_predictions(out, batch, pred, scaling)
                elif stale:  # an earlier evaluation's predictions would not match these rows
                    for pid in batch["id"]:
                        (out / f"{pid}.tif").unlink(missing_ok=True)
                rows = patch_rows(batch, pred, mask, proto, scaling, var)
                for i, row in zip(indices, rows, strict=True):
                    row_index.append(i)
                    writer.writerow([_cell(row[c]) for c in columns])
                    if uncertain:
                        for k in UNCERTAINTY_COLUMNS:
                            unc[k].append(row[k])
                    overall.add(row)
                    by_season.setdefault(row["season"], NanMean(SUMMARY_KEYS)).add(row)
                    by_bin.setdefault(cloud_bin(row["cloud_fraction"]), NanMean(SUMMARY_KEYS)).add(
                        row
                    )
                f.flush()
            if overall.count == 0:  # raised before any file is renamed into place
                why = getattr(dataset_all, "first_bad", None)
                raise DataError(
                    data,
                    f"none of the {total} patches of split {split or 'all'} could be evaluated "
                    "(each one skipped is warned about above)"
                    + (f"; the first: {why}" if why else ""),
                )

        # Group order as cloudfree.evaluate.table.breakdown: seasons in calendar order, then every
        # cloud bin (an empty one with count 0 and undefined means).
        seasons = [s for s in SEASONS if s in by_season] + sorted(set(by_season) - set(SEASONS))
        empty = NanMean(SUMMARY_KEYS)
        summary: dict[str, Any] = {
            "method": str(getattr(m, "name", method)),
            "protocol": proto.name,
            "split": split if split is not None else "all",
            "count": overall.count,
            "skipped": total - overall.count,
            # Why: the first bad patch's message (each one was warned about).
            "skipped_example": getattr(dataset_all, "first_bad", None),
            # Patches of the split the method cannot use (a SAR model: those without S1).
            "left_out": dict(getattr(dataset_all, "left_out", {})),
            "metrics": with_psnr_mean_rmse(overall.means()),
            "by_season": {s: with_psnr_mean_rmse(by_season[s].summary()) for s in seasons},
            "by_cloud_bin": {
                b: with_psnr_mean_rmse(by_bin.get(b, empty).summary())
                for b in (cloud_bin(lo / 100.0) for lo, _ in CLOUD_BINS)
            },
            # How every column was computed (averaging, clipping, SSIM variant), and which PSNR
            # the protocol's table shows.
            "columns": proto.columns(),
            "table_psnr": proto.psnr_key,
            # The mask the method was given (the metrics' areas are the DSen2-CR mask's).
            "method_mask": getattr(m, "mask_backend", "dsen2cr"),
            "data": str(data),
            **_model_info(m),
            **({"uncertainty": _uncertainty_summary(unc)} if uncertain else {}),
            "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cloudfree_version": __version__,
        }
        staged.enter_context(atomic_path(out / "summary.json")).write_text(
            json.dumps(_json_safe(summary), indent=2, allow_nan=False) + "\n"
        )
        staged.enter_context(atomic_path(out / "table.md")).write_text(
            format_report(summary, proto)
        )
        staged.close()  # the three renames

        from cloudfree.evaluate.examples import write_examples
        from cloudfree.evaluate.report import REPORT_FILES, write_report

        for name in REPORT_FILES:  # never leave figures of an earlier evaluation beside new rows
            (out / name).unlink(missing_ok=True)
        if report:
            write_examples(out, m, dataset, row_index, proto, scaling_name)
            write_report(out, summary)
        return summary


def _uncertainty_summary(unc: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """Calibration of the predicted variances (:mod:`cloudfree.evaluate.calibration`)."""
    from cloudfree.evaluate.calibration import calibration

    cal = calibration(unc["var_mean"], unc["error_mean"], unc["se_mean"])
    v = np.asarray(unc["var_mean"], dtype=np.float64)
    finite = v[np.isfinite(v)]
    cal["mean_var"] = float(finite.mean()) if finite.size else math.nan
    cal["rms_std"] = float(np.sqrt(finite.mean())) if finite.size else math.nan
    return cal


def format_report(summary: Mapping[str, Any], protocol: EvalProtocol) -> str:
    """``table.md``: the Table-1 row of the method, then the season and cloud-cover breakdowns."""
    parts = [
        f"# {summary['method']} on {summary['data']} (split {summary['split']})",
        "",
        f"Protocol `{protocol.name}`: {protocol.description}.",
        f"Comparable with: {protocol.comparable_with}.",
        patch_counts(summary) + ".",
        "",
        format_table(
            [(str(summary["method"]), table_values(summary["metrics"], protocol.psnr_key))]
        ).rstrip(),
    ]
    unc = summary.get("uncertainty")
    if unc:
        parts += [
            "",
            "## Uncertainty calibration",
            "",
            "| UCE | AUCE | RMS predicted std | patches |",
            "|---|---|---|---|",
            f"| {unc['uce']:.4f} | {unc['auce']:.4f} | {unc['rms_std']:.4f} | {unc['patches']} |",
            "",
            "Reflectance; UCE / AUCE as UnCRtainTS computes them (20 bins of the per-patch mean "
            "variance; cloudfree.evaluate.calibration). 0 is perfect calibration.",
        ]
    for title, key in (("By season", "by_season"), ("By cloud cover", "by_cloud_bin")):
        groups = summary[key]
        if groups:
            parts += [
                "",
                f"## {title}",
                "",
                format_table(
                    [(k, table_values(v, protocol.psnr_key)) for k, v in groups.items()]
                ).rstrip(),
            ]
    parts += ["", "## How each column was computed", ""]
    parts += [f"- {HEADERS.get(k, k)}: {how}." for k, how in protocol.columns().items()]
    return "\n".join(parts) + "\n"


def run_evaluate_cli(
    method: str,
    data: str,
    out: str,
    split: str | None = "test",
    protocol: str = "paper",
    batch_size: int | None = None,
    device: str = "auto",
    limit: int | None = None,
    report: bool = True,
    sd_weights: str | None = None,
    backend: str = "auto",
    mask_backend: str = "dsen2cr",
    progress: bool = True,
    save_predictions: bool = False,
) -> int:
    """Handler of ``cloudfree evaluate``: run :func:`evaluate` and print ``table.md``.

    ``report=False`` skips ``report.html`` and its figures (see :func:`evaluate`).

    Returns:
        0 (errors propagate as exceptions for the CLI to report).
    """
    evaluate(
        method,
        data,
        out,
        split=split,
        protocol=protocol,
        batch_size=batch_size,
        device=device,
        limit=limit,
        report=report,
        sd_weights=sd_weights,
        backend=backend,
        mask_backend=mask_backend,
        progress=progress,
        save_predictions=save_predictions,
    )
    print((Path(out) / "table.md").read_text(), end="")
    also = " and report.html" if report else ""
    print(f"wrote {Path(out) / 'per_patch.csv'}, summary.json, table.md{also}")
    return 0
