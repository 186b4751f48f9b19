"""cloudfree.predict_array / predict_dataarray: an image in memory is predicted exactly as the
same image in a GeoTIFF (the same tiling, mask, nodata and checks), with its coordinates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cloudfree
from cloudfree.models import save_weights

from .conftest import CRS, TRANSFORM, read_tif, synth_s1, synth_s2, tiny_model, write_tif


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("arrays")
    return {
        "nosar": save_weights(tiny_model(False), base / "nosar.safetensors"),
        "sar": save_weights(tiny_model(True), base / "sar.safetensors"),
    }


def test_an_array_is_predicted_as_its_file(weights: dict[str, Path], tmp_path: Path) -> None:
    s2, s1 = synth_s2(112, 100), synth_s1(112, 100)
    s2[:, :, :8] = 0  # a strip without data
    src = write_tif(tmp_path / "s2.tif", s2)
    s1_file = write_tif(tmp_path / "s1.tif", s1)
    for ckpt, s1_arr, s1_path in ((weights["nosar"], None, None), (weights["sar"], s1, s1_file)):
        kw = {"tile": 48, "keep_clear": True}
        cloudfree.predict_scene(src, tmp_path / "o.tif", str(ckpt), s1_path, progress=False, **kw)
        want, _ = read_tif(tmp_path / "o.tif")
        got, summary = cloudfree.predict_array(s2, s1_arr, str(ckpt), crs=CRS, transform=TRANSFORM,
                                               return_summary=True, **kw)  # fmt: skip
        assert got.dtype == s2.dtype and got.shape == s2.shape
        np.testing.assert_array_equal(got, want)
        assert not got[:, :, :8].any() and summary["tiles"] > 1
    with pytest.raises(ValueError, match=r"\(13, H, W\)"):
        cloudfree.predict_array(s2[:3], checkpoint="identity")
    with pytest.raises(ValueError, match=r"s1 must be \(2, 112, 100\)"):
        cloudfree.predict_array(s2, s1[:, :10], checkpoint="identity")


def test_a_dataarray_keeps_its_coordinates(weights: dict[str, Path]) -> None:
    xr = pytest.importorskip("xarray", reason="cloudfree[xarray]")
    s2 = synth_s2(48, 40)
    x = 500_005.0 + 10.0 * np.arange(40)
    y = 4_999_995.0 - 10.0 * np.arange(48)
    da = xr.DataArray(s2, dims=("band", "y", "x"), coords={"band": np.arange(1, 14), "y": y,
                      "x": x}, attrs={"crs": "EPSG:32633", "source": "test"})  # fmt: skip
    out = cloudfree.predict_dataarray(da, checkpoint=str(weights["nosar"]), tile=48)
    assert out.dims == da.dims and out.attrs == da.attrs
    np.testing.assert_array_equal(out["x"], x)
    np.testing.assert_array_equal(out["y"], y)
    from affine import Affine

    want = cloudfree.predict_array(s2, None, str(weights["nosar"]), crs="EPSG:32633",
                                   transform=Affine(10, 0, 500_000, 0, -10, 5_000_000), tile=48)  # fmt: skip
    np.testing.assert_array_equal(out.values, want)
    with pytest.raises(ValueError, match="no CRS"):
        cloudfree.predict_dataarray(da.assign_attrs(crs=None), checkpoint="identity")
