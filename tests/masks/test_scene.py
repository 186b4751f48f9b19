"""Whole-scene masks in windows: equal to the single-image reference, georeferenced, atomic."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
import scipy.ndimage
from rasterio.transform import from_origin

from cloudfree.errors import DataError
from cloudfree.masks import csm_scene
from cloudfree.masks.csm import cloud_shadow_mask
from cloudfree.masks.params import CLEAR, CLOUD, SHADOW
from cloudfree.masks.reference import reference_csm
from cloudfree.masks.scene import mask_scene, run_mask_cli

CRS = "EPSG:32633"
TRANSFORM = from_origin(500000.0, 5100000.0, 10.0, 10.0)


def synthetic_s2(seed: int, h: int, w: int) -> np.ndarray:
    """Plausible (13, H, W) uint16 L1C DN: smooth land cover, bright clouds, dark patches."""
    rng = np.random.default_rng(seed)
    land = scipy.ndimage.gaussian_filter(rng.standard_normal((h, w)), 4)
    cloud = scipy.ndimage.gaussian_filter(rng.standard_normal((h, w)), 6)
    land /= land.std()
    cloud = np.clip(cloud / cloud.std() - 0.5, 0, None)
    level = np.array([1300, 1000, 900, 800, 1200, 2000, 2300, 2500, 2600, 600, 20, 1800, 1000])
    dn = level[:, None, None] * (1 + 0.35 * land) + 3000 * cloud * (level[:, None, None] > 100)
    # >= 1 DN: a pixel 0 in every band is nodata (cloudfree.units), which real L1C never has.
    return np.clip(dn + rng.normal(0, 15, dn.shape), 1, 65535).astype(np.uint16)


def write_s2(path: Path, data: np.ndarray) -> Path:
    profile = dict(
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs=CRS,
        transform=TRANSFORM,
    )
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


def check_scene(s2: np.ndarray, tif: Path, out: Path, window: int) -> dict:
    # Blocks of the window's side too: the mask must not depend on either.
    stats = mask_scene(tif, out, backend="dsen2cr", window=window, block=max(window, 16))
    with rasterio.open(out) as ds:
        mask = ds.read(1)
        assert ds.count == 1 and ds.dtypes[0] == "uint8" and ds.nodata is None
        assert ds.crs == rasterio.crs.CRS.from_string(CRS) and ds.transform == TRANSFORM
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
    _, expected = reference_csm(s2)
    diff = np.argwhere(mask != expected)
    assert diff.size == 0, f"{len(diff)} pixels differ, first at {diff[:5].tolist()}"
    n = mask.size
    assert stats["num_pixels"] == n
    assert stats["cloud_fraction"] == np.count_nonzero(mask == CLOUD) / n
    assert stats["shadow_fraction"] == np.count_nonzero(mask == SHADOW) / n
    assert stats["clear_fraction"] == np.count_nonzero(mask == CLEAR) / n
    assert sorted(p.name for p in out.parent.iterdir() if p.name.endswith(".part")) == []
    return stats


def test_synthetic_scene_in_many_windows_equals_reference(tmp_path: Path) -> None:
    s2 = synthetic_s2(0, 150, 211)
    tif = write_s2(tmp_path / "s2.tif", s2)
    for window in (16, 40, 1024):  # 40 -> 32: windows smaller than and beside the halo
        stats = check_scene(s2, tif, tmp_path / f"mask_{window}.tif", window)
        assert 0 < stats["cloud_fraction"] < 1 and stats["shadow_fraction"] > 0


def test_real_scene_300x500_window_128_equals_reference(
    tmp_path: Path, sen12mscr_root: Path
) -> None:
    # Cloudy patches above, cloud-free ones below: every class present.
    cloudy = sorted(sen12mscr_root.glob("ROIs1970_fall_s2_cloudy/s2_cloudy_136/*p31*.tif"))[:3]
    clear = sorted(sen12mscr_root.glob("ROIs1970_fall_s2/s2_136/*p31*.tif"))[:3]
    assert len(cloudy) == len(clear) == 3
    tiles = [rasterio.open(p).read() for p in cloudy + clear]
    s2 = np.concatenate(
        [np.concatenate(tiles[:3], axis=2), np.concatenate(tiles[3:], axis=2)], axis=1
    )[:, :300, :500]
    tif = write_s2(tmp_path / "scene.tif", np.ascontiguousarray(s2))
    stats = check_scene(s2, tif, tmp_path / "mask.tif", window=128)
    # Relative shadow thresholds: next to bright clouds, most clear land falls below T3/T4.
    assert 0.3 < stats["cloud_fraction"] < 0.95 and stats["shadow_fraction"] > 0.05


def test_scene_thresholds_are_global_not_per_window(tmp_path: Path) -> None:
    # A dark left half and a bright right half: per-window thresholds would flag shadows in
    # both halves, the whole-scene ones only (or mostly) in the dark half.
    s2 = synthetic_s2(1, 64, 128)
    s2[:, :, :64] //= 3
    tif = write_s2(tmp_path / "s2.tif", s2)
    mask_scene(tif, tmp_path / "mask.tif", backend="dsen2cr", window=32, block=32)
    with rasterio.open(tmp_path / "mask.tif") as ds:
        mask = ds.read(1)
    np.testing.assert_array_equal(mask, cloud_shadow_mask(s2))
    assert np.count_nonzero(mask[:, 72:] == SHADOW) < np.count_nonzero(mask[:, :56] == SHADOW)


def test_memory_is_bounded_by_the_window(tmp_path: Path) -> None:
    s2 = synthetic_s2(2, 512, 512)
    tif = write_s2(tmp_path / "s2.tif", s2)
    opts = {"backend": "dsen2cr", "window": 64, "block": 64}
    mask_scene(tif, tmp_path / "warm.tif", **opts)  # imports allocate too: not measured
    tracemalloc.start()
    mask_scene(tif, tmp_path / "mask.tif", **opts)
    windowed = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    cloud_shadow_mask(s2)
    whole = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # The 13 x 512 x 512 uint16 scene alone is 6.8 MB; masking it at once needs ~14 MB.
    assert windowed < s2.nbytes / 4 and windowed < whole / 8


def test_failure_leaves_no_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tif = write_s2(tmp_path / "s2.tif", synthetic_s2(3, 40, 40))
    out = tmp_path / "mask.tif"
    out.write_bytes(b"previous")

    def boom(*args: object, **kwargs: object) -> np.ndarray:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(csm_scene, "csm_from_bands", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        mask_scene(tif, out, backend="dsen2cr", window=16)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif", "s2.tif"]


def test_bad_inputs(tmp_path: Path) -> None:
    l2a = write_s2(tmp_path / "l2a.tif", synthetic_s2(4, 20, 20)[np.arange(13) != 10])
    with pytest.raises(DataError, match=r"l2a\.tif.*L2A.*B10.*--mask-backend ukis"):
        mask_scene(l2a, tmp_path / "m.tif", backend="dsen2cr")
    tif = write_s2(tmp_path / "s2.tif", synthetic_s2(4, 20, 20))
    with pytest.raises(ValueError, match="backend"):
        mask_scene(tif, tmp_path / "m.tif", backend="fmask")
    with pytest.raises(ValueError, match="window"):
        mask_scene(tif, tmp_path / "m.tif", window=0)
    with pytest.raises(DataError, match="missing"):
        mask_scene(tmp_path / "missing.tif", tmp_path / "m.tif")
    assert not (tmp_path / "m.tif").exists()


def test_cli_handler_prints_fractions(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tif = write_s2(tmp_path / "s2.tif", synthetic_s2(5, 48, 48))
    assert run_mask_cli(str(tif), str(tmp_path / "m.tif"), "dsen2cr", 32) == 0
    printed = capsys.readouterr().out
    with rasterio.open(tmp_path / "m.tif") as ds:
        cloud = np.count_nonzero(ds.read(1) == CLOUD) / (48 * 48)
    assert f"cloud {100 * cloud:.2f} %" in printed and "shadow" in printed
    assert "m.tif" in printed


def test_real_l2a_file_is_refused_by_the_paper_mask_with_an_explanation(
    tmp_path: Path, shared_data: Path
) -> None:
    l2a = next((shared_data / "bigearthnet/s2_l2a").glob("*.tif"))  # 12 bands, no B10
    with pytest.raises(DataError, match=r"12 bands.*L2A.*B10"):
        mask_scene(l2a, tmp_path / "mask.tif", backend="dsen2cr")
    assert not (tmp_path / "mask.tif").exists()


def test_mask_command_flags(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cloudfree.cli import main

    s2 = synthetic_s2(6, 48, 48)
    tif = write_s2(tmp_path / "s2.tif", s2)
    # --backend, the flag's name before --mask-backend, still works.
    assert main(["mask", str(tif), "--out", str(tmp_path / "a.tif"), "--backend", "dsen2cr"]) == 0
    assert main(["mask", str(tif), "--out", str(tmp_path / "b.tif"), "--mask-backend",
                 "dsen2cr", "--window", "16"]) == 0  # fmt: skip
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        np.testing.assert_array_equal(a.read(1), cloud_shadow_mask(s2))
        np.testing.assert_array_equal(a.read(1), b.read(1))
        assert a.tags()["backend"] == "dsen2cr"
    assert "dsen2cr (the DSen2-CR paper's mask) mask of" in capsys.readouterr().out
    four = write_s2(tmp_path / "four.tif", s2[[1, 2, 3, 7]])  # no band descriptions
    cases = [
        ([str(four)], "cannot be told apart"),
        ([str(four), "--bands", "B2,B3,B4"], "--bands names 3 bands"),
        # A 4-band file is no L2A product: the missing bands are named, not an L2A story.
        (
            [str(four), "--bands", "B2,B3,B4,B8", "--mask-backend", "dsen2cr"],
            "the dsen2cr mask needs the bands B1, B2, B3, B4, B8, B10, B11; the file holds B2, B3, "
            "B4, B8: missing B1, B10, B11",
        ),  # fmt: skip
        ([str(tif), "--dilate", "far"], "--dilate takes a distance"),
    ]
    for args, message in cases:
        assert main(["mask", *args, "--out", str(tmp_path / "c.tif")]) == 1, args
        assert message in capsys.readouterr().err, args
        assert not (tmp_path / "c.tif").exists()
