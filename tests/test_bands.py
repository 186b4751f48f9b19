"""Band order and scaling constants against the spec (dsen2cr_spec.md sections 1-2)."""

import pytest

from cloudfree import bands


def test_s2_band_order_is_the_release_file_order():
    assert bands.S2_BANDS == (
        "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12",
    )  # fmt: skip
    # spec section 1: numpy index 7 is B8, 10 is B10 (cirrus), 11 is B11 (SWIR1)
    assert bands.s2_index("B8") == 7
    assert bands.s2_index("B10") == 10
    assert bands.s2_index("B11") == 11
    assert "B10" not in bands.S2_L2A_BANDS and len(bands.S2_L2A_BANDS) == 12
    with pytest.raises(KeyError, match="B13"):
        bands.s2_index("B13")


def test_s1_bands_and_patch_geometry():
    assert bands.S1_BANDS == ("VV", "VH")
    assert (bands.PATCH_SIZE, bands.TRAIN_CROP_SIZE) == (256, 128)


def test_dsen2cr_scaling_matches_the_paper_code():
    s = bands.DSEN2CR
    assert s.s2_clip == (0.0, 10000.0) and s.s2_scale == 2000.0
    assert s.s1_clip == ((-25.0, 0.0), (-32.5, 0.0)) and s.s1_max == 2.0


def test_reflectance_protocol():
    s = bands.get_scaling("reflectance")
    assert s.s2_scale == 10000.0 and s.s1_max == 1.0
    assert s.s1_clip == ((-25.0, 0.0), (-25.0, 0.0))
    with pytest.raises(KeyError, match="expected one of"):
        bands.get_scaling("resnet")


def test_reflectance_per_unit():
    # DSen2-CR: network value = DN / 2000 and reflectance = DN / 10000, so 1 unit = 0.2.
    assert bands.DSEN2CR.reflectance_per_unit == pytest.approx(0.2)
    assert bands.REFLECTANCE.reflectance_per_unit == 1.0
    dn = 3456.0
    assert dn / bands.DSEN2CR.s2_scale * bands.DSEN2CR.reflectance_per_unit == pytest.approx(0.3456)
