"""Issue 30, class 3: nodata as declared, and units beyond the obvious.

A scene whose missing half is declared as 65535, -9999 or NaN gives the very mask and
prediction of the same scene with 0 there (the Sentinel-2 NO_DATA value): the nodata value
never enters the mask nor the model. S2 stored as 8 bits, with the +1000 DN offset left in,
scaled by 10, or as reflectance with a few hot pixels is refused, naming the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from cloudfree.cli import main
from tests.predict.conftest import synth_s2, write_tif

from .conftest import digest, fails


def _with_hole(nodata: float, dtype: str) -> np.ndarray:
    s2 = synth_s2(64, 64).astype(dtype)
    s2[:, :, :24] = nodata  # the left part holds no data
    return s2


@pytest.mark.parametrize("backend", ["dsen2cr", "auto"])
def test_a_declared_nodata_never_enters_the_mask_nor_the_model(
    scene: dict[str, Path], tmp_path: Path, backend: str
) -> None:
    if backend == "auto":
        pytest.importorskip("ukis_csmask", reason="the default masker is ukis-csmask")

    def run(
        name: str, nodata: float | None, dtype: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s2 = write_tif(tmp_path / f"{name}.tif", _with_hole(nodata or 0, dtype), nodata=nodata)
        out, mask = tmp_path / f"{name}_out.tif", tmp_path / f"{name}_mask.tif"
        assert main(["predict", "--s2", str(s2), "--out", str(out), "--mask-out", str(mask),
                     "--checkpoint", str(scene["weights"]), "--mask-backend", backend,
                     "--no-progress"]) == 0  # fmt: skip
        with rasterio.open(out) as o, rasterio.open(mask) as m:
            assert o.nodata == nodata or nodata is None or (np.isnan(o.nodata) and np.isnan(nodata))
            return o.read(), m.read(1), o.read_masks(1)

    # The reference: no nodata declared, 0 in every band where there is no data.
    ref, ref_mask, _ = run("zero", None, "uint16")
    for name, nodata, dtype in (("u16", 65535, "uint16"), ("i16", -9999, "int16"),
                                ("f32", np.nan, "float32")):  # fmt: skip
        out, mask, valid = run(name, nodata, dtype)
        data = np.zeros((64, 64), bool)
        data[:, 24:] = True
        assert np.array_equal(valid > 0, data), name  # the hole is nodata in the output
        assert np.array_equal(mask, ref_mask), name
        # A float file's prediction is not rounded: the same DN, to rounding.
        assert np.array_equal(np.round(out[:, data]).astype(np.int64), ref[:, data]), name


def test_s2_in_the_wrong_units_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dn = synth_s2(64, 64).astype(np.float64)  # real-like DN: ~200..2600
    hot = dn / 10000
    hot.reshape(13, -1)[:, :20] = 3.0  # reflectance, with a few saturated (hot) pixels
    cases = {
        "u8.tif": ((dn / 40).astype(np.uint8), "8 bits"),
        "offset.tif": ((dn + 1000).astype(np.int32), "+1000 DN offset"),
        "x10.tif": ((dn * 10).astype(np.int32), "a scale of 10 or more"),
        "clipped.tif": (np.clip(dn * 30, 0, 65535).astype(np.uint16), "a scale of 10 or more"),
        "hot.tif": (hot.astype(np.float32), "reflectance"),
        "negative.tif": ((dn - 1500).astype(np.int16), "are negative"),
    }
    folder = tmp_path / "in"
    folder.mkdir()
    for name, (values, _) in cases.items():
        write_tif(folder / name, values)
    before = digest(folder)
    for name, (_, expected) in cases.items():
        src = str(folder / name)
        fails(["mask", src, "--out", str(tmp_path / "m.tif")], capsys, src, expected)
        fails(["predict", "--s2", src, "--out", str(tmp_path / "p.tif"), "--checkpoint",
               "identity", "--no-progress"], capsys, src, expected)  # fmt: skip
    assert digest(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
