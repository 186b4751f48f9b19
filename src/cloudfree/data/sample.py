"""One training/evaluation sample: plan the window and augmentation, then build the tensors.

This is the single sample pipeline of the project (spec section 2), shared by the GeoTIFF
dataset (:mod:`cloudfree.data.release.dataset`) and the packed-shard dataset, so both give identical
samples for identical draws:

1. :func:`plan_sample` draws the crop window and the flip/rotation *before* anything is read,
   so readers read only the window.
2. The reader reads that window of each file (raw DN / dB, see :func:`make_sample`).
3. :func:`make_sample` fills NaNs, normalises, augments and converts to torch tensors.

Draw the plan from a generator derived from ``(seed, epoch, index)``
(:func:`sample_rng`) so that runs are reproducible and DataLoader workers and DDP ranks never
share a random stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cloudfree.bands import (
    NUM_S1_BANDS,
    NUM_S2_BANDS,
    PATCH_SIZE,
    TRAIN_CROP_SIZE,
    get_scaling,
)
from cloudfree.data.preprocess import fill_nan, normalize_s1, normalize_s2
from cloudfree.data.transforms import apply_augmentation, draw_augmentation, draw_window
from cloudfree.errors import DataError
from cloudfree.units import check_patch

MODES: tuple[str, ...] = ("train", "eval")
#: Values of ``SampleConfig.mask``: where a sample's cloud mask comes from.
MASK_MODES: tuple[str, ...] = ("none", "cached", "crop")


@dataclass(frozen=True)
class SampleConfig:
    """How patches become samples. Defaults are the paper's training sampling (spec section 2).

    Attributes:
        mode: ``"train"``: random ``crop_size`` window + (if ``augment``) random flip/rot90,
            redrawn every epoch. ``"eval"``: fixed top-left ``crop_size`` window, no
            augmentation; ``crop_size=None`` gives the full patch. Upstream validation is
            ``SampleConfig(mode="eval")`` (top-left 128x128); to evaluate or predict whole
            256x256 patches use ``SampleConfig(mode="eval", crop_size=None)`` (issue #8).
        crop_size: side of the window in pixels; None = the whole patch.
        include_sar: read and return the S1 image (the SAR-optical model); False for the
            optical-only model, which also makes cloudy/clear pairs without S1 usable.
        scaling: ``"dsen2cr"`` (S2 / 2000 -> [0, 5], S1 -> [0, 2]) or ``"reflectance"``
            (S2 / 10000 -> [0, 1], S1 -> [0, 1]); see ``bands.SCALINGS``.
        augment: random flip + rot90 in train mode (ignored in eval mode).
        mask: the DSen2-CR cloud/shadow mask (:func:`cloudfree.masks.patch.patch_mask`, uint8
            0 clear / 1 cloud / 2 shadow) the CARL loss needs, returned as ``"mask"``:

            - ``"none"`` (default): no ``"mask"`` key.
            - ``"cached"``: computed ONCE on the full cloudy patch (raw DN, before any
              normalisation) and cached (packed shards' mask slot, or
              :class:`~cloudfree.data.release.mask_cache.MaskCache` next to the index), then cropped
              and augmented exactly like the images. Fast; this project's choice.
            - ``"crop"``: computed on the fly on the raw cloudy crop, as upstream does (spec
              section 2 "Cloud mask timing": per 128x128 crop, after augmentation). Slow;
              for faithful replication.

            The two differ only slightly: the mask is equivariant to flips and rot90 (square
            symmetric kernels, symmetric padding, min/mean thresholds), so augmentation order
            does not matter, but the relative shadow thresholds (min/mean of CSI and B2) come
            from the whole patch instead of the crop, and the 5/7-px filters see real
            neighbours instead of padding at crop edges.
        inpaint: None, or the :mod:`cloudfree.inpaint` method whose inpainted cloudy image is
            returned as ``"s2_inpainted"`` (the hybrid model's input): computed once per
            full patch and cached in the packed shards
            (:mod:`cloudfree.data.packed.inpaint_cache`), then cropped and augmented like the images.
    """

    mode: str = "train"
    crop_size: int | None = TRAIN_CROP_SIZE
    include_sar: bool = True
    scaling: str = "dsen2cr"
    augment: bool = True
    mask: str = "none"
    inpaint: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown sample mode {self.mode!r}; expected one of {MODES}")
        if self.crop_size is not None and self.crop_size < 1:
            raise ValueError(
                f"crop_size must be a positive number of pixels or None, got {self.crop_size}"
            )
        get_scaling(self.scaling)  # raises KeyError naming the valid protocols
        if self.mask not in MASK_MODES:
            raise ValueError(f"unknown mask mode {self.mask!r}; expected one of {MASK_MODES}")
        if self.inpaint is not None:
            from cloudfree.inpaint.registry import INPAINT_METHODS

            if self.inpaint not in INPAINT_METHODS:
                raise ValueError(
                    f"unknown inpainting method {self.inpaint!r}; expected one of "
                    f"{INPAINT_METHODS} or None"
                )


@dataclass(frozen=True)
class SamplePlan:
    """The random choices of one sample, made before reading.

    Attributes:
        row, col: top-left pixel of the window in the patch.
        height, width: size of the window, pixels.
        flip: 0 none, 1 flip rows (H), 2 flip columns (W); applied before the rotation.
        k: number of counter-clockwise 90-degree rotations, 0..3.
    """

    row: int
    col: int
    height: int
    width: int
    flip: int = 0
    k: int = 0

    @property
    def window(self) -> tuple[int, int, int, int]:
        """``(row, col, height, width)``, the form ``io.read_raster(window=...)`` takes."""
        return self.row, self.col, self.height, self.width

    @property
    def aug(self) -> tuple[int, int]:
        """``(flip, k)``."""
        return self.flip, self.k


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample: a distinct, reproducible stream per (seed, epoch, index)."""
    return np.random.default_rng([seed, epoch, index])


def plan_sample(cfg: SampleConfig, rng: np.random.Generator, size: int = PATCH_SIZE) -> SamplePlan:
    """Draw the window and augmentation of one sample of a ``size x size`` patch.

    Train mode draws the window (:func:`~cloudfree.data.transforms.draw_window`), then, if
    ``cfg.augment``, the flip and rotation (:func:`~cloudfree.data.transforms.draw_augmentation`),
    in that order. Eval mode draws nothing: window ``(0, 0, crop, crop)``, aug ``(0, 0)``.

    Raises:
        ValueError: ``cfg.crop_size`` is larger than the patch.
    """
    crop = size if cfg.crop_size is None else cfg.crop_size
    if crop > size:
        raise ValueError(
            f"crop_size {crop} is larger than the {size}x{size} patch; use crop_size <= {size} "
            "or None for the whole patch"
        )
    if cfg.mode == "eval":
        return SamplePlan(0, 0, crop, crop)
    row, col, h, w = draw_window(rng, size, crop)
    flip, k = draw_augmentation(rng) if cfg.augment else (0, 0)
    return SamplePlan(row, col, h, w, flip, k)


def window_transform(transform: Any, window: Sequence[int]) -> tuple[float, ...]:
    """Affine of a window of a raster, from the raster's affine (like rasterio's).

    Args:
        transform: ``(a, b, c, d, e, f)`` (a rasterio ``Affine`` or any sequence of >= 6
            numbers) mapping pixel (col, row) of the raster to CRS ``x = a*col + b*row + c``,
            ``y = d*col + e*row + f``.
        window: ``(row, col, height, width)``.

    Returns:
        The 6 coefficients for the window's pixel grid (only ``c`` and ``f`` move).
    """
    a, b, c, d, e, f = (float(v) for v in tuple(transform)[:6])
    row, col = int(window[0]), int(window[1])
    return a, b, a * col + b * row + c, d, e, d * col + e * row + f


def _affine6(transform: Any) -> torch.Tensor:
    if transform is None:
        return torch.full((6,), float("nan"), dtype=torch.float64)
    vals = tuple(transform)[:6]
    if len(vals) != 6:
        raise ValueError(f"transform must have 6 coefficients (a, b, c, d, e, f), got {vals}")
    return torch.tensor([float(v) for v in vals], dtype=torch.float64)


def _crs_text(crs: Any) -> str:
    if crs is None or crs == "":
        return ""
    if isinstance(crs, str):
        return crs
    return crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs)


def _check_shape(
    pid: str, name: str, arr: np.ndarray, shape: tuple[int, ...], source: Any = None
) -> None:
    if arr.shape != shape:
        raise DataError(
            source,
            f"patch {pid}: {name} array has shape {arr.shape}",
            f"{shape} for the window planned for this sample",
        )


def make_sample(
    raw: Mapping[str, np.ndarray],
    plan: SamplePlan,
    cfg: SampleConfig,
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """Turn the raw arrays of one window into a sample: NaN fill -> normalise -> augment -> torch.

    Args:
        raw: the ALREADY-WINDOWED raw arrays (``plan.window`` of each file):
            ``"s2_cloudy"`` (13, h, w) DN (uint16 in SEN12MS-CR); ``"s2"`` (13, h, w) DN, the
            cloud-free target, optional (absent for prediction-only rows); ``"s2_inpainted"``
            (13, h, w) DN, the cached inpainted cloudy image, required when ``cfg.inpaint``;
            ``"s1"`` (2, h, w)
            float32 dB, required when ``cfg.include_sar`` (ignored otherwise); ``"mask"``
            (h, w) integer cloud mask of the window (the cached full-patch mask, cropped),
            required when ``cfg.mask == "cached"``; with ``cfg.mask == "crop"`` it is
            computed here from the raw ``"s2_cloudy"`` window (before normalisation) and must
            not be given.
        plan: from :func:`plan_sample`; ``h, w = plan.height, plan.width``.
        cfg: the sampling config (scaling protocol, SAR or not).
        meta: ``"id"`` (str), ``"roi_season"`` (str), ``"scene"`` (int), ``"patch"`` (int),
            optionally ``"crs"`` (rasterio CRS, WKT string or None) and ``"transform"`` (the
            affine of pixel (0, 0) of the *window*, i.e. of ``raw``; see
            :func:`window_transform`), and optionally ``"source"`` (a file named in errors).

    Returns:
        A dict that ``torch.utils.data.default_collate`` can batch:

        - ``"s2_cloudy"``: float32 (13, h', w'), [0, 5] (dsen2cr) or [0, 1] (reflectance).
        - ``"s2"``: float32 (13, h', w'), same range; only if ``raw`` has it.
        - ``"s2_inpainted"``: float32 (13, h', w'), same range; only if ``cfg.inpaint``.
        - ``"s1"``: float32 (2, h', w'), [0, 2] (dsen2cr) or [0, 1]; only if ``include_sar``.
        - ``"mask"``: uint8 (h', w'), 0 clear / 1 cloud / 2 shadow; only if ``raw`` has it
          or ``cfg.mask == "crop"``.
        - ``"nan_filled"``: int64 scalar, NaNs replaced over all arrays.
        - ``"id"``, ``"roi_season"``, ``"crs"`` (WKT or ""): str.
        - ``"scene"``, ``"patch"``: int64 scalars.
        - ``"transform"``: float64 (6,), affine (a, b, c, d, e, f) of the window read, before
          augmentation (NaN if unknown).
        - ``"window"``: int64 (4,) ``(row, col, h, w)``; ``"aug"``: int64 (2,) ``(flip, k)``.

        ``(h', w') = (h, w)``, swapped for odd ``k`` (windows are square in practice).

    Raises:
        DataError: an array is missing or its shape does not match the plan.
    """
    pid = str(meta.get("id", "?"))
    source = meta.get("source")
    scaling = get_scaling(cfg.scaling)
    h, w = plan.height, plan.width

    if "s2_cloudy" not in raw:
        raise DataError(source, f"patch {pid} has no cloudy S2 array", "raw['s2_cloudy']")
    if cfg.include_sar and "s1" not in raw:
        raise DataError(
            source,
            f"patch {pid} has no S1 array but the config includes SAR",
            "raw['s1'], or SampleConfig(include_sar=False)",
        )

    if cfg.inpaint is not None and "s2_inpainted" not in raw:
        raise DataError(
            source,
            f"patch {pid} has no cached {cfg.inpaint} inpainting but the config asks for it",
            "raw['s2_inpainted'] (packed shards hold it after 'cloudfree pack --inpaint "
            f"{cfg.inpaint}'), or SampleConfig(inpaint=None)",
        )
    if cfg.mask == "cached" and "mask" not in raw:
        raise DataError(
            source,
            f"patch {pid} has no cached cloud mask but the config asks for one",
            "raw['mask'] (the dataset reads it from its mask cache), or SampleConfig(mask=...)",
        )
    # Units: S2 as DN and S1 in dB (cloudfree.units); a wrong scale is a bad patch.
    check_patch({k: v for k, v in raw.items() if k != "mask"}, f"patch {pid}")
    if cfg.mask == "crop":
        from cloudfree.masks.patch import patch_mask

        _check_shape(pid, "s2_cloudy", raw["s2_cloudy"], (NUM_S2_BANDS, h, w), source)
        # Upstream order (spec section 2): the mask of the raw DN crop, then augmented below
        # (equivariant, so the same as masking the augmented crop).
        raw = {**raw, "mask": patch_mask(raw["s2_cloudy"])}

    out: dict[str, Any] = {}
    n_filled = 0
    # Optical: cloudy input first, then the target, same treatment (spec section 2); the
    # inpainted input of the hybrid likewise.
    for key in ("s2_cloudy", "s2", "s2_inpainted"):
        if key not in raw or (key == "s2_inpainted" and cfg.inpaint is None):
            continue
        _check_shape(pid, key, raw[key], (NUM_S2_BANDS, h, w), source)
        x, n = fill_nan(raw[key])
        n_filled += n
        x = apply_augmentation(normalize_s2(x, scaling), plan.flip, plan.k)
        out[key] = torch.from_numpy(x)
    if cfg.include_sar:
        _check_shape(pid, "s1", raw["s1"], (NUM_S1_BANDS, h, w), source)
        x, n = fill_nan(raw["s1"])
        n_filled += n
        x = apply_augmentation(normalize_s1(x, scaling), plan.flip, plan.k)
        out["s1"] = torch.from_numpy(x)
    if "mask" in raw:
        _check_shape(pid, "mask", raw["mask"], (h, w), source)
        m = apply_augmentation(
            np.asarray(raw["mask"]).astype(np.uint8, copy=False), plan.flip, plan.k
        )
        out["mask"] = torch.from_numpy(m)

    out["nan_filled"] = torch.tensor(n_filled, dtype=torch.int64)
    out["id"] = pid
    out["roi_season"] = str(meta.get("roi_season", ""))
    out["scene"] = torch.tensor(int(meta.get("scene", -1)), dtype=torch.int64)
    out["patch"] = torch.tensor(int(meta.get("patch", -1)), dtype=torch.int64)
    out["crs"] = _crs_text(meta.get("crs"))
    out["transform"] = _affine6(meta.get("transform"))
    out["window"] = torch.tensor(plan.window, dtype=torch.int64)
    out["aug"] = torch.tensor(plan.aug, dtype=torch.int64)
    return out
