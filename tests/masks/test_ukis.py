"""ukis-csmask's CNN as cloudfree runs it: cells, scales, and its masks on real labelled data."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from cloudfree.masks import ukis
from cloudfree.masks.ukis import block_mean, choose_factors, coarse_factor, upsample

needs_ukis = pytest.mark.skipif(
    not ukis.ukis_available(),
    reason="ukis-csmask is not installed (optional extra: pip install 'cloudfree[masks]')",
)


def test_block_mean_by_hand() -> None:
    x = np.arange(20, dtype=np.float32).reshape(1, 4, 5)
    out = block_mean(x, 2)
    # Cells cut by the edge take the mean of the pixels they hold.
    assert out.shape == (1, 2, 3)
    assert out[0, 0].tolist() == [3.0, 5.0, 6.5]  # (0+1+5+6)/4, (2+3+7+8)/4, (4+9)/2
    assert out[0, 1].tolist() == [13.0, 15.0, 16.5]


def test_upsample_interpolates_at_pixel_centres() -> None:
    # A ramp of cells 0, 3, 6 (3 px each): each pixel's centre lies at (i + 0.5) / 3 - 0.5
    # cells, where the ramp is worth 3 times that, clamped at the ends.
    p = np.array([[[0.0, 3.0, 6.0]]], dtype=np.float32)
    row = upsample(p, 3, 1, 9)[0, 0]
    expected = np.clip((np.arange(9) + 0.5) / 3 - 0.5, 0, 2) * 3
    np.testing.assert_allclose(row, expected, atol=1e-6)
    assert np.allclose(upsample(np.full((3, 4, 4), 0.25, np.float32), 3, 12, 11), 0.25)


def test_scales() -> None:
    assert coarse_factor(10.0) == 3 and coarse_factor(20.0) == 2 and coarse_factor(60.0) == 1
    assert choose_factors(10980, 10980, 10.0) == (3,)  # a whole tile: 30 m, full context
    assert choose_factors(768, 900, 10.0) == (3,)
    assert choose_factors(767, 900, 10.0) == (1, 3)  # under one model tile at 30 m
    assert choose_factors(100, 100, 30.0) == (1,)


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ukis, "ukis_available", lambda: False)
    ukis.load_model.cache_clear()
    with pytest.raises(ImportError, match=r"pip install .*cloudfree\[masks\].*ukis-csmask"):
        ukis.load_model("l1c")
    ukis.load_model.cache_clear()


def _labelled(shared_data: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for q in ("q00", "q11"):
        z = np.load(shared_data / "masks" / f"ukis_sentinel2_{q}.npz")
        refl = np.moveaxis(z["img"][..., :4], -1, 0)  # B2, B3, B4, B8 reflectance
        m = z["msk"][..., 0]
        out.append((refl, np.where(m == 4, 1, np.where(m == 0, 2, 0)).astype(np.uint8)))
    return out


def _iou(pred: np.ndarray, truth: np.ndarray, cls: int) -> float:
    p, t = pred == cls, truth == cls
    return float((p & t).sum() / (p | t).sum())


@needs_ukis
def test_labelled_patches_as_ukis_csmask_alone(shared_data: Path) -> None:
    """On the labelled quarters (30 m pixels, one scale), the mask is ukis-csmask's own CSmask
    but near the tile seams of the other tiling (it pads a 256-px patch into 256-px tiles
    overlapping by 0.2, Tukey-blended; measured 98.3 % of pixels alike), and finds the
    labelled clouds and shadows as well (measured IoU 0.779 / 0.702 and 0.851 / 0.740, CSmask
    0.779 / 0.696 and 0.852 / 0.743)."""
    from ukis_csmask.mask import CSmask

    for refl, truth in _labelled(shared_data):
        ours = ukis.ukis_mask(refl, "l1c", (1,))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = CSmask(
                img=np.ascontiguousarray(np.moveaxis(refl, 0, -1)),
                band_order=["blue", "green", "red", "nir"],
                product_level="l1c",
                providers=["CPUExecutionProvider"],
            ).csm[..., 0]
        assert (ours == theirs).mean() > 0.975
        assert _iou(ours, truth, 1) > 0.75 and _iou(ours, truth, 2) > 0.65
        for cls in (1, 2):
            assert abs(_iou(ours, truth, cls) - _iou(theirs, truth, cls)) < 0.01


@needs_ukis
def test_ten_metre_file_at_30_m_equals_the_30_m_patch(shared_data: Path) -> None:
    """The same patch as a 10 m file (each pixel 3 x 3): its 30 m cells are the patch's pixels,
    so the 30 m pass is the patch's mask, each pixel repeated (up to the bilinear upsampling
    of the probabilities at cell edges)."""
    refl, truth = _labelled(shared_data)[1]
    coarse = ukis.ukis_mask(refl, "l1c", (1,))
    fine = ukis.ukis_mask(np.kron(refl, np.ones((1, 3, 3), np.float32)), "l1c", (3,))
    assert (fine[1::3, 1::3] == coarse).mean() > 0.995  # cell centres: the cell's own value
    assert _iou(fine, np.kron(truth, np.ones((3, 3), np.uint8)), 1) > 0.75


@needs_ukis
def test_nan_input_is_read_as_zero_not_propagated() -> None:
    refl = np.full((4, 64, 64), 0.1, np.float32)
    refl[:, 10:20, 10:20] = np.nan
    mask = ukis.ukis_mask(refl, "l2a", (1, 3))
    assert mask.dtype == np.uint8 and mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 1, 2}


@needs_ukis
def test_levels_and_bad_arguments() -> None:
    assert ukis.load_model("l1c").version.endswith("4BL1C")
    assert ukis.load_model("l2a").version.endswith("4BL2A")
    with pytest.raises(ValueError, match="'l1c' or 'l2a'"):
        ukis.load_model("l3")
    with pytest.raises(ValueError, match="factors"):
        ukis.ukis_probabilities(np.zeros((4, 8, 8), np.float32), "l1c", ())


def test_no_onnxruntime_import_at_cloudfree_import() -> None:
    import subprocess

    code = "import cloudfree.masks, cloudfree.cli, sys; print('onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert importlib.util.find_spec("cloudfree.masks.ukis") is not None
