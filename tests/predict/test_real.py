"""End to end on real Sentinel data from ../shared/data (skipped when absent) and the bundled
weights (skipped until they are installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloudfree.predict.scene import predict_scene

from .conftest import read_tif, untiled

FLOODS = "sen1floods11/Spain_7370579_{}.tif"


def test_sen1floods11_epsg4326_end_to_end(shared_data: Path, tmp_path: Path, sar_weights) -> None:
    weights, model = sar_weights
    s2, s1 = shared_data / FLOODS.format("S2Hand"), shared_data / FLOODS.format("S1Hand")
    out = tmp_path / "out.tif"
    summary = predict_scene(
        s2,
        out,
        str(weights),
        s1,
        tile=128,
        overlap=32,
        batch_size=4,
        mask_out=tmp_path / "mask.tif",
        progress=False,
    )
    assert summary["reprojected"] is False  # Sen1Floods11 ships S1 and S2 on one grid
    pred, prof = read_tif(out)
    src, prof_in = read_tif(s2)
    for key in ("crs", "transform", "width", "height", "count", "dtype", "nodata"):
        assert prof[key] == prof_in[key], key
    assert str(prof["crs"]) == "EPSG:4326" and prof["dtype"] == "int16"
    nodata = (src == 0).all(axis=0)
    assert np.all(pred[:, nodata] == 0)
    # Away from the borders, equal to the model run on the whole image (S1 NaN -> 0 dB there is
    # only used where S1 is missing, which this scene has not, apart from nodata rims).
    s1_db, _ = read_tif(s1)
    valid = np.isfinite(s1_db).all(axis=0)
    assert summary["sar_coverage"] == pytest.approx(valid.mean())
    ref = np.clip(
        np.rint(untiled(model, src.astype(np.float32), np.nan_to_num(s1_db))), -32768, 32767
    )
    r = 20
    inside = np.zeros_like(valid)
    inside[r:-r, r:-r] = True
    # Pixels whose whole receptive field has S1 and S2 data.
    from scipy.ndimage import binary_erosion

    ok = inside & binary_erosion(valid & ~nodata, iterations=8)
    assert ok.mean() > 0.5
    diff = np.abs(pred[:, ok].astype(float) - ref[:, ok])
    assert diff.max() <= 1.0


def test_sen1floods11_with_s1_reprojected_to_utm(
    shared_data: Path, tmp_path: Path, sar_weights
) -> None:
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    weights, _ = sar_weights
    s2, s1 = shared_data / FLOODS.format("S2Hand"), shared_data / FLOODS.format("S1Hand")
    # The user's S1: UTM 30N at 20 m, cropped to the northern two thirds of the S2 scene.
    with rasterio.open(s1) as ds:
        data = ds.read()
        left, bottom, right, top = ds.bounds
        bottom = bottom + (top - bottom) / 3
        dst_crs = "EPSG:32630"
        transform, width, height = calculate_default_transform(
            ds.crs, dst_crs, ds.width, ds.height, left, bottom, right, top, resolution=20.0
        )
        warped = np.full((2, height, width), np.nan, np.float32)
        reproject(
            data,
            warped,
            src_transform=ds.transform,
            src_crs=ds.crs,
            dst_transform=transform,
            dst_crs=dst_crs,
            resampling=Resampling.bilinear,
            src_nodata=np.nan,
            dst_nodata=np.nan,
        )
        prof = dict(
            driver="GTiff",
            width=width,
            height=height,
            count=2,
            dtype="float32",
            crs=dst_crs,
            transform=transform,
            nodata=np.nan,
        )
    utm = tmp_path / "s1_utm.tif"
    with rasterio.open(utm, "w", **prof) as ds:
        ds.write(warped)
    out = tmp_path / "out.tif"
    summary = predict_scene(
        s2,
        out,
        str(weights),
        utm,
        outside_sar="input",
        tile=128,
        overlap=32,
        batch_size=4,
        progress=False,
    )
    assert summary["reprojected"] is True
    assert 0.5 < summary["sar_coverage"] < 0.75  # about two thirds of the scene
    pred, _ = read_tif(out)
    src, _ = read_tif(s2)
    # The southern third has no S1: kept as the input, not zero-filled.
    np.testing.assert_array_equal(pred[:, -100:], src[:, -100:])
    assert np.any(pred[:, :200] != src[:, :200])


def test_bigearthnet_l2a_predicts_with_warning(
    shared_data: Path, tmp_path: Path, nosar_weights
) -> None:
    weights, _ = nosar_weights
    s2 = sorted((shared_data / "bigearthnet" / "s2_l2a").glob("*.tif"))[0]
    with pytest.warns(UserWarning, match="L2A"):
        summary = predict_scene(
            s2, tmp_path / "out.tif", str(weights), tile=64, overlap=16, progress=False
        )
    assert summary["l2a"] is True and summary["b10_fill"] == 10.0
    pred, prof = read_tif(tmp_path / "out.tif")
    src, prof_in = read_tif(s2)
    assert pred.shape == src.shape == (12, 120, 120)
    assert prof["transform"] == prof_in["transform"] and prof["dtype"] == prof_in["dtype"]


@pytest.mark.parametrize("include_sar", [True, False])
def test_bundled_weights_load_and_predict(include_sar: bool, tmp_path: Path) -> None:
    from cloudfree.methods.load import load_method
    from cloudfree.predict.bundled import bundled_weights, default_weights_name
    from cloudfree.weights import MODEL_CARD

    try:
        path = bundled_weights(include_sar)
    except ValueError as e:
        pytest.skip(f"bundled weights not installed yet ({e})")
    method = load_method(str(path), device="cpu")
    assert method.include_sar is include_sar
    assert MODEL_CARD.is_file()
    from .conftest import synth_s1, synth_s2, write_tif

    s2 = write_tif(tmp_path / "s2.tif", synth_s2(64, 64))
    s1 = write_tif(tmp_path / "s1.tif", synth_s1(64, 64)) if include_sar else None
    summary = predict_scene(s2, tmp_path / "out.tif", None, s1, tile=64, overlap=16, progress=False)
    assert summary["method"] == default_weights_name(include_sar)


def test_missing_bundled_weights_error_names_the_path(tmp_path: Path, monkeypatch) -> None:
    from cloudfree.errors import DataError
    from cloudfree.predict import bundled
    from cloudfree.weights import registry

    monkeypatch.setattr(registry, "BUNDLED_DIR", tmp_path / "weights")
    with pytest.raises(DataError, match=r"weights/hybrid_nosar\.safetensors.*missing"):
        bundled.bundled_weights(False)
