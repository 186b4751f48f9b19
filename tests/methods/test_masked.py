"""A method given another masker's mask in evaluation (``evaluate --mask-backend``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cloudfree.data.release.discover import build_index
from cloudfree.data.synthetic.release import synthesize
from cloudfree.evaluate.run import evaluate
from cloudfree.io import read_raster
from cloudfree.masks import ukis
from cloudfree.masks.csm import cloud_shadow_mask
from cloudfree.masks.scene import mask_array
from cloudfree.methods.masked import OtherMask

needs_ukis = pytest.mark.skipif(
    not ukis.ukis_available(),
    reason="ukis-csmask is not installed (optional extra: pip install 'cloudfree[masks]')",
)


class Recorder:
    """A stand-in method that returns its input and keeps the masks it was given."""

    name = "recorder"
    include_sar = False
    scaling = "dsen2cr"
    needs_mask = True
    predicts_variance = False

    def __init__(self) -> None:
        self.masks: dict[str, np.ndarray] = {}

    def unchanged(self, mask: np.ndarray) -> None:
        return None

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        for pid, m in zip(batch["id"], batch["mask"], strict=True):
            self.masks[str(pid)] = m.numpy().copy()
        return batch["s2_cloudy"].clone()


@needs_ukis
def test_evaluate_gives_the_method_the_other_mask_and_keeps_the_paper_areas(
    tmp_path: Path,
) -> None:
    root = tmp_path / "synth"
    synthesize(root, n=4, size=64, seed=5)
    index = build_index(root)
    plain, other = Recorder(), Recorder()
    a = evaluate(plain, root, tmp_path / "a", split=None, report=False)
    b = evaluate(other, root, tmp_path / "b", split=None, report=False, mask_backend="ukis")
    assert a["method_mask"] == "dsen2cr" and b["method_mask"] == "ukis"
    assert b["method"] == "recorder (ukis mask)"
    differs = 0
    for row in index.rows:
        dn = np.clip(read_raster(index.resolve(row, "s2_cloudy"))[0], 0, 10000)
        np.testing.assert_array_equal(plain.masks[row.id], cloud_shadow_mask(dn))
        # The whole-scene commands' mask of the same patch (its DN as the network value times
        # 2000, as evaluate sees them), growth included.
        np.testing.assert_array_equal(other.masks[row.id], mask_array(dn.astype(np.float32)))
        differs += int((plain.masks[row.id] != other.masks[row.id]).any())
    assert differs > 0
    # The metrics' areas (and so every number of identity) stay the paper's mask's.
    for key in ("cloud_fraction", "mae", "mae_recon", "mae_reprod"):
        assert a["metrics"][key] == pytest.approx(b["metrics"][key], nan_ok=True), key


def test_other_mask_passes_everything_else_through() -> None:
    inner = Recorder()
    inner.device = "cpu"  # type: ignore[attr-defined]
    wrapped = OtherMask(inner, "dsen2cr", dilate="1px")
    assert (wrapped.include_sar, wrapped.scaling, wrapped.needs_mask) == (False, "dsen2cr", True)
    assert wrapped.device == "cpu" and wrapped.mask_backend == "dsen2cr"
    x = np.rint(np.clip(np.random.default_rng(0).normal(1500, 800, (1, 13, 24, 24)), 1, 9000))
    batch = {"s2_cloudy": torch.from_numpy((x / 2000).astype(np.float32)), "id": ["p"],
             "mask": torch.zeros((1, 24, 24), dtype=torch.uint8)}  # fmt: skip
    wrapped.predict(batch)
    from cloudfree.masks.dilate import dilate_classes

    expected = dilate_classes(cloud_shadow_mask(x[0].astype(np.float32)), 1.0)
    np.testing.assert_array_equal(inner.masks["p"], expected)
