"""The bundled weights (src/cloudfree/weights/bundled/) load and do their job.

They are produced by scripts/train_bundled.sh and described in MODEL_CARD.md beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cloudfree
from cloudfree.data.bands import DSEN2CR, NUM_S2_BANDS
from cloudfree.data.clouds import simulate_clouds
from cloudfree.data.preprocess import normalize_s1, normalize_s2
from cloudfree.data.synth import clear_s2, land_cover, s1_from_cover
from cloudfree.models.weights import CONFIG_KEY, MODEL_KEY, load_weights, read_metadata

WEIGHTS_DIR = Path(cloudfree.__file__).parent / "weights" / "bundled"
FILES = {True: "dsen2cr_demo_sar.safetensors", False: "dsen2cr_demo_nosar.safetensors"}
#: Size budget of one bundled file: committed to git and shipped in the wheel.
MAX_BYTES = 2_000_000
MAX_PARAMETERS = 400_000


@pytest.mark.parametrize("include_sar", [True, False])
def test_bundled_file_loads_as_the_small_variant(include_sar: bool) -> None:
    path = WEIGHTS_DIR / FILES[include_sar]
    assert path.is_file(), f"{path} missing: run scripts/train_bundled.sh with INSTALL=1"
    assert path.stat().st_size < MAX_BYTES
    meta = read_metadata(path)
    assert meta[MODEL_KEY] == ("dsen2cr" if include_sar else "dsen2cr-nosar")
    assert json.loads(meta[CONFIG_KEY]) == {
        "include_sar": include_sar,
        "num_layers": 4,
        "feature_size": 48,
    }
    assert "MODEL_CARD.md" in meta["description"]
    model = load_weights(path)
    assert model.include_sar is include_sar
    params = list(model.parameters())
    assert sum(p.numel() for p in params) < MAX_PARAMETERS
    assert all(torch.isfinite(p).all() for p in params)
    assert not model.training


def test_model_card_names_both_files_and_says_demonstration() -> None:
    card = (WEIGHTS_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    for name in FILES.values():
        assert name in card
    assert "demonstration" in card.lower() and "convert-keras" in card


def _unseen_patch(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A fully synthetic 96 x 96 triplet (never seen in training, which used real clear images)
    with thick clouds over half of it: (clear DN, cloudy DN, S1 dB, truth)."""
    rng = np.random.default_rng(seed)
    cover = land_cover((96, 96), rng, snow=False)
    clear = clear_s2(cover, rng)
    s1 = s1_from_cover(cover, rng)
    cloudy, truth = simulate_clouds(clear, rng, cover_fraction=0.5)
    return clear, cloudy, s1, truth


# Measured when the weights were made (scripts/train_bundled.sh): on this patch the MAE ratio
# model / identity is 0.48 (SAR) and 0.73 (no SAR); the bounds leave room for BLAS differences.
@pytest.mark.parametrize(("include_sar", "max_ratio"), [(True, 0.7), (False, 0.9)])
def test_model_beats_identity_on_an_unseen_cloudy_patch(
    include_sar: bool, max_ratio: float
) -> None:
    model = load_weights(WEIGHTS_DIR / FILES[include_sar])
    clear, cloudy, s1, truth = _unseen_patch(seed=0)
    assert (truth > 0).mean() > 0.4  # the seed gives thick clouds: a real job to do
    x = torch.from_numpy(normalize_s2(cloudy, DSEN2CR))[None]
    s = torch.from_numpy(normalize_s1(s1, DSEN2CR))[None] if include_sar else None
    with torch.no_grad():
        pred = model(x, s)[0].numpy() * DSEN2CR.s2_scale
    assert pred.shape == (NUM_S2_BANDS, 96, 96)
    target = clear.astype(np.float64)
    mae_model = np.abs(pred - target).mean()
    mae_identity = np.abs(cloudy - target).mean()
    # Identity is exact on clear pixels; the model must still win overall by a clear margin.
    assert mae_model < max_ratio * mae_identity, (mae_model, mae_identity)
