"""Tile size, overlap and batch for the model and the machine at hand (``predict``, ``evaluate``).

**Overlap, from the model, measured.** A convolutional network zero-pads every layer, so a
tile's output near its edge differs from what the whole image would give. How far that reaches
depends on the weights, not only on the receptive field (34 px each side for the full DSen2-CR,
34 3x3 convolutions), so it is measured: :func:`edge_profile` runs the method on a synthetic
cloudy probe and on the same probe cropped, and records the largest output difference (DN) at
each distance from the crop edge. The trusted margin is the first distance from which every
difference is below :data:`TOLERANCE_DN`; the overlap is four margins (the blend of
:mod:`cloudfree.predict.tiling` trusts a tile from ``overlap // 4`` px inside its edge).
Measured once per weights file and cached in the user cache (``tiling/``).

Measured (``benchmarks/README.md``, "Predict"): the bundled DSen2-CR B4 F48 is within 0.25 DN
from 8 px, the bundled hybrids from 14 px, the He-initialised full model from 11 px, while at
the old fixed 8-px margin (overlap 32) a hybrid's tile edges were off by ~30 DN.

**Models that are not local** (UnCRtainTS: group norm and squeeze-excitation average over the
whole input) say so with a ``native_tile``: they run on tiles of that size (the training patch)
with a quarter-tile overlap, since no margin would make a tile equal the whole image.

**Tile and batch, from the device's free memory.** Inference activations take about
:data:`ACTIVATION_COPIES` maps of the network's widest layer per pixel (measured: 7.2 GiB per
Mpx for the full model on CPU, fp32). The tile is the largest of :data:`TILE_CHOICES` whose
activations fit :data:`MEMORY_SHARE` of the available memory, so the overlap's share of the
work is small (1024-px tiles with a 44-px overlap: 9 % more pixels than the scene); on CUDA the
batch then fills the rest of that share (on CPU it is 1: NNPACK convolves one image at a time,
and the per-pixel speed does not change with the tile).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

#: Largest tolerated difference between a tile's output and the whole image's, DN, on the probe:
#: well inside the 1 DN that rounding to integer DN allows.
TOLERANCE_DN: Final[float] = 0.25
#: Margin used when a method is not local (no distance reaches the tolerance): px.
MAX_MARGIN: Final[int] = 64
#: Extra margin over the measured one, px (the probe is one image; real scenes vary).
SAFETY_PX: Final[int] = 2
#: Tile sides tried, largest first.
TILE_CHOICES: Final[tuple[int, ...]] = (2048, 1536, 1024, 768, 512, 384, 256)
#: Activation maps of the widest layer alive per pixel during a forward pass (measured 7.4 on
#: the full model, fp32, CPU with NNPACK; rounded up).
ACTIVATION_COPIES: Final[int] = 8
#: Share of the available memory the tiles' activations may take.
MEMORY_SHARE: Final[float] = 0.4
#: Largest batch of tiles on CUDA.
MAX_BATCH: Final[int] = 16


@dataclass(frozen=True)
class TilePlan:
    """How ``predict`` tiles a scene.

    Attributes:
        tile: largest tile side, px. overlap: px shared by neighbouring tiles.
        batch: tiles per forward pass. margin: measured trusted margin, px (None: not measured).
        reason: one line saying where the numbers came from.
    """

    tile: int
    overlap: int
    batch: int
    margin: int | None
    reason: str


def receptive_radius(model: nn.Module | None) -> int | None:
    """Receptive-field radius of a chain of convolutions, px each side (None without a model)."""
    if model is None:
        return None
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            total += m.dilation[0] * (m.kernel_size[0] - 1) // 2
    return total


def _probe(size: int, include_sar: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """A synthetic cloudy scene (13, size, size) DN and its S1 (dB): what edge_profile runs on."""
    from cloudfree.data.synthetic.clouds import simulate_clouds
    from cloudfree.data.synthetic.release import clear_s2, land_cover, s1_from_cover

    rng = np.random.default_rng(seed)
    cover = land_cover((size, size), rng, snow=False)
    clear = clear_s2(cover, rng)
    s1 = s1_from_cover(cover, rng) if include_sar else None
    cloudy, _ = simulate_clouds(clear, rng, cover_fraction=0.4)
    return cloudy, s1


def edge_profile(method: Any, reach: int, depth: int) -> np.ndarray:
    """Largest output difference (DN) at each distance ``0 .. depth - 1`` from a tile edge.

    The method runs on a ``2 * (reach + depth)`` px probe (the reference: ``reach`` px of
    context on every side of the region compared) and on its centre crop (the "tile").

    Args:
        method: a :class:`cloudfree.methods.base.Method`.
        reach: px of context that make the reference exact (the receptive-field radius).
        depth: distances measured.
    """
    from cloudfree.masks.patch import patch_mask
    from cloudfree.methods.model import predict_dn

    size = 2 * (reach + depth)
    cloudy, s1 = _probe(size, method.include_sar)
    mask = patch_mask(cloudy)

    def run(sl: slice) -> np.ndarray:
        crop_s1 = None if s1 is None else s1[:, sl, sl]
        return predict_dn(method, cloudy[:, sl, sl], crop_s1, mask[sl, sl])

    inner = slice(reach, size - reach)
    diff = np.abs(run(slice(None))[:, inner, inner] - run(inner)).max(axis=0)
    i = np.arange(diff.shape[0])
    edge = np.minimum(i, i[::-1])
    dist = np.minimum.outer(edge, edge)
    return np.array([diff[dist == d].max() for d in range(depth)])


def margin_from_profile(profile: np.ndarray, tolerance: float = TOLERANCE_DN) -> int | None:
    """First distance from which every difference is <= ``tolerance`` (None: none is)."""
    above = np.flatnonzero(profile > tolerance)
    if len(above) == 0:
        return 0
    first = int(above[-1]) + 1
    return first if first < len(profile) else None


def _weights_key(method: Any) -> str | None:
    """Cache key: the weights file (path, size, mtime), or a baseline's name and version."""
    from cloudfree import __version__

    path = getattr(method, "path", None)
    if path is None:
        if getattr(method, "model", None) is not None:
            return None  # a model without a file (from Python): measured every time
        ident = f"baseline|{method.name}|{__version__}|{TOLERANCE_DN}"
    else:
        st = Path(path).stat()
        ident = f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{TOLERANCE_DN}"
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


def measured_margin(method: Any) -> tuple[int, str]:
    """``(margin px, how it was obtained)`` for a method: measured once, cached per weights."""
    from cloudfree.home import cache_dir

    model = getattr(method, "model", None)
    radius = receptive_radius(model)
    key = _weights_key(method)
    cached = None if key is None else cache_dir() / "tiling" / f"{key}.json"
    if cached is not None and cached.is_file():
        try:
            data = json.loads(cached.read_text(encoding="utf-8"))
            return int(data["margin"]), f"measured margin {data['margin']} px (cached)"
        except (OSError, ValueError, KeyError):
            pass
    reach = min((radius or MAX_MARGIN) + 8, MAX_MARGIN + 8)
    depth = min((radius or MAX_MARGIN) + 8, MAX_MARGIN)
    profile = edge_profile(method, reach, depth)
    margin = margin_from_profile(profile)
    if margin is None:
        # Expected of an inpainting baseline (its fill depends on the whole cloud); news for a
        # network.
        (log.info if model is None else log.warning)(
            "%s is not local: its tiles differ from the whole image by %.1f DN even %d px "
            "from their edges; using a %d px margin (pass --overlap to choose)",
            method.name, float(profile[-1]), depth - 1, MAX_MARGIN,
        )  # fmt: skip
        margin = MAX_MARGIN
    else:
        margin = min(margin + SAFETY_PX, MAX_MARGIN) if margin else 0
    if cached is not None:
        from cloudfree.io import atomic_path

        record = {"margin": margin, "profile_dn": [round(float(x), 4) for x in profile],
                  "tolerance_dn": TOLERANCE_DN, "method": method.name}  # fmt: skip
        with atomic_path(cached) as tmp:
            tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return margin, f"measured margin {margin} px"


def available_memory(device: torch.device) -> int:
    """Bytes free for tiles: CUDA's free memory, or the OS's available memory (MemAvailable)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30  # unknown: assume 4 GiB


def bytes_per_pixel(model: nn.Module | None, precision: str = "fp32") -> int:
    """Activation bytes per tile pixel of a forward pass (see the module docstring)."""
    if model is None:
        return 13 * 4 * ACTIVATION_COPIES  # a baseline: a few copies of the input
    width = max((m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)), default=13)
    item = 2 if precision == "bf16" else 4
    return ACTIVATION_COPIES * width * item


def plan_batch(method: Any, pixels: int, device: torch.device, precision: str = "fp32") -> int:
    """Images of ``pixels`` px per forward pass that fit the memory share (1 on CPU)."""
    if device.type != "cuda":
        return 1
    per = bytes_per_pixel(getattr(method, "model", None), precision) * pixels
    return int(max(1, min(MAX_BATCH, MEMORY_SHARE * available_memory(device) // per)))


def plan_tiles(
    method: Any,
    device: torch.device,
    precision: str = "fp32",
    tile: int | None = None,
    overlap: int | None = None,
    batch: int | None = None,
) -> TilePlan:
    """The tiling of ``predict`` for ``method`` on ``device``: any of tile, overlap, batch given
    is kept, the others chosen (see the module docstring)."""
    reasons = []
    margin = None
    native = getattr(getattr(method, "model", None), "native_tile", None)
    if native is not None:
        # Not local (UnCRtainTS: group norm and squeeze-excitation over the whole tile): the
        # output depends on the tile, so tiles are the size the model was trained on, and no
        # margin makes a tile equal the whole image; a quarter-tile overlap blends the seams.
        if overlap is None:
            overlap = native // 4
            reasons.append(f"overlap {overlap} (a quarter of the model's native tile)")
        if tile is None:
            tile = native
            reasons.append(f"tile {tile} (the model normalises over its tile: its training size)")
    if overlap is None:
        margin, why = measured_margin(method)
        overlap = 4 * margin
        reasons.append(f"overlap {overlap} ({why}, <= {TOLERANCE_DN} DN)")
    if tile is not None and overlap >= tile:
        raise ValueError(
            f"tile {tile} is not larger than the overlap this model needs ({overlap} px: "
            f"{reasons[-1] if reasons else 'as given'}); give a larger --tile, or no --tile"
        )
    if tile is None:
        budget = MEMORY_SHARE * available_memory(device)
        per_px = bytes_per_pixel(getattr(method, "model", None), precision)
        fits = [t for t in TILE_CHOICES if t * t * per_px <= budget and t > overlap]
        tile = fits[0] if fits else max(TILE_CHOICES[-1], overlap + 16)
        reasons.append(f"tile {tile} (activations {tile * tile * per_px / 2**30:.1f} GiB of "
                       f"{budget / 2**30:.1f} GiB allowed on {device.type})")  # fmt: skip
    if batch is None:
        batch = plan_batch(method, tile * tile, device, precision)
        reasons.append(f"batch {batch}")
    return TilePlan(tile, overlap, batch, margin, "; ".join(reasons) or "as given")
