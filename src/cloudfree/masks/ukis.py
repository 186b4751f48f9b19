"""Clouds and cloud shadows from ukis-csmask's CNN, at the image's resolution and at 30 m.

ukis-csmask (DLR, Apache-2.0; Wieland, Li & Martinis, RSE 230, 2019; Wieland, Fichtner &
Martinis, ISPRS Archives XLIII-B3, 2022) ships U-Nets with an EfficientNet-b4 encoder as ONNX
files inside its wheel, one per product level (L1C, L2A) and band set (4 or 6 bands), trained
on SPARCS, CloudSEN12+ and DLR's own samples at about 30 m. Classes: 0 clear, 1 cloud,
2 cloud shadow, the codes of :mod:`cloudfree.masks`. Nothing is downloaded.

How cloudfree runs it (each choice measured in ``benchmarks/mask.py``, figures in
``benchmarks/README.md``):

- **The 4-band model** (B2, B3, B4, B8) of the image's product level. On the labelled real
  patches it beats the 6-band model (cloud IoU 0.78/0.85 against 0.70/0.79), and the 6-band
  model flags 23 % of the clear Sen1Floods11 scene as shadow.
- **At 30 m**, its training resolution: the image averaged over ``factor x factor`` cells
  (``factor = round(30 m / pixel size)``, 3 for Sentinel-2's 10 m), the class probabilities
  upsampled back bilinearly. This is how ukis-csmask's authors run it, it scores best on the
  labelled patches, and it costs a ninth of a pass at 10 m.
- **Small scenes at two scales** (:func:`choose_factors`): the model needs one 256-cell tile of
  context; a scene smaller than that at 30 m (768 px at 10 m) is mostly reflected padding
  there, and the 30 m pass alone flagged 7-14 % of small clear scenes (up to 40 % of clear
  256-px patches). For those the probabilities of the 30 m pass and of a pass at the image's
  own resolution are averaged: clear scenes then stay under 0.3 % masked.
- **Tiles** of 256 px (the models' input) overlapping by 64 px, blended with
  :func:`cloudfree.tiles.blend_weights`; an image smaller than a tile is reflect-padded.

Input: top-of-atmosphere (L1C) or surface (L2A) reflectance, DN / 10000.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import numpy as np

from cloudfree.tiles import axis_positions, blend_weights
from cloudfree.windows import pad_reflect

#: The bands of the model, in its input order (blue, green, red, nir).
UKIS_BANDS: Final[tuple[str, ...]] = ("B2", "B3", "B4", "B8")
#: ukis-csmask's names of those bands, as its model files list them.
_UKIS_NAMES: Final[tuple[str, ...]] = ("blue", "green", "red", "nir")
#: Side of the model's input, pixels (fixed in the ONNX graphs).
UKIS_TILE: Final[int] = 256
#: Overlap of neighbouring tiles, pixels: a quarter of the tile, as ukis-csmask's own 0.2-0.25.
UKIS_OVERLAP: Final[int] = 64
#: The resolution the models were trained at, metres.
UKIS_GSD_M: Final[float] = 30.0
#: Tiles per ONNX call.
_BATCH: Final[int] = 4

UKIS_INSTALL: Final[str] = (
    'pip install "cloudfree[masks]"  (or: pip install "ukis-csmask[cpu]"; '
    '"ukis-csmask[gpu]" for onnxruntime on CUDA)'
)


def ukis_available() -> bool:
    """Whether ukis-csmask and onnxruntime are installed (nothing is imported)."""
    return all(importlib.util.find_spec(m) is not None for m in ("ukis_csmask", "onnxruntime"))


def coarse_factor(gsd_m: float) -> int:
    """Pixels per side of a ~30 m cell for an image of ``gsd_m`` metres: 3 for Sentinel-2's
    10 m, 1 for images already at 20 m or coarser."""
    return max(1, int(round(UKIS_GSD_M / gsd_m)))


def choose_factors(height: int, width: int, gsd_m: float) -> tuple[int, ...]:
    """The scales a scene is masked at, as cell sides in pixels (module docstring): the 30 m
    cell alone when the scene holds one model tile of them, else also the image's own pixels.

    >>> choose_factors(10980, 10980, 10.0), choose_factors(512, 512, 10.0)
    ((3,), (1, 3))
    """
    f = coarse_factor(gsd_m)
    if f == 1 or min(height, width) >= UKIS_TILE * f:
        return (f,)
    return (1, f)


@dataclass(frozen=True)
class UkisModel:
    """One of ukis-csmask's ONNX models, ready to run.

    Attributes:
        session: the onnxruntime session; mean, std: per-band normalisation of its training
            data, (4,) float32 reflectance; version: the model's version string.
    """

    session: Any
    mean: np.ndarray
    std: np.ndarray
    version: str

    def logits_to_probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Softmax over the class axis (1) of (N, 3, h, w) logits."""
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def run(self, tiles: np.ndarray) -> np.ndarray:
        """(N, 4, 256, 256) normalised tiles -> (N, 3, 256, 256) class probabilities."""
        name = self.session.get_inputs()[0].name
        logits = self.session.run(None, {name: np.ascontiguousarray(tiles, dtype=np.float32)})[0]
        return self.logits_to_probabilities(logits).astype(np.float32)


@lru_cache(maxsize=2)
def load_model(level: str) -> UkisModel:
    """The 4-band model of ``level`` (``"l1c"`` or ``"l2a"``), loaded once per process.

    Raises:
        ImportError: ukis-csmask or onnxruntime is not installed (the message says how).
        ValueError: an unknown level, or a model file whose bands are not the 4 expected.
    """
    if level not in ("l1c", "l2a"):
        raise ValueError(f"product level must be 'l1c' or 'l2a', got {level!r}")
    if not ukis_available():
        raise ImportError(f"the ukis cloud mask needs ukis-csmask and onnxruntime: {UKIS_INSTALL}")
    from importlib.resources import files

    import onnxruntime

    root = files("ukis_csmask")
    info = json.loads((root / f"model_4b_{level}.json").read_text())
    stats = info["data"]["dataset_statistics"]
    if tuple(stats["band_names"]) != _UKIS_NAMES:
        raise ValueError(
            f"ukis-csmask's model_4b_{level} takes the bands {stats['band_names']}, not "
            f"{list(_UKIS_NAMES)}: this version of ukis-csmask is not supported (1.0 is)"
        )
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # no warnings about unused initialisers on every load
    session = onnxruntime.InferenceSession(
        str(root / f"model_4b_{level}.onnx"),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    return UkisModel(
        session=session,
        mean=np.asarray(stats["img"][0], dtype=np.float32),
        std=np.asarray(stats["img"][1], dtype=np.float32),
        version=str(info["model"]["version"]),
    )


def tile_probabilities(model: UkisModel, x: np.ndarray) -> np.ndarray:
    """Class probabilities of a normalised image of any size, tile by tile, blended.

    Args:
        model: the model; x: (4, H, W) float32, already normalised.

    Returns:
        (3, H, W) float32, summing to 1 over the class axis.
    """
    _, h0, w0 = x.shape
    ph, pw = max(0, UKIS_TILE - h0), max(0, UKIS_TILE - w0)
    if ph or pw:  # smaller than one tile: reflected to the model's input size
        x = pad_reflect(x, ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
    _, h, w = x.shape
    weights = blend_weights(UKIS_TILE, UKIS_OVERLAP)
    acc = np.zeros((3, h, w), dtype=np.float32)
    wsum = np.zeros((h, w), dtype=np.float32)
    positions = [
        (r, c)
        for r in axis_positions(h, UKIS_TILE, UKIS_OVERLAP)
        for c in axis_positions(w, UKIS_TILE, UKIS_OVERLAP)
    ]
    t = UKIS_TILE
    for k in range(0, len(positions), _BATCH):
        pos = positions[k : k + _BATCH]
        probs = model.run(np.stack([x[:, r : r + t, c : c + t] for r, c in pos]))
        for (r, c), p in zip(pos, probs, strict=True):
            acc[:, r : r + t, c : c + t] += p * weights
            wsum[r : r + t, c : c + t] += weights
    out = acc / wsum
    return out[:, ph // 2 : ph // 2 + h0, pw // 2 : pw // 2 + w0]


def block_mean(x: np.ndarray, factor: int) -> np.ndarray:
    """(C, H, W) -> (C, ceil(H / f), ceil(W / f)): the mean of each f x f cell (a cell cut by
    the image edge: the mean of the pixels it holds)."""
    c, h, w = x.shape
    hh, ww = -(-h // factor), -(-w // factor)
    # float32 sums of factor^2 values (9 for 10 m): a relative error of ~1e-6, far below what
    # moves the model's classes, at half the memory of float64 on a block.
    padded = np.zeros((c, hh * factor, ww * factor), dtype=np.float32)
    padded[:, :h, :w] = x
    sums = padded.reshape(c, hh, factor, ww, factor).sum(axis=(2, 4))
    rows = np.minimum(factor, h - factor * np.arange(hh)).astype(np.float32)
    cols = np.minimum(factor, w - factor * np.arange(ww)).astype(np.float32)
    return sums / np.outer(rows, cols)


def _axis_weights(
    n_fine: int, n_coarse: int, factor: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Centre of fine pixel i in coarse pixel coordinates: (i + 0.5) / f - 0.5, clamped.
    pos = np.clip((np.arange(n_fine) + 0.5) / factor - 0.5, 0.0, n_coarse - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_coarse - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def upsample(p: np.ndarray, factor: int, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of (C, h, w) cell values back to (C, height, width) pixels, each
    pixel interpolated at its centre (the inverse of :func:`block_mean`'s grid)."""
    r0, r1, wr = _axis_weights(height, p.shape[1], factor)
    c0, c1, wc = _axis_weights(width, p.shape[2], factor)
    rows = p[:, r0] * (1 - wr)[None, :, None] + p[:, r1] * wr[None, :, None]
    return rows[:, :, c0] * (1 - wc) + rows[:, :, c1] * wc


def ukis_probabilities(refl: np.ndarray, level: str, factors: tuple[int, ...]) -> np.ndarray:
    """Class probabilities of an image: the mean of the model's over the scales ``factors``
    (each on ``f x f`` cell means, upsampled back; ``1``: the image as it is).

    Args:
        refl: (4, H, W) reflectance of :data:`UKIS_BANDS` (DN / 10000); non-finite values
            are read as 0.
        level: ``"l1c"`` or ``"l2a"``; factors: :func:`choose_factors` of the scene.

    Returns:
        (3, H, W) float32: clear, cloud, shadow.
    """
    if not factors or min(factors) < 1:
        raise ValueError(f"factors must be >= 1 pixels per cell, got {factors}")
    model = load_model(level)
    x = np.nan_to_num(np.asarray(refl, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    x = (x - model.mean[:, None, None]) / model.std[:, None, None]
    total = np.zeros((3, *x.shape[1:]), dtype=np.float32)
    for f in factors:
        if f == 1:
            total += tile_probabilities(model, x)
        else:
            coarse = tile_probabilities(model, block_mean(x, f))
            total += upsample(coarse, f, x.shape[1], x.shape[2])
    return total / np.float32(len(factors))


def ukis_mask(refl: np.ndarray, level: str, factors: tuple[int, ...]) -> np.ndarray:
    """uint8 (H, W) mask, 0 clear, 1 cloud, 2 shadow: the most probable class of
    :func:`ukis_probabilities`."""
    return ukis_probabilities(refl, level, factors).argmax(axis=0).astype(np.uint8)
