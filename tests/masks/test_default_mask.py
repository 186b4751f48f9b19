"""The default mask of every whole-scene command on real scenes: the issue-29 targets, any band
layout, the same pixels whatever the windows, and the fallback without ukis-csmask."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cloudfree.errors import DataError
from cloudfree.masks import ukis
from cloudfree.masks.scene import mask_scene

pytestmark = pytest.mark.skipif(
    not ukis.ukis_available(),
    reason="ukis-csmask is not installed (optional extra: pip install 'cloudfree[masks]')",
)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_clear_real_scenes_stay_clear_and_cloudy_ones_are_found(
    tmp_path: Path, shared_data: Path
) -> None:
    """The targets of issue 29 with the default growth (60 m): the clear scenes under 3 %
    masked (the DSen2-CR mask: 30-35 %), the fully cloudy ones over 95 % cloud."""
    wisp = shared_data / "bigearthnet/s2_l2a/S2A_MSIL2A_20170617T113321_36_85.tif"
    clear = [shared_data / f"eolearn/reference_scene_{i}.tif" for i in (2, 3, 4)]
    clear += [shared_data / "sen1floods11/Spain_7370579_S2Hand.tif"]
    clear += [p for p in sorted((shared_data / "bigearthnet/s2_l2a").glob("*.tif")) if p != wisp]
    for i, path in enumerate(clear):  # L2A among them: the 12-band BigEarthNet patches
        stats = mask_scene(path, tmp_path / f"clear_{i}.tif")
        assert stats["mask_backend"] == "ukis" and stats["dilate_m"] == 60.0
        masked = stats["cloud_fraction"] + stats["shadow_fraction"]
        assert masked < 0.03, (path.name, masked)
        assert any(w.startswith("nothing to remove") for w in stats["warnings"])
        assert stats["level"] == ("l2a" if "L2A" in path.name else "l1c")
    for i in (0, 1):
        path = shared_data / f"eolearn/reference_scene_{i}.tif"
        stats = mask_scene(path, tmp_path / f"cloudy_{i}.tif")
        assert stats["cloud_fraction"] > 0.95, (path.name, stats["cloud_fraction"])
        assert any("under cloud" in w and "several dates" in w for w in stats["warnings"])


def _subset(src: Path, out: Path, bands: tuple[str, ...], describe: bool) -> Path:
    from cloudfree.bands import S2_BANDS

    with rasterio.open(src) as ds:
        profile = ds.profile
        data = ds.read([S2_BANDS.index(b) + 1 for b in bands])
    profile.update(count=len(bands))
    with rasterio.open(out, "w", **profile) as ds:
        ds.write(data)
        if describe:
            for i, name in enumerate(bands, 1):
                ds.set_band_description(i, name.replace("B", "B0") if len(name) == 2 else name)
    return out


def test_any_band_layout_gives_the_same_mask(tmp_path: Path, shared_data: Path) -> None:
    """A 6-band file in another order, named by its band descriptions or by --bands, gives the
    mask of the 13-band stack (the masker reads B2, B3, B4, B8 by name)."""
    full = (
        shared_data
        / "sen12mscr/ROIs1970_fall_s2_cloudy/s2_cloudy_136/ROIs1970_fall_s2_cloudy_136_p100.tif"
    )
    expected = (mask_scene(full, tmp_path / "full.tif"), _read(tmp_path / "full.tif"))
    assert 0.2 < expected[0]["cloud_fraction"] < 0.9 and expected[0]["bands"] == "13-band L1C stack"
    six = ("B12", "B11", "B8", "B4", "B3", "B2")
    named = _subset(full, tmp_path / "six_named.tif", six, describe=True)
    stats = mask_scene(named, tmp_path / "m1.tif")
    assert stats["bands"] == "band descriptions"
    np.testing.assert_array_equal(_read(tmp_path / "m1.tif"), expected[1])
    bare = _subset(full, tmp_path / "six_bare.tif", six, describe=False)
    with pytest.raises(DataError, match="cannot be told apart.*--bands"):
        mask_scene(bare, tmp_path / "m2.tif")
    mask_scene(bare, tmp_path / "m2.tif", bands="swir22,swir16,nir,red,green,blue")
    np.testing.assert_array_equal(_read(tmp_path / "m2.tif"), expected[1])
    three = _subset(full, tmp_path / "three.tif", ("B2", "B3", "B4"), describe=True)
    with pytest.raises(DataError, match=r"three\.tif: the ukis mask needs .*missing B8"):
        mask_scene(three, tmp_path / "m3.tif")
    assert not (tmp_path / "m3.tif").exists()


def test_windows_do_not_change_the_mask_and_growth_is_in_metres(
    tmp_path: Path, shared_data: Path
) -> None:
    from cloudfree.masks.dilate import dilate_classes

    src = (
        shared_data
        / "sen12mscr/ROIs1868_summer_s2_cloudy/s2_cloudy_19/ROIs1868_summer_s2_cloudy_19_p30.tif"
    )
    mask_scene(src, tmp_path / "w1024.tif", dilate="0")
    mask_scene(src, tmp_path / "w16.tif", dilate="0", window=16)
    undilated = _read(tmp_path / "w1024.tif")
    np.testing.assert_array_equal(_read(tmp_path / "w16.tif"), undilated)
    stats = mask_scene(src, tmp_path / "grown.tif", dilate="90", window=32)
    assert stats["dilate_px"] == pytest.approx(9.0) and stats["dilate_m"] == 90.0
    np.testing.assert_array_equal(_read(tmp_path / "grown.tif"), dilate_classes(undilated, 9.0))
    mask_scene(src, tmp_path / "px.tif", dilate="9px")
    np.testing.assert_array_equal(_read(tmp_path / "px.tif"), _read(tmp_path / "grown.tif"))
    with rasterio.open(tmp_path / "grown.tif") as ds:
        assert ds.tags()["backend"] == "ukis" and ds.tags()["dilate"] == "9 px"


def test_without_ukis_csmask_the_paper_mask_is_used_with_one_note(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    from cloudfree.masks.backends import _note_fallback

    monkeypatch.setattr(ukis, "ukis_available", lambda: False)
    _note_fallback.cache_clear()
    src = shared_data / "eolearn/reference_scene_2.tif"
    with caplog.at_level(logging.WARNING):
        stats = mask_scene(src, tmp_path / "m.tif")
    assert stats["mask_backend"] == "dsen2cr" and stats["dilate_px"] == 0
    notes = [r.message for r in caplog.records if "ukis-csmask is not installed" in r.message]
    assert len(notes) == 1 and 'pip install "cloudfree[masks]"' in notes[0]
    with rasterio.open(tmp_path / "m.tif") as ds:
        assert ds.tags()["backend"] == "dsen2cr"


def test_a_small_real_cloud_in_a_clear_labelled_patch_is_found(
    tmp_path: Path, shared_data: Path
) -> None:
    """BigEarthNet labels this patch cloud-free, but it holds a small whitish wisp (rows 20-32,
    columns 15-32 of its 120 x 120 px) with a dark patch north-west of it, where the June sun
    puts its shadow: the mask finds that and nothing else (1 % of the patch; 4.6 % grown)."""
    path = shared_data / "bigearthnet/s2_l2a/S2A_MSIL2A_20170617T113321_36_85.tif"
    stats = mask_scene(path, tmp_path / "m.tif", dilate="0")
    mask = _read(tmp_path / "m.tif")
    assert 0 < stats["cloud_fraction"] < 0.01 and stats["shadow_fraction"] < 0.015
    rows, cols = np.nonzero(mask == 1)
    assert rows.min() >= 18 and rows.max() <= 34 and cols.min() >= 13 and cols.max() <= 34
    rows, cols = np.nonzero(mask == 2)
    assert rows.max() < 20 and cols.max() < 34  # north(-west) of the wisp
