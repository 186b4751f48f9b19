"""Scene prediction on a CUDA device (``gpu`` marker: skipped without one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloudfree.predict.scene import predict_scene

from .conftest import read_tif, synth_s1, synth_s2, write_tif

pytestmark = pytest.mark.gpu


def test_cuda_prediction_matches_the_cpu(tmp_path: Path, sar_weights) -> None:
    weights, _ = sar_weights
    s2 = write_tif(tmp_path / "s2.tif", synth_s2(160, 224).astype(np.float32))
    s1 = write_tif(tmp_path / "s1.tif", synth_s1(160, 224))
    kw = {"s1": s1, "tile": 64, "overlap": 32, "window": 64, "progress": False}
    cpu = predict_scene(s2, tmp_path / "cpu.tif", str(weights), device="cpu", **kw)
    gpu = predict_scene(s2, tmp_path / "gpu.tif", str(weights), device="cuda", **kw)
    bf16 = predict_scene(s2, tmp_path / "bf16.tif", str(weights), device="cuda",
                         precision="bf16", **kw)  # fmt: skip
    assert gpu["device"].startswith("cuda") and gpu["tiles"] == cpu["tiles"]
    ref, _ = read_tif(tmp_path / "cpu.tif")
    out, _ = read_tif(tmp_path / "gpu.tif")
    half, _ = read_tif(tmp_path / "bf16.tif")
    # fp32 on both (cuDNN may pick other algorithms: float rounding only); values ~1e3 DN.
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=0.5)
    # bf16 keeps 8 mantissa bits: within ~1 % of the fp32 prediction.
    assert bf16["precision"] == "bf16"
    np.testing.assert_allclose(half, ref, rtol=2e-2, atol=20.0)
