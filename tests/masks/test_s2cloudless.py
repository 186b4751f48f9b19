"""The optional s2cloudless backend (skipped where the ``masks`` extra is not installed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cloudfree.errors import DataError
from cloudfree.io import read_raster
from cloudfree.masks import s2cloudless as backend
from cloudfree.masks.s2cloudless import s2cloudless_mask

needs_s2cloudless = pytest.mark.skipif(
    importlib.util.find_spec("s2cloudless") is None,
    reason="s2cloudless is not installed (optional extra: pip install 'cloudfree[masks]')",
)


def test_missing_package_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    backend._detector.cache_clear()
    monkeypatch.setitem(sys.modules, "s2cloudless", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install .*s2cloudless"):
        s2cloudless_mask(np.zeros((13, 8, 8), np.uint16))
    backend._detector.cache_clear()


def test_l2a_input_is_refused() -> None:
    with pytest.raises(DataError, match="B10"):
        s2cloudless_mask(np.zeros((12, 8, 8), np.uint16))


@pytest.fixture
def eolearn(shared_data: Path) -> np.ndarray:
    paths = [shared_data / f"eolearn/reference_scene_{i}.tif" for i in range(5)]
    return np.stack([read_raster(p, expect_count=13)[0] for p in paths])


@needs_s2cloudless
def test_eolearn_cloudy_and_clear_scenes(eolearn: np.ndarray) -> None:
    masks = s2cloudless_mask(eolearn)
    assert masks.shape == (5, 101, 100) and masks.dtype == np.uint8
    assert set(np.unique(masks).tolist()) <= {0, 1}
    cloud = masks.reshape(5, -1).mean(axis=1)
    # Both overcast scenes, including the dim deck the DSen2-CR score mostly misses (scene 1).
    assert cloud[0] > 0.9 and cloud[1] > 0.9
    assert cloud[2:].max() < 0.05
    np.testing.assert_array_equal(s2cloudless_mask(eolearn[1]), masks[1])


@needs_s2cloudless
def test_band_selection_matches_the_detector_on_all_13_bands(eolearn: np.ndarray) -> None:
    from s2cloudless import S2PixelCloudDetector

    # Independent path: the detector picks its 10 bands itself from the 13 (all_bands=True).
    detector = S2PixelCloudDetector(threshold=0.4, all_bands=True, average_over=4, dilation_size=2)
    s2 = eolearn[:2, :, :60, :70]
    refl = np.moveaxis(s2.astype(np.float32) / np.float32(10000), 1, -1)
    np.testing.assert_array_equal(s2cloudless_mask(s2), detector.get_cloud_masks(refl))


@needs_s2cloudless
def test_scene_backend_in_windows_equals_whole_image(tmp_path: Path, shared_data: Path) -> None:
    from cloudfree.masks.scene import mask_scene

    path = shared_data / "sen12mscr/ROIs1868_summer_s2_cloudy/s2_cloudy_19"
    s2 = read_raster(next(path.glob("*.tif")), expect_count=13)[0][:, :100, :130]
    tif = tmp_path / "s2.tif"
    profile = dict(driver="GTiff", width=130, height=100, count=13, dtype="uint16")
    with rasterio.open(
        tif, "w", crs="EPSG:32630", transform=from_origin(0, 0, 10, 10), **profile
    ) as ds:
        ds.write(s2)
    stats = mask_scene(
        tif, tmp_path / "mask.tif", backend="s2cloudless", window=48
    )  # 3 x 3 windows
    with rasterio.open(tmp_path / "mask.tif") as ds:
        mask = ds.read(1)
    expected = s2cloudless_mask(s2)
    np.testing.assert_array_equal(mask, expected)
    assert stats["shadow_fraction"] == 0.0 and stats["cloud_fraction"] == expected.mean()
    assert 0.1 < stats["cloud_fraction"] < 0.9  # the half-cloudy W. Africa patch
