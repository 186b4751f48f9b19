"""SEN12MS-CR-TS series as training and evaluation samples: input dates and a clear target.

One item per patch of the split (a place, 30 dates): the sampler
(:mod:`cloudfree.data.timeseries.sampling`) picks ``n_input`` input dates and the target date
from the cloud coverage of each date (:mod:`cloudfree.data.timeseries.coverage`), as upstream
(``fixed``: the same dates at every epoch, for validation and test; ``random``: drawn anew
from ``seed``, the epoch and the item, for training). A sample holds, in the network scaling
(``cloudfree.bands``; ``"reflectance"`` is upstream's ``rescale_method='default'``):

- ``s2_series`` (T, 13, H, W) float32, the input dates in time order, and ``s1_series``
  (T, 2, H, W) their S1 (with ``include_sar``);
- ``dates`` (T,) int64: days of each input's S2 acquisition from the target's (negative
  before it); ``coverage`` (T,) float32 the inputs' cloud coverage;
- ``s2_days`` (T,) int64 (and with SAR ``s1_days``): each input's S2 (S1) acquisition in days
  since Sentinel-1A's launch, the absolute time UnCRtainTS encodes (upstream's ``S2 TD``,
  ``S1 TD``);
- ``s2`` (13, H, W): the target date's S2, the reference;
- ``s2_cloudy`` (13, H, W) and (with SAR) ``s1`` (2, H, W): the least cloudy input date (the
  earliest of equals) and its S1, so that every one-date method runs on the same samples (the
  benchmark's "least cloudy" baseline is the identity on them);
- ``id`` (``ROIs1970/21/12``: ROI and patch), ``input_t`` and ``target_t`` (time points),
  ``match`` (the requested coverages were met);
- with ``masker``: ``masks_series`` (T, H, W) uint8, each input's cloud mask as the coverage
  computes it (:func:`~cloudfree.data.timeseries.coverage.upstream_cloud_mask`; what the
  temporal methods read), and ``mask`` (H, W) that of the least cloudy input (what one-date
  methods and the reconstruction / reproduction split of the metrics read).

Patches missing a date of S2 (or of S1, with SAR) are left out and counted by reason in
``left_out``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cloudfree.data.left_out import LEFT_OUT_REASONS
from cloudfree.data.timeseries.names import TIME_POINTS, days_since_s1_launch
from cloudfree.data.timeseries.sampling import (
    CLEAR_THRESHOLD,
    SAMPLERS,
    DateSample,
    fixed_sample,
    random_sample,
)

#: Why a series is left out when one of its 30 S2 dates is missing.
NO_S2_DATE = "a date of S2 missing (each series needs all 30)"


class SeriesDataset(Dataset[dict[str, Any]]):
    """SEN12MS-CR-TS samples of one split (module docstring).

    Args:
        root: the copy's folder (paths of the index are relative to it).
        rows: the index rows (:func:`~cloudfree.data.timeseries.index.read_ts_index`).
        coverage: ``{s2 path: cloud coverage}`` of every S2 file of the split, computed
            (:func:`~cloudfree.data.timeseries.coverage.compute_coverage`) or the authors'
            (:func:`~cloudfree.data.timeseries.samples.read_sample_file`, ``coverage_of``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        n_input: input dates per sample (upstream's ``input_t``; 3 for the published rows).
        sampler: ``"fixed"`` or ``"random"``.
        include_sar: read S1 (patches without every S1 date are left out).
        scaling: network scaling (``"reflectance"`` or ``"dsen2cr"``).
        min_cov, max_cov: coverage window of the ``fixed`` sampler's inputs.
        upstream_quirk: the ``fixed`` sampler as upstream, target possibly among the inputs.
        seed: base seed of the ``random`` sampler (with :meth:`set_epoch` and the item).
        samples: ``{(roi, patch): DateSample}`` fixing the dates of those patches.
        masker: ``"s2cloudless"`` or ``"dsen2cr"``: also give each input's cloud mask (the
            coverage's masker, for consistency); None: no masks.
        reader: how a file of the index is read, by its path in the index (default: the
            GeoTIFF under ``root``; a pack's :meth:`~cloudfree.data.timeseries.pack.
            PackedSeries.read`).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        rows: Sequence[Mapping[str, str]],
        coverage: Mapping[str, float],
        split: str = "test",
        n_input: int = 3,
        sampler: str = "fixed",
        include_sar: bool = True,
        scaling: str = "reflectance",
        min_cov: float = 0.0,
        max_cov: float = 1.0,
        upstream_quirk: bool = False,
        seed: int = 0,
        samples: Mapping[tuple[str, int], DateSample] | None = None,
        masker: str | None = None,
        reader: Callable[[str], np.ndarray] | None = None,
    ) -> None:
        from cloudfree.bands import get_scaling

        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
        if split not in ("train", "val", "test", "all"):
            raise ValueError(f"split must be train, val, test or all, got {split!r}")
        self.root = Path(root)
        self.n_input, self.sampler, self.include_sar = n_input, sampler, include_sar
        self.scaling = get_scaling(scaling)
        self.min_cov, self.max_cov, self.upstream_quirk = min_cov, max_cov, upstream_quirk
        self.seed, self.epoch = seed, 0
        self.samples = dict(samples or {})
        self.masker = masker
        self.reader = reader
        series: dict[tuple[str, int], dict[int, Mapping[str, str]]] = defaultdict(dict)
        for row in rows:
            if split in ("all", row["split"]):
                series[(row["roi"], int(row["patch"]))][int(row["t"])] = row
        #: (roi, patch) and its 30 rows in time order, for every complete patch
        self.patches: list[tuple[tuple[str, int], list[Mapping[str, str]]]] = []
        #: patches left out, by reason (as :mod:`cloudfree.data.left_out` counts them)
        self.left_out: dict[str, int] = {}
        for key in sorted(series):
            dates = series[key]
            if len(dates) < TIME_POINTS or not all(r["s2"] for r in dates.values()):
                why = NO_S2_DATE
            elif include_sar and not all(r["s1"] for r in dates.values()):
                why = LEFT_OUT_REASONS["s1"]
            else:
                self.patches.append((key, [dates[t] for t in range(TIME_POINTS)]))
                continue
            self.left_out[why] = self.left_out.get(why, 0) + 1
        missing = [r["s2"] for _, rs in self.patches for r in rs if r["s2"] not in coverage]
        if missing:
            raise ValueError(
                f"no cloud coverage for {len(missing)} S2 files (e.g. {missing[0]}); compute "
                "it for the split first (cloudfree.data.timeseries.coverage.compute_coverage)"
            )
        self.coverage = coverage

    def __len__(self) -> int:
        return len(self.patches)

    def set_epoch(self, epoch: int) -> None:
        """Draw other dates at the next epoch (``random`` sampler)."""
        self.epoch = int(epoch)

    def dates_of(self, i: int) -> DateSample:
        """The input and target time points of item ``i`` (no file is read)."""
        key = self.patches[i][0]
        if key in self.samples:
            return self.samples[key]
        cov = [self.coverage[r["s2"]] for r in self.patches[i][1]]
        if self.sampler == "random":
            rng = np.random.default_rng((self.seed, self.epoch, i))
            return random_sample(cov, self.n_input, rng, CLEAR_THRESHOLD)
        return fixed_sample(cov, self.n_input, self.min_cov, self.max_cov,
                            upstream_quirk=self.upstream_quirk)  # fmt: skip

    def __getitem__(self, i: int) -> dict[str, Any]:
        from cloudfree.data.preprocess import normalize_s1, normalize_s2

        (roi, patch), rows = self.patches[i]
        pick = self.dates_of(i)
        ins = list(pick.inputs)
        s2 = [self._read(rows[t]["s2"]) for t in ins]
        target = self._read(rows[pick.target]["s2"])
        day0 = date.fromisoformat(rows[pick.target]["s2_date"])
        days = [(date.fromisoformat(rows[t]["s2_date"]) - day0).days for t in ins]
        s2_days = [days_since_s1_launch(date.fromisoformat(rows[t]["s2_date"])) for t in ins]
        cov = np.array([self.coverage[rows[t]["s2"]] for t in ins], dtype=np.float32)
        least = int(np.argmin(cov))
        # NaN -> 0 after normalising, as upstream's process_MS / process_SAR (a missing S1
        # value is then the bottom of its dB range, not 0 dB)
        s2n = np.nan_to_num(np.stack([normalize_s2(x, self.scaling) for x in s2]))
        out: dict[str, Any] = {
            "s2_series": torch.from_numpy(s2n),
            "dates": torch.tensor(days, dtype=torch.int64),
            "s2_days": torch.tensor(s2_days, dtype=torch.int64),
            "coverage": torch.from_numpy(cov),
            "s2": torch.from_numpy(np.nan_to_num(normalize_s2(target, self.scaling))),
            "s2_cloudy": torch.from_numpy(s2n[least].copy()),
            "id": f"{roi}/{patch}",
            "input_t": torch.tensor(ins, dtype=torch.int64),
            "target_t": pick.target,
            "match": pick.match,
        }
        if self.masker is not None:
            from cloudfree.data.timeseries.coverage import upstream_cloud_mask

            masks = np.stack([upstream_cloud_mask(x, self.masker) for x in s2]).astype(np.uint8)
            out["masks_series"] = torch.from_numpy(masks)
            out["mask"] = torch.from_numpy(masks[least].copy())
        if self.include_sar:
            s1 = np.stack([normalize_s1(self._read(rows[t]["s1"]), self.scaling) for t in ins])
            s1 = np.nan_to_num(s1)
            out["s1_series"] = torch.from_numpy(s1)
            out["s1_days"] = torch.tensor(
                [days_since_s1_launch(date.fromisoformat(rows[t]["s1_date"])) for t in ins],
                dtype=torch.int64,
            )
            out["s1"] = torch.from_numpy(s1[least].copy())
        return out

    def _read(self, rel: str) -> np.ndarray:
        if self.reader is not None:
            return self.reader(rel)
        import rasterio

        from cloudfree.io import gdal_path

        with rasterio.open(gdal_path(self.root / rel)) as ds:
            return ds.read().astype(np.float32)
