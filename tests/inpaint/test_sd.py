"""Stable Diffusion inpainting through cloudfree's --weights path, on a tiny pipeline, offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cloudfree.errors import DataError
from cloudfree.inpaint import get_inpainter, inpaint
from cloudfree.inpaint.sd import (
    PIPELINE_PARTS,
    WHITE_REFLECTANCE,
    check_weights,
    from_sd,
    spectral_lookup,
    to_sd,
)

#: Tiny pipeline settings: 2 steps at 64 px (the toy VAE halves, so 32 latent px).
TINY = {"steps": 2, "size": 64, "device": "cpu"}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # No hub: any attempt to reach it fails instead of downloading.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _patch(seed: int = 0, size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic cloudy patch: land cover DN, a cloud over a third of it, its mask, S1."""
    from cloudfree.data.synthetic.clouds import simulate_clouds
    from cloudfree.data.synthetic.release import clear_s2, land_cover, s1_from_cover

    rng = np.random.default_rng(seed)
    cover = land_cover((size, size), rng, snow=False)
    clear = clear_s2(cover, rng)
    cloudy, truth = simulate_clouds(clear, rng, cover_fraction=0.3)
    return cloudy, truth, s1_from_cover(cover, rng)


def test_the_fixed_colour_transform_is_invertible() -> None:
    rho = np.linspace(0, WHITE_REFLECTANCE, 101, dtype=np.float32)
    v = to_sd(rho)
    assert v.min() == 0 and v.max() == pytest.approx(1.0)
    np.testing.assert_allclose(from_sd(v), rho, atol=1e-6)
    assert to_sd(np.float32(0.6)) == 1.0  # brighter than SD's white: saturated


def test_spectral_lookup_copies_the_spectrum_of_the_matching_colour() -> None:
    img = np.zeros((13, 4, 4), np.float32)
    img[:, :2] = np.arange(13)[:, None, None] * 100  # "A" pixels
    img[:, 2:] = 5000 - np.arange(13)[:, None, None] * 100  # "B" pixels
    clear = np.ones((4, 4), bool)
    rgb = img[[3, 2, 1]][:, [0, 3], [0, 3]]  # one A colour, one B colour
    out = spectral_lookup(img, clear, rgb)
    np.testing.assert_allclose(out[:, 0], img[:, 0, 0])
    np.testing.assert_allclose(out[:, 1], img[:, 3, 3])


def test_weights_folder_errors_say_what_belongs_there(tmp_path: Path, tiny_sd_dir: Path) -> None:
    with pytest.raises(DataError, match="does not exist.*model_index.json.*unet/config.json"):
        check_weights(tmp_path / "nothing")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd_dir, broken)
    for f in (broken / "unet").glob("diffusion_pytorch_model*"):
        f.unlink()
    shutil.rmtree(broken / "tokenizer")
    with pytest.raises(DataError, match=r"missing \['tokenizer/', 'unet/ weights"):
        get_inpainter("stable-diffusion", weights=broken)
    with pytest.raises(ValueError, match="needs its weights: --weights DIR"):
        get_inpainter("stable-diffusion")
    assert set(PIPELINE_PARTS) >= {"model_index.json", "unet/config.json", "tokenizer/"}


def test_a_text_to_image_unet_is_not_an_inpainting_pipeline(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    from .conftest import build_tiny_pipeline

    plain = tmp_path / "plain"
    build_tiny_pipeline(in_channels=4).save_pretrained(plain)
    with pytest.raises(DataError, match="takes 4 input channels, not an inpainting one"):
        check_weights(plain)
    assert json.loads((plain / "unet" / "config.json").read_text())["in_channels"] == 4


def test_inpaints_offline_from_the_folder_deterministically(tiny_sd_dir: Path) -> None:
    batch = np.stack([_patch(seed=0, size=48)[0], _patch(seed=1, size=48)[0]])
    masks = np.zeros((2, 48, 48), np.uint8)
    masks[0, 16:26, 18:30] = 1
    masks[1, 4:12, 30:44] = 2
    sd = get_inpainter("stable-diffusion", weights=tiny_sd_dir, **TINY)
    out = sd(batch, masks)
    assert out.shape == batch.shape and out.dtype == np.uint16
    region = sd.masks(batch, masks)
    # The 8 px dilation (the latent grid), and outside it the input, bit for bit.
    assert (region.sum(axis=(1, 2)) > (masks > 0).sum(axis=(1, 2))).all()
    for i in range(2):
        np.testing.assert_array_equal(out[i][:, ~region[i]], batch[i][:, ~region[i]])
        assert (out[i][:, region[i]] != batch[i][:, region[i]]).any()
    # Filled values: plausible reflectance (B4-B3-B2 within SD's [0, 0.3] range; the other
    # bands are spectra of clear pixels of the same image).
    rgb = out[:, [3, 2, 1]][np.repeat(region[:, None], 3, axis=1)]
    assert rgb.max() <= WHITE_REFLECTANCE * 10000 + 1
    for i in range(2):
        clear = ~region[i]
        for b in (0, 4, 7, 12):
            vals = out[i, b][region[i]]
            ref = batch[i, b][clear]
            assert ref.min() <= vals.min() and vals.max() <= ref.max()
    again = get_inpainter("stable-diffusion", weights=tiny_sd_dir, **TINY)(batch, masks)
    np.testing.assert_array_equal(out, again)  # same seed: same output
    other = get_inpainter("stable-diffusion", weights=tiny_sd_dir, seed=1, **TINY)(batch, masks)
    assert (other != out).any()  # another seed: another fill
    np.testing.assert_array_equal(other[0][:, ~region[0]], batch[0][:, ~region[0]])


def test_too_little_clear_comes_back_unchanged(tiny_sd_dir: Path) -> None:
    cloudy, _, _ = _patch()
    mask = np.ones(cloudy.shape[1:], np.uint8)
    mask[:2, :2] = 0  # 4 of 1024 pixels clear: under the 5 % SD needs to condition on
    out = inpaint(cloudy, mask, "stable-diffusion", weights=tiny_sd_dir, **TINY)
    np.testing.assert_array_equal(out, cloudy)


def test_hybrid_chain_with_stable_diffusion_inpainting(tmp_path: Path, tiny_sd_dir: Path) -> None:
    """The full hybrid on a synthetic patch: SD inpainting (tiny, from disk) -> the network."""
    import torch

    from cloudfree.bands import DSEN2CR
    from cloudfree.data.preprocess import normalize_s1, normalize_s2
    from cloudfree.methods.load import load_method
    from cloudfree.models import build_model, save_weights

    torch.manual_seed(0)
    model = build_model("hybrid", num_layers=1, feature_size=8, inpaint="stable-diffusion")
    torch.nn.init.normal_(model.tail.weight, std=0.01)  # a trained model is not its skip
    path = save_weights(model, tmp_path / "hybrid_sd.safetensors")
    with pytest.raises(ValueError, match="--sd-weights DIR"):
        load_method(str(path), device="cpu")
    method = load_method(str(path), device="cpu", sd_weights=str(tiny_sd_dir))
    method.inpaint.inpainter.size = TINY["size"]
    method.inpaint.inpainter.steps = TINY["steps"]
    cloudy, truth, s1 = _patch()
    batch = {
        "s2_cloudy": torch.from_numpy(normalize_s2(cloudy, DSEN2CR))[None],
        "s1": torch.from_numpy(normalize_s1(s1, DSEN2CR))[None],
        "mask": torch.from_numpy(truth)[None],
    }
    inputs = method.inputs(batch)
    pred = method.predict(batch)
    assert pred.shape == (1, 13, 32, 32) and torch.isfinite(pred).all()
    inp = inputs["s2_inpainted"]
    region = method.inpaint.inpainter.masks(cloudy, truth)[0]
    torch.testing.assert_close(
        inp[0][:, ~torch.from_numpy(region)], batch["s2_cloudy"][0][:, ~torch.from_numpy(region)]
    )
    assert (pred - inp).abs().max() > 0  # the network adds its correction
    torch.testing.assert_close(method.predict(batch), pred)  # deterministic end to end


def test_pack_caches_stable_diffusion_inpainting_for_the_sd_hybrid(
    tmp_path: Path, tiny_sd_dir: Path
) -> None:
    """``hybrid_sar_sd_carl`` trains from a pack inpainted with SD once (pack --inpaint)."""
    from cloudfree.config import load_config
    from cloudfree.data.packed.inpaint_cache import fill_inpainting, inpaint_complete
    from cloudfree.data.packed.pack import pack
    from cloudfree.data.release.discover import build_index
    from cloudfree.data.release.index import write_index
    from cloudfree.data.synthetic.release import synthesize
    from cloudfree.train.loop import train

    synthesize(tmp_path / "root", n=4, seed=1, size=48)
    write_index(build_index(tmp_path / "root"), tmp_path / "index.csv")
    pack(tmp_path / "index.csv", tmp_path / "packed", workers=0)
    opts = {"weights": str(tiny_sd_dir), **TINY}
    manifest = fill_inpainting(tmp_path / "packed", "stable-diffusion", opts, workers=2,
                               progress=False)  # fmt: skip
    assert inpaint_complete(manifest, "stable-diffusion")
    assert manifest["inpaint_timing"]["stable-diffusion"]["workers"] == 0  # one process
    cfg = load_config("hybrid_sar_sd_carl", [
        f"data.packed={tmp_path / 'packed'}", f"train.out_dir={tmp_path}", "train.epochs=1",
        "model.num_layers=1", "model.feature_size=8", "data.crop_size=32",
        "data.num_workers=0", "train.batch_size=2", "data.val_split=train"])  # fmt: skip
    assert train(cfg)["steps"] >= 1
