"""What a mask says about a scene: fractions over the pixels with data, and the warnings."""

from __future__ import annotations

import numpy as np

from cloudfree.masks.report import (
    MOSTLY_CLOUD,
    NOTHING_TO_REMOVE,
    class_counts,
    describe_fractions,
    mask_fractions,
    mask_warnings,
)


def test_fractions_are_of_the_pixels_with_data() -> None:
    mask = np.array([[0, 1, 1, 2], [0, 0, 1, 0]], np.uint8)
    holes = np.array([[False, False, False, False], [True, True, False, False]])
    counts = class_counts(mask, holes)
    assert counts.tolist() == [2, 3, 1, 2]  # clear, cloud, shadow among 6 valid; 2 nodata
    f = mask_fractions(counts)
    assert (f["clear_fraction"], f["cloud_fraction"], f["shadow_fraction"]) == (2 / 6, 3 / 6, 1 / 6)
    assert f["nodata_fraction"] == 2 / 8 and f["valid_pixels"] == 6
    assert "nodata 25.00 %" in describe_fractions(f)


def test_warnings_for_clear_and_cloud_covered_scenes() -> None:
    def stats(cloud: float, shadow: float) -> dict:
        return {"cloud_fraction": cloud, "shadow_fraction": shadow, "valid_pixels": 100}

    assert mask_warnings(stats(0.2, 0.1)) == []
    clear = mask_warnings(stats(NOTHING_TO_REMOVE / 2, 0.0), changed=0.003)
    assert len(clear) == 1 and clear[0].startswith("nothing to remove: 0.50 %")
    assert "0.30 % of its pixels were changed" in clear[0]
    cloudy = mask_warnings(stats(MOSTLY_CLOUD, 0.0))
    assert len(cloudy) == 1 and cloudy[0].startswith("90.0 % of the scene is under cloud")
    assert "several dates" in cloudy[0]
    assert mask_warnings({"valid_pixels": 0}) == []  # nothing to say about no data
