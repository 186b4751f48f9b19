"""SEN12MS-CR-TS names, ROI split and date samplers, worked by hand from the authors' loader
(PatrickTUM/UnCRtainTS ``data/dataLoader.py``)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from cloudfree.data.timeseries.names import (
    OFFICIAL_TEST,
    OFFICIAL_VAL,
    REGION_SPLITS,
    TSFile,
    all_rois,
    days_since_s1_launch,
    parse_name,
    region_of,
    relative_path,
    split_of,
)
from cloudfree.data.timeseries.sampling import fixed_sample, random_sample


def test_names_round_trip() -> None:
    name = "s2_ROIs1970_21_ImgNo_7_2018-03-14_patch_112.tif"
    f = parse_name(f"ROIs1970/21/S2/7/{name}")
    assert f == TSFile("s2", "ROIs1970/21", 7, date(2018, 3, 14), 112)
    assert relative_path(f) == f"ROIs1970/21/S2/7/{name}"
    assert parse_name("s1_ROIs2017_8_ImgNo_29_2018-12-30_patch_0.TIF").modality == "s1"
    for bad in ("s2_ROIs1970_21_ImgNo_7_2018-02-30_patch_1.tif",  # no such day
                "ROIs1970_fall_s2_136_p100.tif",  # SEN12MS-CR
                "s3_ROIs1970_21_ImgNo_7_2018-03-14_patch_1.tif"):  # fmt: skip
        assert parse_name(bad) is None, bad


def test_days_are_counted_from_the_s1_launch() -> None:
    assert days_since_s1_launch(date(2014, 4, 3)) == 0
    assert days_since_s1_launch(date(2018, 1, 1)) == 1369  # 270 + 365 * 3 + 4 (2016 leap)


def test_official_split_and_regions() -> None:
    assert len(all_rois()) == 53 and len(OFFICIAL_TEST) == 13 and len(OFFICIAL_VAL) == 5
    assert split_of("ROIs1868/119") == "test" and split_of("ROIs2017/22") == "val"
    assert split_of("ROIs1970/21") == "train" and split_of("ROIs9999/1") is None
    counts = {s: sum(split_of(r) == s for r in all_rois()) for s in ("train", "val", "test")}
    assert counts == {"train": 35, "val": 5, "test": 13}
    # Each ROI in exactly one region; a region's test/val ROIs are the official ones in it.
    assert sorted(region_of(r) is not None for r in all_rois()) == [True] * 53
    for region, splits in REGION_SPLITS.items():
        for roi in (r for rois in splits.values() for r in rois):
            assert split_of(roi, region) == split_of(roi), (region, roi)
    assert split_of("ROIs1970/21", "europa") is None
    with pytest.raises(ValueError, match="unknown region 'asia'"):
        split_of("ROIs1970/21", "asia")


COV = [0.8, 0.0, 0.4, 0.9, 0.2, 0.0] + [0.5] * 24  # least cloudy: dates 1 and 5


def test_fixed_leaves_the_target_out_of_the_inputs() -> None:
    s = fixed_sample(COV, 3)
    assert (s.inputs, s.target, s.match) == ((0, 2, 3), 1, True)


def test_fixed_with_the_upstream_quirk_can_put_the_target_among_the_inputs() -> None:
    s = fixed_sample(COV, 3, upstream_quirk=True)
    assert s.inputs == (0, 1, 2) and s.target in (1, 5)  # argsort: either of the two zeros
    assert s.target in s.inputs or s.target == 5


def test_fixed_coverage_window_and_fallback() -> None:
    # inputs with 10-60 % cloud: dates 2 (0.4), 4 (0.2), 6 (0.5)
    assert fixed_sample(COV, 3, min_cov=0.1, max_cov=0.6).inputs == (2, 4, 6)
    # nothing in 95-100 %: the first three other than the target, and not a match
    s = fixed_sample(COV, 3, min_cov=0.95)
    assert (s.inputs, s.match) == ((0, 2, 3), False)
    # a target with cloud is not a match either
    assert not fixed_sample([0.3] * 30, 3).match


def test_random_picks_a_clear_target_and_the_middle_window() -> None:
    rng = np.random.default_rng(0)
    targets = {random_sample(COV, 3, rng).target for _ in range(50)}
    assert targets == {1, 5}  # the clear dates only, both drawn
    one_clear = [0.5] * 30
    for target, inputs in ((0, (1, 2, 3)), (29, (26, 27, 28)), (10, (9, 11, 12))):
        cov = list(one_clear)
        cov[target] = 0.0
        # windows of 4 dates holding the target: starts max(0, t-3)..min(t, 26); the middle
        assert random_sample(cov, 3, rng).inputs == inputs, target
    # no clear date: the least cloudy
    cov = [0.5] * 30
    cov[17] = 0.01
    assert random_sample(cov, 3, rng).target == 17


def test_too_few_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot give 3 input dates and a target"):
        fixed_sample([0.1, 0.2, 0.3], 3)
    with pytest.raises(ValueError, match="n_input must be >= 1"):
        random_sample(COV, 0, np.random.default_rng(0))
