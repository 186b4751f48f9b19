"""A tiny Stable Diffusion inpainting pipeline built from component configs, saved to disk.

No hub, no download: every part is built here at toy size with fixed seeds (as diffusers' own
``get_dummy_components`` in ``test_stable_diffusion_inpaint.py``), the tokenizer from an
in-memory byte-level vocabulary, then written with ``save_pretrained`` so that tests load it
back through cloudfree's ``--weights DIR`` path, offline.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def _byte_vocab() -> dict[str, int]:
    """CLIP's special tokens and the 256 byte-level characters, alone and word-final."""
    # GPT-2 / CLIP byte -> printable unicode mapping, written out here.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    for ch in chars:
        vocab.setdefault(ch + "</w>", len(vocab))
    return vocab


def build_tiny_pipeline(in_channels: int = 9):  # noqa: ANN201 (diffusers type, lazily imported)
    """A StableDiffusionInpaintPipeline with a 2-level UNet, a 2-block VAE, a 2-layer CLIP."""
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionInpaintPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=32,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[16, 32],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    torch.manual_seed(0)
    vocab = _byte_vocab()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=2,
            vocab_size=len(vocab),
            max_position_embeddings=77,
        )
    )
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    return StableDiffusionInpaintPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=PNDMScheduler(skip_prk_steps=True, steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the tiny inpainting pipeline (``save_pretrained``); skips without diffusers."""
    pytest.importorskip("diffusers", reason="Stable Diffusion tests need the [inpaint] extra")
    pytest.importorskip("transformers", reason="Stable Diffusion tests need the [inpaint] extra")
    out = tmp_path_factory.mktemp("tiny_sd")
    build_tiny_pipeline().save_pretrained(out)
    return out
