"""SEN12MS-CR-TS samples (dates chosen by coverage, values, relative days, the one-date view)
and the cached cloud coverage (real eo-learn dates for the maskers)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cloudfree.data.timeseries.coverage import (
    compute_coverage,
    coverage_cache_path,
    read_coverage_cache,
    upstream_cloud_mask,
)
from cloudfree.data.timeseries.dataset import SeriesDataset
from cloudfree.data.timeseries.index import build_ts_index
from cloudfree.data.timeseries.names import TSFile, relative_path

EOLEARN = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "eolearn"


def _write(path: Path, values: np.ndarray, dtype: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    prof = dict(driver="GTiff", width=values.shape[2], height=values.shape[1],
                count=values.shape[0], dtype=dtype, crs="EPSG:32633",
                transform=from_origin(500000, 5000000, 10, 10))  # fmt: skip
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(values.astype(dtype))


def _copy(root: Path, patches=(0, 1), s1_missing_at: int | None = None, size: int = 4,
          roi: str = "ROIs1868/119") -> Path:  # fmt: skip
    """30 dates 10 days apart; S2 DN = 1000 + 10 t everywhere, S1 = -20 + t/10 dB (NaN in one
    pixel of every S1), the day after."""
    for patch in patches:
        for t in range(30):
            day = date(2018, 1, 1) + timedelta(days=10 * t)
            s2 = np.full((13, size, size), 1000 + 10 * t, dtype=np.float32)
            _write(root / relative_path(TSFile("s2", roi, t, day, patch)), s2,
                   "uint16")  # fmt: skip
            if t == s1_missing_at and patch == 1:
                continue
            s1 = np.full((2, size, size), -20 + t / 10, dtype=np.float32)
            s1[:, 0, 0] = np.nan
            _write(root / relative_path(TSFile("s1", roi, t, day + timedelta(1),
                                               patch)), s1, "float32")  # fmt: skip
    return root


def _dataset(root: Path, cov: list[float], **kw) -> SeriesDataset:  # noqa: ANN003
    index = build_ts_index(root)
    rows = index.rows()
    coverage = {r["s2"]: cov[int(r["t"])] for r in rows}
    return SeriesDataset(root, rows, coverage, split="test", **kw)


COV = [0.9] * 30
COV[4], COV[7], COV[12], COV[20] = 0.3, 0.5, 0.2, 0.0  # target 20; inputs in [0.1, 0.6]


def test_fixed_sample_values_dates_and_one_date_view(tmp_path: Path) -> None:
    ds = _dataset(_copy(tmp_path), COV, min_cov=0.1, max_cov=0.6)
    assert len(ds) == 2 and ds.left_out == {}
    s = ds[0]
    assert s["input_t"].tolist() == [4, 7, 12] and s["target_t"] == 20 and s["match"]
    assert s["id"] == "ROIs1868/119/0"
    # reflectance scaling: DN / 10000
    assert np.allclose(s["s2_series"][:, 0, 0, 0].numpy(), [0.104, 0.107, 0.112])
    assert np.allclose(s["s2"].numpy(), 0.12)
    assert s["dates"].tolist() == [-160, -130, -80]  # 10 days per time point, from the target
    # days since 2014-04-03 (UnCRtainTS's time): 2018-01-01 is day 1369; S1 a day later
    assert s["s2_days"].tolist() == [1369 + 40, 1369 + 70, 1369 + 120]
    assert s["s1_days"].tolist() == [1370 + 40, 1370 + 70, 1370 + 120]
    # the least cloudy input (date 12, 20 %) is the one-date view, with its own S1
    assert np.allclose(s["s2_cloudy"].numpy(), 0.112)
    vv = (-20 + 1.2 + 25) / 25  # [-25, 0] dB -> [0, 1]
    assert np.isclose(float(s["s1"][0, 1, 1]), vv) and float(s["s1"][0, 0, 0]) == 0.0  # NaN
    assert s["s1_series"].shape == (3, 2, 4, 4) and s["coverage"].tolist() == pytest.approx(
        [0.3, 0.5, 0.2])  # fmt: skip


def test_dates_given_for_a_patch_win(tmp_path: Path) -> None:
    from cloudfree.data.timeseries.sampling import DateSample

    ds = _dataset(_copy(tmp_path), COV, samples={("ROIs1868/119", 1): DateSample((0, 1), 2, True)})
    assert ds.dates_of(1) == DateSample((0, 1), 2, True) and ds.dates_of(0).target == 20
    assert ds[1]["dates"].tolist() == [-20, -10]


def test_patches_missing_a_date_are_left_out(tmp_path: Path) -> None:
    root = _copy(tmp_path, s1_missing_at=5)
    assert len(_dataset(root, COV)) == 1
    assert _dataset(root, COV).left_out == {"no S1 file (the model takes SAR)": 1}
    assert len(_dataset(root, COV, include_sar=False)) == 2  # S2 complete: usable without SAR
    assert "s1" not in _dataset(root, COV, include_sar=False)[0]


def test_random_dates_change_with_the_epoch_and_repeat_with_the_seed(tmp_path: Path) -> None:
    cov = [0.5] * 30
    for t in (3, 11, 19, 27):
        cov[t] = 0.0
    ds = _dataset(_copy(tmp_path), cov, sampler="random", seed=7)
    draws = []
    for epoch in range(8):
        ds.set_epoch(epoch)
        draws.append(ds.dates_of(0).target)
    assert set(draws) <= {3, 11, 19, 27} and len(set(draws)) > 1
    ds.set_epoch(2)
    again = _dataset(_copy(tmp_path), cov, sampler="random", seed=7)
    again.set_epoch(2)
    assert again.dates_of(0) == ds.dates_of(0)


def test_missing_coverage_and_bad_options_are_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    rows = build_ts_index(root).rows()
    with pytest.raises(ValueError, match="no cloud coverage for 60 S2 files"):
        SeriesDataset(root, rows, {}, split="test")
    with pytest.raises(ValueError, match="sampler must be one of"):
        SeriesDataset(root, rows, {}, sampler="fixedsubset")


def test_blank_dates_are_all_cloud() -> None:
    assert upstream_cloud_mask(np.zeros((13, 5, 6)), "dsen2cr").tolist() == np.ones((5, 6)).tolist()
    with pytest.raises(ValueError, match="unknown masker"):
        upstream_cloud_mask(np.ones((13, 5, 6)), "fmask")


@pytest.mark.skipif(not EOLEARN.is_dir(), reason="needs ../shared/data/eolearn (real S2 dates)")
@pytest.mark.parametrize("masker", ["dsen2cr", "s2cloudless"])
def test_coverage_of_real_dates_and_its_cache(tmp_path: Path, masker: str) -> None:
    if masker == "s2cloudless":
        pytest.importorskip("s2cloudless", reason="the masks extra is not installed")
    names = sorted(p.name for p in EOLEARN.glob("reference_scene_*.tif"))
    assert len(names) == 5
    cache = coverage_cache_path(tmp_path / "ts.csv", masker)
    reads: list[str] = []

    def read(path: Path) -> np.ndarray:
        reads.append(path.name)
        with rasterio.open(path) as ds:
            return ds.read()

    cov = compute_coverage(EOLEARN, names, cache, masker, read=read)
    # scenes 0 and 1 are fully cloudy, 2-4 clear (the data's README)
    if masker == "s2cloudless":  # upstream's default: right on every date
        assert min(cov[n] for n in names[:2]) > 0.99 and max(cov[n] for n in names[2:]) == 0
    else:  # the DSen2-CR mask sees the opaque cloud but flags 30-35 % of the clear dates
        assert cov[names[0]] > 0.99 and all(0.25 < cov[n] < 0.4 for n in names[2:]), cov
    assert len(reads) == 5 and set(read_coverage_cache(cache)) == set(names)
    assert compute_coverage(EOLEARN, names, cache, masker, read=read) == cov
    assert len(reads) == 5  # all from the cache
