"""The mask of ``cloudfree predict``: the masker and growth asked for, written as used, the
same as ``cloudfree mask``'s; what the summary says of clear and cloud-covered scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from cloudfree.cli import main
from cloudfree.masks import ukis
from cloudfree.masks.dilate import dilate_classes
from cloudfree.masks.scene import mask_scene
from cloudfree.predict.scene import predict_scene

from .conftest import synth_s2, write_tif

needs_ukis = pytest.mark.skipif(
    not ukis.ukis_available(),
    reason="ukis-csmask is not installed (optional extra: pip install 'cloudfree[masks]')",
)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


@needs_ukis
def test_predict_uses_and_writes_the_default_mask_of_cloudfree_mask(
    tmp_path: Path, sen12mscr_root: Path
) -> None:
    src = (
        sen12mscr_root
        / "ROIs1970_fall_s2_cloudy/s2_cloudy_136/ROIs1970_fall_s2_cloudy_136_p100.tif"
    )
    out, mask_out = tmp_path / "out.tif", tmp_path / "mask.tif"
    summary = predict_scene(src, out, "mask-fill", keep_clear=True, mask_out=mask_out,
                            progress=False)  # fmt: skip
    ref = mask_scene(src, tmp_path / "ref.tif")
    used = _read(mask_out)[0]
    np.testing.assert_array_equal(used, _read(tmp_path / "ref.tif")[0])
    assert summary["mask_backend"] == "ukis" and summary["dilate_m"] == 60.0
    assert summary["masker"] == ref["masker"] and summary["mask_source"] == "computed"
    assert summary["cloud_fraction"] == pytest.approx(ref["cloud_fraction"])
    with rasterio.open(mask_out) as ds:
        assert ds.tags()["backend"] == "ukis" and ds.tags()["dilate"] == "6 px"
    got, raw = _read(out), _read(src)
    np.testing.assert_array_equal(got[:, used == 0], raw[:, used == 0])
    changed = (got != raw).any(axis=0).mean()
    assert summary["changed_fraction"] == pytest.approx(changed)
    assert 0 < changed <= (used > 0).mean()


def test_predict_grows_a_given_mask_only_when_asked(tmp_path: Path) -> None:
    s2 = write_tif(tmp_path / "s2.tif", synth_s2(64, 72))
    m = np.zeros((1, 64, 72), np.uint8)
    m[0, 30:34, 20:25] = 1
    m[0, 50, 60] = 2
    mask = write_tif(tmp_path / "given.tif", m)
    for dilate, radius in ((None, 0.0), ("40", 4.0)):
        out = tmp_path / f"mask_{radius}.tif"
        summary = predict_scene(s2, tmp_path / f"out_{radius}.tif", "identity", mask=mask,
                                mask_out=out, dilate=dilate, progress=False)  # fmt: skip
        np.testing.assert_array_equal(_read(out)[0], dilate_classes(m[0], radius))
        assert summary["mask_source"] == str(mask) and summary["dilate_px"] == radius


@needs_ukis
def test_clear_and_cloud_covered_scenes_are_reported(
    tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    clear = shared_data / "eolearn/reference_scene_2.tif"
    summary = predict_scene(clear, tmp_path / "c.tif", "mask-fill", keep_clear=True,
                            progress=False)  # fmt: skip
    assert summary["changed_fraction"] == 0.0
    assert summary["warnings"] == [
        "nothing to remove: 0.00 % of the scene is cloud or shadow; 0.00 % of its pixels were "
        "changed"
    ]
    cloudy = shared_data / "eolearn/reference_scene_0.tif"
    assert main(["predict", "--s2", str(cloudy), "--out", str(tmp_path / "o.tif"),
                 "--checkpoint", "mask-fill", "--no-progress", "--summary",
                 str(tmp_path / "s.json")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "mask (ukis (ukis-csmask model 1.0.0-4BL1C, at 10 m and 30 m), grown by 6 px)" in printed
    assert "cloud 100.00 %" in printed
    assert any("100.0 % of the scene is under cloud" in r.message for r in caplog.records)
    import json

    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["warnings"][0].startswith("100.0 % of the scene is under cloud")


def test_bad_mask_flags_fail_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s2 = write_tif(tmp_path / "s2.tif", synth_s2(32, 32))
    out = tmp_path / "out.tif"
    assert main(["predict", "--s2", str(s2), "--out", str(out), "--checkpoint", "identity",
                 "--keep-clear", "--dilate", "-3"]) == 1  # fmt: skip
    assert "--dilate" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit):
        main(["predict", "--s2", str(s2), "--out", str(out), "--mask-backend", "fmask"])
    assert "invalid choice: 'fmask'" in capsys.readouterr().err
