"""Scene prediction with hybrid weights and with a mask file: the chain runs window by window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.models import build_model, save_weights
from cloudfree.predict.scene import predict_scene

from .conftest import read_tif, synth_s1, synth_s2, write_tif


def _hybrid(tmp_path: Path, include_sar: bool, trained: bool) -> Path:
    torch.manual_seed(0)
    model = build_model("hybrid" if include_sar else "hybrid-nosar", num_layers=1, feature_size=8)
    if trained:
        torch.nn.init.normal_(model.tail.weight, std=0.05)
    return save_weights(model, tmp_path / f"hybrid_{include_sar}_{trained}.safetensors")


def test_untrained_hybrid_predicts_the_mask_fill_of_the_scene(tmp_path: Path) -> None:
    """Zero tail = its inpainting: predict with the hybrid equals predict with mask-fill."""
    s2 = write_tif(tmp_path / "s2.tif", synth_s2(80, 96))
    kw = {"tile": 64, "overlap": 16, "progress": False}
    a = predict_scene(s2, tmp_path / "h.tif", str(_hybrid(tmp_path, False, False)), **kw)
    b = predict_scene(s2, tmp_path / "f.tif", "mask-fill", **kw)
    assert a["cloud_fraction"] == b["cloud_fraction"] > 0  # the hybrid computed the scene mask
    np.testing.assert_array_equal(read_tif(tmp_path / "h.tif")[0], read_tif(tmp_path / "f.tif")[0])


@pytest.mark.parametrize("include_sar", [False, True])
def test_hybrid_with_a_mask_file(tmp_path: Path, include_sar: bool) -> None:
    data = synth_s2(64, 64)
    s2 = write_tif(tmp_path / "s2.tif", data)
    s1 = write_tif(tmp_path / "s1.tif", synth_s1(64, 64)) if include_sar else None
    mask = np.zeros((1, 64, 64), np.uint8)
    mask[0, 10:30, 30:60] = 255  # another tool's 0/255 mask: read as cloud
    mask_path = write_tif(tmp_path / "mask.tif", mask)
    out, used = tmp_path / "out.tif", tmp_path / "used.tif"
    summary = predict_scene(s2, out, str(_hybrid(tmp_path, include_sar, True)), s1,
                            mask=mask_path, mask_out=used, keep_clear=True, tile=64,
                            overlap=16, progress=False)  # fmt: skip
    assert summary["mask_source"] == str(mask_path)
    got, prof = read_tif(out)
    assert got.shape == data.shape and prof["transform"] == read_tif(s2)[1]["transform"]
    m = read_tif(used)[0][0]
    np.testing.assert_array_equal(m, (mask[0] > 0).astype(np.uint8))
    np.testing.assert_array_equal(got[:, m == 0], data[:, m == 0])  # --keep-clear
    assert (got[:, m > 0] != data[:, m > 0]).any()
