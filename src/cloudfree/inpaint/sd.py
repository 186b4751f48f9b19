"""``stable-diffusion``: Stable Diffusion inpainting of the true-colour bands, from local weights.

The pipeline is diffusers' ``StableDiffusionInpaintPipeline`` loaded from a folder on disk
(``--weights DIR``: a copy of e.g. ``stable-diffusion-v1-5/stable-diffusion-inpainting`` or
``stabilityai/stable-diffusion-2-inpainting``); nothing is downloaded at run time. diffusers and
transformers are an optional extra (``pip install "cloudfree[inpaint]"``), imported when a
pipeline is first used.

**The band question** (SD's VAE sees 3 bands of 8-bit-like colour; our models need 13 bands of
reflectance), decided as follows; each choice is a named constant below:

1. *Which bands go through SD*: true colour, B4-B3-B2, the only triplet SD was trained on
   (as Czerkawski & Tachtatzis, GRSL 2024). False-colour triplets would be out of SD's
   distribution.
2. *Reflectance <-> SD values*: one fixed invertible transform for every image,
   ``v = clip(rho / 0.3, 0, 1) ** (1 / 2.2)`` and back ``rho = 0.3 * v ** 2.2``
   (:data:`WHITE_REFLECTANCE`, :data:`GAMMA`), floats (no 8-bit rounding), no per-image
   stretch: the same ground looks the same to SD in every patch, and the inverse is exact on
   [0, 0.3] reflectance (surfaces brighter than 0.3 in B4-B3-B2 are saturated for SD; they are
   only context, the output replaces masked pixels only).
3. *The other 10 bands*: for each masked pixel, the spectra of the ``k`` clear pixels of the
   same image whose B4-B3-B2 are closest to SD's output (standardised, inverse-distance
   weighted, :data:`BAND_NEIGHBOURS`): a per-image spectral lookup fitted on the clear pixels.
   Measured on simulated clouds over the real clear images of ``../shared/data`` with the true
   RGB given (a perfect SD): MAE of the 10 bands 0.018 for this lookup vs 0.030 for a ridge
   regression on R, G, B (0.027 with VV, VH added; adding S1 to the lookup gives 0.019).
4. *Mask dilation*: 8 px (:data:`SD_DILATE_PX`) at the input resolution: SD applies the mask on
   its latent grid (8 x 8 pixel cells), and the VAE blurs a few pixels around cloud edges.
5. *Working size*: SD 1.5/2 inpainting works at 512 px; a 256 px patch is upsampled 2x
   (bilinear) to 512 and the result downsampled back with area averaging; other sizes scale
   their longer side to :data:`WORKING_SIZE_PX`, rounded to the VAE's multiple (8).
6. *Seeds and steps*: 20 steps, classifier-free guidance 7.5 (Czerkawski & Tachtatzis),
   strength 1; image ``i`` of a call uses ``torch.Generator("cpu").manual_seed(seed + i)``,
   so a result depends on the seed and the image's place in the call only, the same on CPU
   and CUDA.
7. *Too little to condition on*: an image with less than :data:`SD_MIN_CLEAR_FRACTION` clear
   comes back unchanged (the lookup of step 3 needs clear pixels, and SD has no context).

The composite is ``(1 - m) * original + m * filled`` with the dilated mask ``m`` (binary), so
pixels outside it are the input bit for bit (:class:`~cloudfree.inpaint.base.Inpainter`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np

from cloudfree.bands import S2_DN_PER_REFLECTANCE, s2_index
from cloudfree.errors import DataError
from cloudfree.inpaint.base import Inpainter

#: The bands that go through SD, as its R, G, B.
SD_BANDS: Final[tuple[str, ...]] = ("B4", "B3", "B2")
#: Reflectance mapped to SD's white (1.0).
WHITE_REFLECTANCE: Final[float] = 0.3
#: Display gamma of the fixed transform (sRGB-like).
GAMMA: Final[float] = 2.2
#: Mask dilation for SD, pixels at the input resolution.
SD_DILATE_PX: Final[int] = 8
#: Side SD works at (SD 1.5 / 2 inpainting: 512).
WORKING_SIZE_PX: Final[int] = 512
#: Denoising steps, classifier-free guidance (Czerkawski & Tachtatzis 2024: 20, 7.5).
STEPS: Final[int] = 20
GUIDANCE: Final[float] = 7.5
#: Prompts: what a cloud-free true-colour Sentinel-2 image looks like, and what it must not.
PROMPT: Final[str] = "a cloud-free satellite image of the ground, Sentinel-2 true colour"
NEGATIVE_PROMPT: Final[str] = "clouds, haze, fog, shadows, text, watermark, border"
#: Clear pixels whose spectra give a masked pixel its other 10 bands.
BAND_NEIGHBOURS: Final[int] = 8
#: Images with a smaller clear share are returned unchanged.
SD_MIN_CLEAR_FRACTION: Final[float] = 0.05

#: What a weights folder must hold: the parts of a diffusers inpainting pipeline.
PIPELINE_PARTS: Final[dict[str, str]] = {
    "model_index.json": "the pipeline index (written by save_pretrained)",
    "unet/config.json": "the UNet, 9 input channels (4 latent + 1 mask + 4 masked image)",
    "vae/config.json": "the autoencoder (AutoencoderKL)",
    "text_encoder/config.json": "the CLIP text encoder",
    "tokenizer/": "the CLIP tokenizer files",
    "scheduler/scheduler_config.json": "the noise scheduler",
}
_WEIGHT_FILES: Final[dict[str, tuple[str, ...]]] = {
    "unet": ("diffusion_pytorch_model", "diffusion_pytorch_model.fp16"),
    "vae": ("diffusion_pytorch_model", "diffusion_pytorch_model.fp16"),
    "text_encoder": ("model", "model.fp16", "pytorch_model", "pytorch_model.fp16"),
}
_HOW = (
    "a local copy of a diffusers Stable Diffusion *inpainting* pipeline, e.g. "
    "'huggingface-cli download stable-diffusion-v1-5/stable-diffusion-inpainting --local-dir DIR' "
    "on a machine with internet (or pipe.save_pretrained(DIR)); it holds "
    + "; ".join(f"{k} ({v})" for k, v in PIPELINE_PARTS.items())
    + ", and the weights of unet/, vae/ and text_encoder/ (.safetensors or .bin)"
)


def to_sd(reflectance: np.ndarray) -> np.ndarray:
    """Reflectance -> SD's [0, 1] colour values (the fixed transform, module docstring)."""
    v = np.clip(np.asarray(reflectance, dtype=np.float32) / np.float32(WHITE_REFLECTANCE), 0, 1)
    return v ** np.float32(1.0 / GAMMA)


def from_sd(values: np.ndarray) -> np.ndarray:
    """SD's [0, 1] colour values -> reflectance (the inverse of :func:`to_sd` on [0, 0.3])."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0, 1)
    return np.float32(WHITE_REFLECTANCE) * v ** np.float32(GAMMA)


def check_weights(path: str | os.PathLike[str]) -> Path:
    """Check that a folder holds a complete diffusers inpainting pipeline, before loading it.

    Raises:
        DataError: the folder is missing, a part or its weights are missing (the message lists
            what belongs there), or its UNet is not an inpainting UNet (9 input channels).
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(root, "Stable Diffusion weights folder does not exist", _HOW)
    missing = [k for k in PIPELINE_PARTS if not (root / k).exists()]
    for part, stems in _WEIGHT_FILES.items():
        folder = root / part
        if folder.is_dir() and not any(
            any(folder.glob(f"{stem}*{ext}")) for stem in stems for ext in (".safetensors", ".bin")
        ):
            missing.append(f"{part}/ weights ({stems[0]}.safetensors)")
    if missing:
        raise DataError(root, f"is not a complete inpainting pipeline: missing {missing}", _HOW)
    try:
        unet = json.loads((root / "unet" / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise DataError(root / "unet" / "config.json", f"unreadable ({e})", _HOW) from e
    channels = unet.get("in_channels")
    if channels != 9:
        raise DataError(
            root,
            f"holds a Stable Diffusion pipeline whose UNet takes {channels} input channels, not "
            "an inpainting one (9: 4 latent + 1 mask + 4 masked-image latent)",
            "an inpainting model such as stable-diffusion-inpainting or "
            "stable-diffusion-2-inpainting",
        )
    return root


def load_pipeline(path: str | os.PathLike[str], device: str = "auto") -> Any:
    """diffusers' ``StableDiffusionInpaintPipeline`` from a local folder, offline.

    Args:
        path: the weights folder (:func:`check_weights`).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ...; fp16 on CUDA, fp32
            on the CPU.

    Raises:
        DataError: an incomplete or unsuitable folder, or one diffusers cannot load.
        ImportError: diffusers / transformers are not installed.
    """
    import torch

    root = check_weights(path)
    try:
        from diffusers import StableDiffusionInpaintPipeline
    except ImportError as e:
        raise ImportError(
            "the 'stable-diffusion' inpainting needs diffusers and transformers: "
            'pip install "cloudfree[inpaint]"'
        ) from e
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
    try:
        with _quiet_loading():
            pipe = StableDiffusionInpaintPipeline.from_pretrained(
                root,
                torch_dtype=dtype,  # the name every diffusers >= 0.30 knows
                local_files_only=True,  # never the hub
                safety_checker=None,
                requires_safety_checker=False,
            )
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise DataError(
            root, f"diffusers could not load it as an inpainting pipeline: {e}", _HOW
        ) from e
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No loading progress bars from diffusers / transformers (restored afterwards), no
    deprecation noise."""
    import diffusers.utils.logging as dlog

    loggers: list[Any] = [dlog]
    try:
        import transformers.utils.logging as tlog

        loggers.append(tlog)
    except ImportError:  # pragma: no cover - transformers comes with the extra
        pass
    states = [(m, m.is_progress_bar_enabled()) for m in loggers]
    for m, _ in states:
        m.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            # Recent diffusers rename torch_dtype to dtype, which older ones do not take.
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            yield
    finally:
        for m, was_enabled in states:
            if was_enabled:
                m.enable_progress_bar()


def _working_shape(h: int, w: int, size: int, multiple: int) -> tuple[int, int]:
    s = size / max(h, w)
    return (
        max(multiple, round(h * s / multiple) * multiple),
        max(multiple, round(w * s / multiple) * multiple),
    )


def spectral_lookup(
    img: np.ndarray, clear: np.ndarray, rgb: np.ndarray, k: int = BAND_NEIGHBOURS
) -> np.ndarray:
    """All 13 bands for pixels known only by their B4-B3-B2 (step 3 of the module docstring).

    Args:
        img: (13, H, W) DN of one image; its ``clear`` pixels are the references.
        clear: (H, W) bool.
        rgb: (3, n) B4, B3, B2 DN of the pixels to complete.

    Returns:
        (13, n) float32 DN: the inverse-distance weighted mean of the spectra of the ``k``
        clear pixels closest in standardised B4-B3-B2; B4, B3, B2 themselves are ``rgb``.
    """
    from scipy.spatial import cKDTree

    idx = [s2_index(b) for b in SD_BANDS]
    ref = img[:, clear]  # (13, n_clear)
    feats = ref[idx].T
    sd = np.maximum(feats.std(axis=0), np.float32(1.0))  # DN: at least 1 DN of spread
    kk = min(k, feats.shape[0])
    dist, nn = cKDTree(feats / sd).query(rgb.T / sd, k=kk)
    if kk == 1:
        dist, nn = dist[:, None], nn[:, None]
    weights = (1.0 / (dist + 0.05)).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)
    out = (ref[:, nn] * weights[None]).sum(axis=-1)
    out[idx] = rgb
    return out.astype(np.float32)


class StableDiffusion(Inpainter):
    """Stable Diffusion inpainting of B4-B3-B2, the other bands by spectral lookup.

    Args:
        weights: folder of a diffusers inpainting pipeline (:func:`check_weights`).
        steps: denoising steps; guidance: classifier-free guidance scale.
        prompt, negative_prompt: text conditioning.
        seed: image ``i`` of a call is generated with seed ``seed + i``.
        size: working side, pixels (the longer side of an image is scaled to it).
        batch_size: images per pipeline call.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        dilate: mask dilation, pixels (default :data:`SD_DILATE_PX`).
        min_clear_fraction: images with a smaller clear share come back unchanged.

    The pipeline is loaded on first use (:func:`load_pipeline`), or pass ``pipeline=``.
    """

    name: ClassVar[str] = "stable-diffusion"
    DEFAULT_DILATE: ClassVar[int] = SD_DILATE_PX

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        *,
        steps: int = STEPS,
        guidance: float = GUIDANCE,
        prompt: str = PROMPT,
        negative_prompt: str = NEGATIVE_PROMPT,
        seed: int = 0,
        size: int = WORKING_SIZE_PX,
        batch_size: int = 4,
        device: str = "auto",
        dilate: int | None = None,
        min_clear_fraction: float = SD_MIN_CLEAR_FRACTION,
        pipeline: Any = None,
    ) -> None:
        super().__init__(dilate)
        if weights is None and pipeline is None:
            raise ValueError(
                "the 'stable-diffusion' inpainting needs its weights: --weights DIR (" + _HOW + ")"
            )
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if size < 8 or batch_size < 1:
            raise ValueError(f"need size >= 8 and batch_size >= 1, got {size}, {batch_size}")
        if not 0.0 <= min_clear_fraction < 1.0:
            raise ValueError(f"min_clear_fraction must be in [0, 1), got {min_clear_fraction}")
        if weights is not None and pipeline is None:
            check_weights(weights)  # fail now, not after the first batch was read
        self.weights = None if weights is None else Path(weights)
        self.steps, self.guidance = int(steps), float(guidance)
        self.prompt, self.negative_prompt = prompt, negative_prompt
        self.seed, self.size, self.batch_size = int(seed), int(size), int(batch_size)
        self.device, self.min_clear_fraction = device, float(min_clear_fraction)
        self._pipe = pipeline

    @property
    def pipeline(self) -> Any:
        """The diffusers pipeline (loaded on first use)."""
        if self._pipe is None:
            assert self.weights is not None
            self._pipe = load_pipeline(self.weights, self.device)
        return self._pipe

    def min_clear(self, height: int, width: int) -> int:
        """At least :attr:`min_clear_fraction` of the image, and one pixel, must be clear."""
        return max(1, math.ceil(self.min_clear_fraction * height * width))

    def generate_rgb(self, rgb01: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Run SD on a batch of colour images.

        Args:
            rgb01: (N, 3, H, W) float32 SD colour values in [0, 1].
            mask: (N, H, W) bool, True = repaint.

        Returns:
            (N, 3, H, W) float32 in [0, 1]: SD's images, resampled back to H x W.
        """
        import torch
        import torch.nn.functional as F

        pipe = self.pipeline
        n, _, h, w = rgb01.shape
        wh, ww = _working_shape(h, w, self.size, int(getattr(pipe, "vae_scale_factor", 8)))
        img = torch.from_numpy(np.ascontiguousarray(rgb01))
        m = torch.from_numpy(mask.astype(np.float32))[:, None]
        img = F.interpolate(img, size=(wh, ww), mode="bilinear", align_corners=False).clamp(0, 1)
        m = F.interpolate(m, size=(wh, ww), mode="nearest")
        out = np.empty((n, 3, h, w), dtype=np.float32)
        for start in range(0, n, self.batch_size):
            sel = slice(start, min(n, start + self.batch_size))
            count = sel.stop - sel.start
            gens = [
                torch.Generator("cpu").manual_seed(self.seed + i)
                for i in range(sel.start, sel.stop)
            ]
            result = pipe(
                prompt=[self.prompt] * count,
                negative_prompt=[self.negative_prompt] * count,
                image=img[sel],
                mask_image=m[sel],
                height=wh,
                width=ww,
                strength=1.0,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance,
                generator=gens,
                output_type="pt",
            ).images
            res = torch.as_tensor(result).float().cpu()
            out[sel] = F.interpolate(res, size=(h, w), mode="area").clamp(0, 1).numpy()
        return out

    def fill(self, x: np.ndarray, mask: np.ndarray, s1: np.ndarray | None) -> np.ndarray:
        """See :meth:`Inpainter.fill`: SD for B4-B3-B2, spectral lookup for the rest."""
        idx = [s2_index(b) for b in SD_BANDS]
        rgb01 = to_sd(x[:, idx] / np.float32(S2_DN_PER_REFLECTANCE))
        gen = from_sd(self.generate_rgb(rgb01, mask)) * np.float32(S2_DN_PER_REFLECTANCE)
        out = x.copy()
        for img, m, g in zip(out, mask, gen, strict=True):
            img[:, m] = spectral_lookup(img, ~m, g[:, m])
        return out

    def __repr__(self) -> str:
        return (
            f"StableDiffusion(weights={str(self.weights)!r}, steps={self.steps}, "
            f"seed={self.seed}, size={self.size}, dilate={self.dilate})"
        )
