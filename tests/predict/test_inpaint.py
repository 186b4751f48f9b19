"""``cloudfree inpaint`` on GeoTIFF scenes: georeferencing, the mask, errors, no partial output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cloudfree.bands import S2_BANDS
from cloudfree.cli import main

from .conftest import CRS, TRANSFORM, synth_s1, synth_s2, write_tif


def _read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as ds:
        return ds.read(), {"crs": ds.crs, "transform": ds.transform, "dtype": ds.dtypes[0],
                           "nodata": ds.nodata, "bands": ds.descriptions}  # fmt: skip


@pytest.fixture
def scene(tmp_path: Path) -> dict[str, Path]:
    s2 = synth_s2(96, 80)
    mask = np.zeros((1, 96, 80), np.uint8)
    mask[0, 20:50, 10:40] = 1
    s2[:, mask[0] > 0] = 7000
    return {
        "s2": write_tif(tmp_path / "s2.tif", s2, descriptions=list(S2_BANDS)),
        "s1": write_tif(tmp_path / "s1.tif", synth_s1(96, 80)),
        "mask": write_tif(tmp_path / "mask.tif", mask),
    }


@pytest.mark.parametrize("method", ["mask-fill", "push-pull", "sar-match"])
def test_given_mask_filled_the_rest_bit_for_bit(scene: dict[str, Path], tmp_path: Path,
                                                method: str) -> None:  # fmt: skip
    out = tmp_path / "out.tif"
    args = ["inpaint", str(scene["s2"]), "--mask", str(scene["mask"]), "--method", method,
            "--out", str(out), "--no-progress", "--tile", "64", "--overlap", "16"]  # fmt: skip
    if method == "sar-match":
        args += ["--s1", str(scene["s1"])]
    assert main(args) == 0
    got, prof = _read(out)
    src, prof_in = _read(scene["s2"])
    assert prof == prof_in  # grid, dtype, nodata and band names of the input
    m = _read(scene["mask"])[0][0] > 0
    np.testing.assert_array_equal(got[:, ~m], src[:, ~m])
    # The 7000 DN block is gone: filled from the clear pixels' range.
    assert got[:, m].max() <= src[:, ~m].max() and (got[:, m] != 7000).all()
    assert np.median(got[:, m]) < 0.5 * 7000


@pytest.mark.parametrize("backend", ["auto", "dsen2cr"])
def test_without_mask_the_computed_mask_is_used_and_written_grown(
    scene: dict[str, Path], tmp_path: Path, backend: str
) -> None:
    """--mask-out is the mask that was used, growth included (issue 29: it was the undilated
    one), equal to cloudfree mask's with the same flags; pixels outside it are the input."""
    from cloudfree.masks import mask_scene
    from cloudfree.masks.dilate import dilate_classes

    out, mask_out = tmp_path / "out.tif", tmp_path / "used.tif"
    assert main(["inpaint", str(scene["s2"]), "--out", str(out), "--mask-out", str(mask_out),
                 "--no-progress", "--mask-backend", backend, "--dilate", "30"]) == 0  # fmt: skip
    mask_scene(scene["s2"], tmp_path / "ref.tif", backend=backend, dilate="0")
    used, ref = _read(mask_out)[0], _read(tmp_path / "ref.tif")[0]
    np.testing.assert_array_equal(used[0], dilate_classes(ref[0], 3.0))
    assert (used[0] > 0).sum() > (ref[0] > 0).sum() > 0  # grown by 30 m = 3 px
    got, src = _read(out)[0], _read(scene["s2"])[0]
    clear = used[0] == 0
    np.testing.assert_array_equal(got[:, clear], src[:, clear])


def test_a_given_mask_is_grown_only_when_asked(scene: dict[str, Path], tmp_path: Path) -> None:
    from cloudfree.masks.dilate import dilate_classes

    for extra, radius in (([], 0.0), (["--dilate", "2px"], 2.0)):
        out, mask_out = tmp_path / f"out{radius}.tif", tmp_path / f"used{radius}.tif"
        assert main(["inpaint", str(scene["s2"]), "--mask", str(scene["mask"]), "--out", str(out),
                     "--mask-out", str(mask_out), "--no-progress", *extra]) == 0  # fmt: skip
        given = _read(scene["mask"])[0][0]
        used = _read(mask_out)[0][0]
        np.testing.assert_array_equal(used, dilate_classes(given, radius))
        got, src = _read(out)[0], _read(scene["s2"])[0]
        np.testing.assert_array_equal(got[:, used == 0], src[:, used == 0])
        assert (got[:, used > 0] != src[:, used > 0]).any()


def test_empty_mask_gives_the_input_back(scene: dict[str, Path], tmp_path: Path) -> None:
    empty = write_tif(tmp_path / "empty.tif", np.zeros((1, 96, 80), np.uint8))
    out = tmp_path / "out.tif"
    assert main(["inpaint", str(scene["s2"]), "--mask", str(empty), "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    np.testing.assert_array_equal(_read(out)[0], _read(scene["s2"])[0])


def test_bad_masks_and_options_fail_cleanly(scene: dict[str, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "out.tif"
    small = write_tif(tmp_path / "small.tif", np.zeros((1, 64, 80), np.uint8))
    shifted = write_tif(tmp_path / "shifted.tif", np.zeros((1, 96, 80), np.uint8),
                        transform=from_origin(500100.0, 5000000.0, 10.0, 10.0))  # fmt: skip
    other_crs = write_tif(tmp_path / "crs.tif", np.zeros((1, 96, 80), np.uint8), crs="EPSG:32632")
    cases = [
        (["--mask", str(small)], "is 64x80 pixels but the S2 scene is 96x80"),
        (["--mask", str(shifted)], "is on another grid"),
        (["--mask", str(other_crs)], "is on another grid"),
        (["--mask", str(scene["s2"])], "has 13 bands"),
        (["--method", "sar-match"], "needs S1"),
        (["--weights", str(tmp_path)], "only apply to --method stable-diffusion"),
        (["--dilate", "6 km"], "--dilate takes a distance in metres"),
        (["--method", "stable-diffusion", "--weights", str(tmp_path)], "not a complete inpainting"),
    ]
    for extra, message in cases:
        rc = main(["inpaint", str(scene["s2"]), "--out", str(out), "--no-progress", *extra])
        assert rc == 1, extra
        assert message in capsys.readouterr().err, extra
        assert not out.exists() and not list(tmp_path.glob(".*part*"))  # nothing half-written
    assert CRS and TRANSFORM  # the scene's grid (conftest)


def test_stable_diffusion_scene_from_local_weights(scene: dict[str, Path], tmp_path: Path,
                                                   tiny_sd_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "sd.tif"
    args = ["inpaint", str(scene["s2"]), "--mask", str(scene["mask"]), "--method",
            "stable-diffusion", "--weights", str(tiny_sd_dir), "--steps", "2", "--size", "64",
            "--device", "cpu", "--out", str(out), "--no-progress", "--tile", "48",
            "--overlap", "16"]  # fmt: skip
    assert main(args) == 0
    got, src = _read(out)[0], _read(scene["s2"])[0]
    m = _read(scene["mask"])[0][0] > 0
    from cloudfree.inpaint import dilate_mask

    region = dilate_mask(m, 8)
    np.testing.assert_array_equal(got[:, ~region], src[:, ~region])
    assert (got[:, m] != 7000).all()
    assert main([*args[:-5], "--out", str(tmp_path / "sd2.tif"), "--no-progress", "--tile", "48",
                 "--overlap", "16"]) == 0  # fmt: skip
    np.testing.assert_array_equal(_read(tmp_path / "sd2.tif")[0], got)  # same seed, same scene
