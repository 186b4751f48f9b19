"""Typed training configuration whose defaults are the published DSen2-CR recipe.

``Config()`` *is* the paper's setting (spec section 7: Nadam lr 7e-5, batch 16, 8 epochs,
128x128 random crops, CARL with lambda 1, seed 42, no LR schedule, no gradient clipping).

Configs come from, in order: a base (the defaults, or a named preset), a YAML file, then dotted
command-line overrides such as ``train.epochs=2 optim.betas=[0.9,0.99] data.packed=null``.
Every value is coerced to its field's type and unknown keys fail with a suggestion.

Where presets live: the canonical presets are Python (``PRESETS`` below, built from the dataclass
defaults), so they work from an installed wheel without package data. The repo's ``configs/*.yaml``
are copies written by ``dump_config`` (regenerate with ``python -m cloudfree.config configs``); a
test checks each file still equals its preset.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import platform
import subprocess
import sys
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Union

from cloudfree.bands import SCALINGS, TRAIN_CROP_SIZE
from cloudfree.inpaint.registry import INPAINT_METHODS
from cloudfree.losses.registry import GAN_MODES, LOSS_NAMES

#: Optimisers a config may use (``cloudfree.train.optim.build_optimizer``).
OPTIMIZER_NAMES: tuple[str, ...] = ("nadam", "adam")
#: ``auto``: bf16 autocast on CUDA, fp32 elsewhere (an opt-in: the default is the paper's fp32).
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
#: Values of ``DataConfig.mask``: the CARL cloud mask of a training crop computed on that crop
#: ("crop", as the original) or taken from the mask of the whole patch, cached ("cached").
TRAIN_MASK_MODES: tuple[str, ...] = ("crop", "cached")
#: Model families that read a series of dates (train on SEN12MS-CR-TS, ``data.input_t`` > 1).
TEMPORAL_FAMILIES: tuple[str, ...] = ("uncrtaints-mt",)
#: Cloud maskers of SEN12MS-CR-TS coverage (``cloudfree.data.timeseries.coverage``).
SERIES_COVERAGE: tuple[str, ...] = ("s2cloudless", "dsen2cr")


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ValueError(f"config {key}: {problem}")


@dataclass(frozen=True)
class DataConfig:
    """Where the patches come from and how they are sampled (spec sections 1-2).

    Exactly one of ``index``, ``packed`` or ``root`` is needed to train; presets leave all three
    unset because paths are per machine (give them with ``data.index=...``).
    """

    index: str | None = None  # index CSV written by `cloudfree index` (per-file GeoTIFF reads)
    packed: str | None = None  # folder of packed shards from `cloudfree pack` (memory-mapped)
    root: str | None = None  # SEN12MS-CR root, indexed on the fly (spec section 1)
    train_split: str = "train"  # split name of the training rows (spec section 1: split by ROI)
    val_split: str = "val"  # split validated at each epoch end (spec section 7)
    crop_size: int = TRAIN_CROP_SIZE  # random training crop side, px (spec section 2: 128)
    scaling: str = "dsen2cr"  # normalisation protocol (spec section 2: S2 / 2000, S1 to [0, 2])
    augment: bool = True  # random flips / rot90 of the training crops (spec section 2)
    # The CARL mask of a training crop: "crop" computes it on each augmented crop, as the
    # original does (zero padding at the crop's edges, shadow thresholds relative to the crop);
    # "cached" crops the mask of the whole patch, computed once (on 112 random crops the two
    # differ by 2.8 % of the pixels on average, up to 37 %; benchmarks/train.py times both).
    # Hybrids always take the cached mask: their cached inpainting was computed under it.
    mask: str = "crop"
    num_workers: int = 2  # DataLoader worker processes per rank (not in the paper)
    strict: bool = False  # True: the first bad patch stops the run (issue 4: skip and count)
    max_bad_fraction: float = 0.01  # fail when more than this share of patches is unreadable
    # Dates per sample: 1 = one SEN12MS-CR patch; more = SEN12MS-CR-TS series (data.index is
    # its index, 'cloudfree index ROOT --out ts.csv'), for a temporal model (UnCRtainTS's
    # --input_t: 3). Training dates are drawn anew each epoch, validation's are fixed (upstream).
    input_t: int = 1
    # The cloud masker whose coverage picks the dates of a series (upstream: s2cloudless),
    # computed once and cached beside the index.
    coverage: str = "s2cloudless"

    def __post_init__(self) -> None:
        _check(self.crop_size > 0, "data.crop_size", f"must be > 0, got {self.crop_size}")
        _check(
            self.scaling in SCALINGS,
            "data.scaling",
            f"unknown protocol {self.scaling!r}; expected one of {sorted(SCALINGS)}",
        )
        _check(self.num_workers >= 0, "data.num_workers", f"must be >= 0, got {self.num_workers}")
        _check(
            self.mask in TRAIN_MASK_MODES,
            "data.mask",
            f"unknown mask mode {self.mask!r}; expected one of {list(TRAIN_MASK_MODES)}",
        )
        _check(
            0.0 <= self.max_bad_fraction <= 1.0,
            "data.max_bad_fraction",
            f"must be in [0, 1], got {self.max_bad_fraction}",
        )
        _check(self.input_t >= 1, "data.input_t", f"must be >= 1, got {self.input_t}")
        _check(
            self.coverage in SERIES_COVERAGE,
            "data.coverage",
            f"unknown masker {self.coverage!r}; expected one of {list(SERIES_COVERAGE)}",
        )


def model_family(name: str) -> str:
    """The family of a registered model name: the name without its ``-nosar`` suffix
    (``"uncrtaints-nosar"`` -> ``"uncrtaints"``). Exact, never a prefix: a name such as
    ``"uncrtaints-mt"`` is a family of its own."""
    return name.removesuffix("-nosar")


@dataclass(frozen=True)
class ModelConfig:
    """Network variant and size (spec section 4); ``name`` is a ``cloudfree.models`` registry key.

    For the pix2pix baseline (spec section 9) the two sizes mean the U-Net's: ``num_layers`` is
    its number of levels (``num_downs``: 7 for 128x128 crops, 8 for 256x256) and
    ``feature_size`` the width of its outermost level (``ngf``, 64).
    """

    name: str = "dsen2cr"  # "dsen2cr", "dsen2cr-nosar", "hybrid", "hybrid-nosar", "pix2pix"...
    num_layers: int = 16  # residual blocks B (spec section 4: 16, "B value in paper")
    feature_size: int = 256  # feature maps F (spec section 4: 256)
    # The hybrid models only (issue 11, cloudfree.models.hybrid): how their input is inpainted
    # (the pack must hold that inpainting: cloudfree pack --inpaint METHOD), where the long skip
    # starts, and which extra inputs they see.
    inpaint: str = "mask-fill"  # cloudfree.inpaint method of the cached inpainted input
    skip: str = "inpainted"  # "inpainted" (the hybrid) or "cloudy" (DSen2-CR's long skip)
    mask_channel: bool = True  # the binary cloud/shadow mask as an input channel
    cloudy_input: bool = True  # the cloudy image as an input beside the inpainted one
    # UnCRtainTS only (issue 14, cloudfree.models.uncrtaints): feature_size is its width W and
    # num_layers its decoder blocks (one encoder block); variance adds the 13 per-band
    # variance outputs that loss.name=mgnll needs.
    variance: bool = False

    @property
    def family(self) -> str:
        """The model family (:func:`model_family`): ``"dsen2cr"``, ``"hybrid"``, ..."""
        return model_family(self.name)

    @property
    def is_pix2pix(self) -> bool:
        """The pix2pix U-Net generator (trained adversarially, with ``loss.name = "pix2pix"``)."""
        return self.family == "pix2pix"

    @property
    def is_uncrtaints(self) -> bool:
        """UnCRtainTS, mono- or multi-temporal (``cloudfree.models.uncrtaints[_mt]``)."""
        return self.family in ("uncrtaints", "uncrtaints-mt")

    @property
    def is_temporal(self) -> bool:
        """A model of a series of dates (:data:`TEMPORAL_FAMILIES`)."""
        return self.family in TEMPORAL_FAMILIES

    @property
    def is_hybrid(self) -> bool:
        """A hybrid model: DSen2-CR on the inpainted image (reads the pack's inpainting)."""
        return self.family == "hybrid"

    def build_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of the registered builder for these sizes."""
        if self.is_pix2pix:
            return {"num_downs": self.num_layers, "ngf": self.feature_size}
        if self.is_uncrtaints:
            return {
                "encoder_widths": [self.feature_size],
                "decoder_widths": [self.feature_size] * self.num_layers,
                "covmode": "diag" if self.variance else None,
            }
        kwargs: dict[str, Any] = {
            "num_layers": self.num_layers,
            "feature_size": self.feature_size,
        }
        if self.is_hybrid:
            kwargs.update(
                inpaint=self.inpaint,
                skip=self.skip,
                mask_channel=self.mask_channel,
                cloudy_input=self.cloudy_input,
            )
        return kwargs

    def __post_init__(self) -> None:
        _check(bool(self.name), "model.name", "must be a non-empty registry name")
        _check(self.num_layers > 0, "model.num_layers", f"must be > 0, got {self.num_layers}")
        _check(self.feature_size > 0, "model.feature_size", f"must be > 0, got {self.feature_size}")
        _check(
            self.inpaint in INPAINT_METHODS,
            "model.inpaint",
            f"unknown inpainting method {self.inpaint!r}; expected one of {list(INPAINT_METHODS)}",
        )
        _check(
            self.skip in ("inpainted", "cloudy"),
            "model.skip",
            f"must be 'inpainted' or 'cloudy', got {self.skip!r}",
        )


@dataclass(frozen=True)
class LossConfig:
    """Training loss (spec section 5)."""

    # "carl" (L_CARL), "l1" (L_T), "pix2pix" (cGAN + L1, spec section 9); UnCRtainTS's "l2"
    # and "mgnll" (the diagonal Gaussian NLL, cloudfree.losses.nll)
    name: str = "carl"
    lambda_: float = 1.0  # weight of CARL's global target term (spec section 5: lambda = 1.0)
    lambda_l1: float = 100.0  # pix2pix: weight of the L1 term (Isola et al. 2017: 100)
    gan_mode: str = "vanilla"  # pix2pix: "vanilla" (BCE, pix2pix's default) or "lsgan"

    def __post_init__(self) -> None:
        _check(
            self.name in LOSS_NAMES,
            "loss.name",
            f"unknown loss {self.name!r}; expected one of {list(LOSS_NAMES)}",
        )
        _check(
            math.isfinite(self.lambda_) and self.lambda_ >= 0,
            "loss.lambda_",
            f"must be a finite number >= 0, got {self.lambda_}",
        )
        _check(
            math.isfinite(self.lambda_l1) and self.lambda_l1 >= 0,
            "loss.lambda_l1",
            f"must be a finite number >= 0, got {self.lambda_l1}",
        )
        _check(
            self.gan_mode in GAN_MODES,
            "loss.gan_mode",
            f"unknown GAN objective {self.gan_mode!r}; expected one of {list(GAN_MODES)}",
        )


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser (spec section 7: Keras Nadam; ``torch.optim.NAdam`` is the same update).

    ``"adam"`` with lr 2e-4, betas (0.5, 0.999) and ``decay_epochs`` is pix2pix's recipe (spec
    section 9, assumed); for pix2pix the discriminator gets its own optimiser with the same
    settings.
    """

    name: str = "nadam"  # Keras Nadam (spec section 7); "adam" for pix2pix
    lr: float = 7e-5  # learning rate, constant: the paper uses no LR schedule (spec section 7)
    betas: tuple[float, float] = (0.9, 0.999)  # Nadam beta_1, beta_2 (spec section 7)
    eps: float = 1e-8  # Nadam epsilon, added to sqrt(v_hat) (spec section 7)
    momentum_decay: float = 4e-3  # Keras schedule_decay psi (spec section 7: 0.004)
    grad_clip_norm: float | None = None  # global L2 clip; None as in the paper (spec section 4)
    # Last epochs over which the LR decays linearly towards 0 (pix2pix's "linear" policy);
    # 0 = constant LR, as in the paper (spec section 7).
    decay_epochs: int = 0

    def __post_init__(self) -> None:
        _check(
            self.name in OPTIMIZER_NAMES,
            "optim.name",
            f"unknown optimiser {self.name!r}; expected one of {list(OPTIMIZER_NAMES)}",
        )
        _check(self.lr > 0 and math.isfinite(self.lr), "optim.lr", f"must be > 0, got {self.lr}")
        _check(
            all(0.0 <= b < 1.0 for b in self.betas),
            "optim.betas",
            f"each beta must be in [0, 1), got {self.betas}",
        )
        _check(self.eps > 0, "optim.eps", f"must be > 0, got {self.eps}")
        _check(
            self.momentum_decay >= 0,
            "optim.momentum_decay",
            f"must be >= 0, got {self.momentum_decay}",
        )
        _check(
            self.grad_clip_norm is None
            or (self.grad_clip_norm > 0 and math.isfinite(self.grad_clip_norm)),
            "optim.grad_clip_norm",
            f"must be null (no clipping) or a finite number > 0, got {self.grad_clip_norm}",
        )
        _check(
            self.decay_epochs >= 0, "optim.decay_epochs", f"must be >= 0, got {self.decay_epochs}"
        )


@dataclass(frozen=True)
class TrainConfig:
    """Loop, hardware and bookkeeping settings (spec section 7 for epochs, batch and seed)."""

    epochs: int = 8  # passes over the training split (spec section 7: 8)
    batch_size: int = 16  # GLOBAL batch, split evenly over ranks (spec section 7: 16 over n_gpus)
    seed: int = 42  # seed of weights init, crops and shuffling (spec section 7: 42)
    # fp32 as the paper trained (Keras, fp32); "bf16" (autocast) or "auto" (bf16 on CUDA) are
    # opt-ins: bf16 moves the full model's output by 0.007-0.011 reflectance (runtime notes).
    precision: str = "fp32"
    # TF32 tensor-core convolutions and matmuls on CUDA (10-bit mantissa): off, as the paper's
    # fp32; PyTorch turns them on for cuDNN convolutions unless told otherwise.
    tf32: bool = False
    channels_last: bool = True  # NHWC memory layout on CUDA (speed only, same maths)
    compile: bool = False  # torch.compile the model (speed only)
    log_every: int = 50  # steps between logged training scalars
    checkpoint_every: int = 1000  # steps between checkpoints (plus one at each epoch end)
    keep_last: int = 3  # step checkpoints kept (the best by validation loss is kept apart)
    out_dir: str = "runs"  # parent folder of run folders
    run_name: str | None = None  # run folder name; None: derived from the time and preset
    deterministic: bool = False  # deterministic kernels (bitwise resume on CPU; slower on GPU)
    device: str = "auto"  # "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1", ...
    # Start from these weights instead of a random init (fine-tuning; cloudfree.train.init): a
    # weights name (e.g. dsen2cr-sar-carl), a .safetensors / Keras .hdf5 file, a checkpoint or
    # run folder. Must be the model and size of the model section. Ignored on resume.
    init: str | None = None

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "log_every", "checkpoint_every", "keep_last"):
            value = getattr(self, key)
            _check(value > 0, f"train.{key}", f"must be > 0, got {value}")
        _check(
            self.precision in PRECISIONS,
            "train.precision",
            f"unknown precision {self.precision!r}; expected one of {list(PRECISIONS)}",
        )
        _check(bool(self.out_dir), "train.out_dir", "must be a non-empty path")
        name = self.run_name
        _check(
            name is None or (str(name) not in ("", ".", "..") and not any(
                sep in str(name) for sep in ("/", "\\"))),
            "train.run_name",
            f"must be a folder name (no '/', not '..'), got {name!r}: the run folder is "
            "train.out_dir/train.run_name; put the path in train.out_dir",
        )  # fmt: skip
        _check(bool(self.device), "train.device", "must be a non-empty device string")


@dataclass(frozen=True)
class Config:
    """The whole run: ``Config()`` is the paper's SAR + CARL recipe."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def model_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of the model (:meth:`ModelConfig.build_kwargs`; a temporal
        model also records the dates per sample it trains on, ``data.input_t``)."""
        kwargs = self.model.build_kwargs()
        if self.model.is_temporal:
            kwargs["input_t"] = self.data.input_t
        return kwargs

    def __post_init__(self) -> None:
        _check(
            not self.model.is_hybrid or self.data.mask == "cached",
            "data.mask",
            f"a hybrid model ({self.model.name!r}) reads the cached full-patch mask, the one its "
            f"cached inpainting was computed under; set data.mask=cached (got {self.data.mask!r})",
        )
        # The pix2pix generator is only trained adversarially, and the GAN loss needs it.
        _check(
            self.model.is_pix2pix == (self.loss.name == "pix2pix"),
            "loss.name",
            f"model {self.model.name!r} with loss {self.loss.name!r}: the pix2pix models train "
            "with loss.name=pix2pix (and only they do); use the 'pix2pix' preset",
        )
        _check(
            (self.loss.name == "mgnll") == (self.model.is_uncrtaints and self.model.variance),
            "loss.name",
            f"loss {self.loss.name!r} with model {self.model.name!r} (variance="
            f"{self.model.variance}): the Gaussian NLL (mgnll) needs, and is the only loss for, "
            "an UnCRtainTS with model.variance=true; use the 'uncrtaints_sar_nll' preset",
        )
        _check(
            self.model.is_temporal == (self.data.input_t > 1),
            "data.input_t",
            f"model {self.model.name!r} with data.input_t={self.data.input_t}: a temporal "
            "model (uncrtaints-mt) trains on series of 2 or more dates of a SEN12MS-CR-TS "
            "index, a one-date model on data.input_t=1; use the 'uncrtaints_mt_sar_nll' preset",
        )
        _check(
            self.optim.decay_epochs <= self.train.epochs,
            "optim.decay_epochs",
            f"{self.optim.decay_epochs} decay epochs but only train.epochs={self.train.epochs}",
        )


_SECTION_TYPES: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
}


#: The hybrids' data section: their mask channel and CARL mask are the cached full-patch mask,
#: the one their cached inpainting was computed under.
_CACHED_MASK = DataConfig(mask="cached")


def _debug_tiny() -> Config:
    # A few seconds per step on 2 CPU cores: for tests and smoke runs, not for results.
    return Config(
        data=DataConfig(crop_size=32, num_workers=0),
        model=ModelConfig(num_layers=2, feature_size=16),
        train=TrainConfig(batch_size=4, epochs=2, checkpoint_every=5, log_every=1),
    )


def _pix2pix() -> Config:
    # Spec section 9 (ASSUMED, the paper gives no settings): pix2pix's own recipe, Adam 2e-4,
    # betas (0.5, 0.999), L1 weight 100, a U-Net with 7 levels for the 128x128 crops (unet_128;
    # fully convolutional, so it also runs on 256x256 test patches), LR decayed linearly over
    # the second half of training as junyanz's default (n_epochs = n_epochs_decay). Epochs,
    # batch, crops and seed are DSen2-CR's, so that both rows see the same data budget.
    return Config(
        model=ModelConfig(name="pix2pix", num_layers=7, feature_size=64),
        loss=LossConfig(name="pix2pix"),
        optim=OptimConfig(name="adam", lr=2e-4, betas=(0.5, 0.999), decay_epochs=4),
    )


def _uncrtaints(sar: bool, nll: bool, input_t: int = 1) -> Config:
    # UnCRtainTS (Ebel et al. 2023) on SEN12MS-CR, the recipe of the upstream README's training
    # command and parse_args defaults (PatrickTUM/UnCRtainTS@5e1f1b5): Adam lr 1e-3 (betas and
    # eps torch's defaults), batch 4, 20 epochs, gamma 1.0 (a constant LR), seed 1, whole
    # 256 x 256 patches without augmentation (its SEN12MSCR loader), S2 / 10000 and S1 to
    # [0, 1] (its process_MS / process_SAR), fp32; W = 128, 1 encoder + 5 decoder MBConv
    # blocks, scale_by 10. The loss: "l2", or the diagonal Gaussian NLL ("MGNLL").
    # Multi-temporal (input_t 3, the README's command): the same on SEN12MS-CR-TS series,
    # training dates drawn anew each epoch (--vary_samples), the L-TAE's defaults.
    name = "uncrtaints-mt" if input_t > 1 else "uncrtaints"
    return Config(
        data=DataConfig(crop_size=256, scaling="reflectance", augment=False, input_t=input_t),
        model=ModelConfig(
            name=name if sar else f"{name}-nosar",
            num_layers=5,
            feature_size=128,
            variance=nll,
        ),
        loss=LossConfig(name="mgnll" if nll else "l2"),
        optim=OptimConfig(name="adam", lr=1e-3, betas=(0.9, 0.999), eps=1e-8),
        train=TrainConfig(batch_size=4, epochs=20, seed=1, precision="fp32"),
    )


#: Named presets: the four published DSen2-CR variants (spec section 8), the pix2pix baseline
#: of the paper's table (spec section 9), the hybrids of issue 11 (DSen2-CR's recipe, CARL,
#: on the inpainted image: mask-fill inpainting, and a Stable Diffusion variant whose pack
#: needs 'cloudfree pack --inpaint stable-diffusion --sd-weights DIR'), UnCRtainTS's two
#: published recipes with and without SAR (issue 14), the same multi-temporal on SEN12MS-CR-TS
#: (issue 31) and a tiny debug run.
PRESETS: dict[str, Config] = {
    "dsen2cr_sar_carl": Config(),
    "dsen2cr_sar_l1": Config(loss=LossConfig(name="l1")),
    "dsen2cr_nosar_carl": Config(model=ModelConfig(name="dsen2cr-nosar")),
    "dsen2cr_nosar_l1": Config(model=ModelConfig(name="dsen2cr-nosar"), loss=LossConfig(name="l1")),
    "pix2pix": _pix2pix(),
    "hybrid_sar_carl": Config(data=_CACHED_MASK, model=ModelConfig(name="hybrid")),
    "hybrid_nosar_carl": Config(data=_CACHED_MASK, model=ModelConfig(name="hybrid-nosar")),
    "hybrid_sar_sd_carl": Config(
        data=_CACHED_MASK, model=ModelConfig(name="hybrid", inpaint="stable-diffusion")
    ),
    "uncrtaints_sar_l2": _uncrtaints(sar=True, nll=False),
    "uncrtaints_sar_nll": _uncrtaints(sar=True, nll=True),
    "uncrtaints_nosar_l2": _uncrtaints(sar=False, nll=False),
    "uncrtaints_nosar_nll": _uncrtaints(sar=False, nll=True),
    "uncrtaints_mt_sar_nll": _uncrtaints(sar=True, nll=True, input_t=3),
    "uncrtaints_mt_sar_l2": _uncrtaints(sar=True, nll=False, input_t=3),
    "uncrtaints_mt_nosar_nll": _uncrtaints(sar=False, nll=True, input_t=3),
    "uncrtaints_mt_nosar_l2": _uncrtaints(sar=False, nll=False, input_t=3),
    "debug_tiny": _debug_tiny(),
}


# --------------------------------------------------------------------------------------------
# Type coercion


def _suggest(name: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (valid: {', '.join(sorted(valid))})"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` as type ``tp`` (a field annotation) or raise ValueError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ValueError(f"config {key}: null is not allowed, expected {_type_name(tp)}")
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ValueError:
                pass
        raise ValueError(f"config {key}: expected {_type_name(tp)}, got {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ValueError(f"config {key}: expected a list like [0.9, 0.999], got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"config {key}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads "7e-5" (no dot) as a string: accept any text float() understands.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - only the annotations above are used
        raise TypeError(f"config {key}: unsupported field type {tp!r}")
    raise ValueError(
        f"config {key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"
    )


def _section_hints(section: str) -> dict[str, Any]:
    return typing.get_type_hints(_SECTION_TYPES[section])


def _check_section(section: str) -> type:
    if section not in _SECTION_TYPES:
        raise ValueError(f"unknown config section {section!r}{_suggest(section, _SECTION_TYPES)}")
    return _SECTION_TYPES[section]


def _check_key(section: str, key: str) -> Any:
    hints = _section_hints(section)
    if key not in hints:
        raise ValueError(
            f"unknown config key {f'{section}.{key}'!r}"
            f"{_suggest(key, [f.name for f in fields(_SECTION_TYPES[section])])}"
        )
    return hints[key]


def _apply(cfg: Config, updates: Mapping[str, Mapping[str, Any]], where: str) -> Config:
    """Return ``cfg`` with ``{section: {key: value}}`` coerced and applied."""
    new_sections: dict[str, Any] = {}
    for section, values in updates.items():
        _check_section(section)
        if not isinstance(values, Mapping):
            raise ValueError(
                f"{where}: section {section!r} must be a mapping of keys to values, got {values!r}"
            )
        coerced = {}
        for key, value in values.items():
            tp = _check_key(section, str(key))
            coerced[str(key)] = _coerce(value, tp, f"{section}.{key}")
        try:
            new_sections[section] = replace(getattr(cfg, section), **coerced)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    try:
        return replace(cfg, **new_sections)
    except ValueError as exc:  # a rule across sections (Config.__post_init__)
        raise ValueError(f"{where}: {exc}") from None


def _parse_override(text: str) -> tuple[str, str, Any]:
    """``"optim.lr=1e-4"`` -> ``("optim", "lr", 1e-4)`` with the value coerced to the field."""
    import yaml

    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value, e.g. train.epochs=2")
    dotted, raw = text.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ValueError(
            f"override {text!r}: the key must be section.key (one dot), e.g. optim.lr=1e-4"
        )
    section, key = parts
    _check_section(section)
    tp = _check_key(section, key)
    try:
        parsed = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ValueError(f"override {text!r}: value is not valid YAML ({exc})") from None
    try:
        value = _coerce(parsed, tp, f"{section}.{key}")
    except ValueError:
        # ``train.run_name=2024`` parses as an int: a text field takes the raw text instead.
        if parsed is None or str not in (tp, *typing.get_args(tp)):
            raise
        value = raw
    return section, key, value


# --------------------------------------------------------------------------------------------
# Loading and saving


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    from cloudfree.errors import read_text_file

    text = read_text_file(path, "a YAML config (sections data, model, loss, optim, train)")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections (data, model, ...), got {data!r}")
    return data


def get_preset(name: str) -> Config:
    """The preset ``name`` (a key of ``PRESETS``).

    Raises:
        ValueError: unknown name (the message suggests the closest one).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}{_suggest(name, PRESETS)}")
    return PRESETS[name]


#: Fields added after runs were saved with their behaviour built in, and the value that
#: behaviour had: a run's ``config.yaml`` written before the field existed resumes with it
#: (``load_config(..., saved_run=True)``), not with the new default.
FIELDS_ADDED: Final[dict[tuple[str, str], Any]] = {
    ("data", "mask"): "cached",  # the CARL mask was the cached full-patch one (issue 15)
    ("train", "precision"): "auto",  # the default was bf16 on CUDA (issue 15)
    ("train", "tf32"): True,  # PyTorch's default: TF32 cuDNN convolutions (issue 15)
}


def load_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), saved_run: bool = False
) -> Config:
    """Build a Config from a preset name or YAML file, then dotted overrides.

    Args:
        path: ``None`` (the paper's defaults), a preset name (``"debug_tiny"``), or a YAML file
            whose top level holds sections ``data``, ``model``, ``loss``, ``optim``, ``train``
            and optionally ``preset: NAME`` (start from that preset instead of the defaults).
        overrides: ``"section.key=value"`` strings applied last; values are parsed as YAML
            (``null``, ``[0.9, 0.99]``, ``1e-4``) and coerced to the field's type.
        saved_run: ``path`` is a run's ``config.yaml`` (resume): a field it lacks because it
            was written before the field existed takes its old value (:data:`FIELDS_ADDED`),
            so that the run continues as it started.

    Returns:
        The resolved, validated Config.

    Raises:
        ValueError: unknown preset, section or key (with the closest valid name), a value of the
            wrong type or out of range, or a missing file.
    """
    cfg = Config()
    if path is not None:
        p = Path(path)
        if isinstance(path, str) and path in PRESETS and not p.is_file():
            cfg = PRESETS[path]
        elif p.is_file():
            data = _read_yaml(p)
            if saved_run:
                for (section, key), old in FIELDS_ADDED.items():
                    if isinstance(data.get(section), dict) and key not in data[section]:
                        data[section][key] = old
            preset = data.pop("preset", None)
            if preset is not None:
                if not isinstance(preset, str):
                    raise ValueError(f"{p}: 'preset' must be a preset name, got {preset!r}")
                try:
                    cfg = get_preset(preset)
                except ValueError as exc:
                    raise ValueError(f"{p}: {exc}") from None
            try:
                cfg = _apply(cfg, data, str(p))
            except ValueError as exc:
                msg = str(exc)
                raise ValueError(msg if msg.startswith(str(p)) else f"{p}: {msg}") from None
        else:
            raise ValueError(
                f"config {str(path)!r} is neither a file nor a preset; presets: "
                f"{', '.join(PRESETS)}{_suggest(p.stem, PRESETS) if p.stem else ''}"
            )
    updates: dict[str, dict[str, Any]] = {}
    for text in overrides:
        section, key, value = _parse_override(text)
        updates.setdefault(section, {})[key] = value
    return _apply(cfg, updates, "overrides") if updates else cfg


def config_to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """Plain nested dict of ``cfg`` (tuples as lists), ready for YAML or JSON."""

    def plain(v: Any) -> Any:
        return [plain(x) for x in v] if isinstance(v, tuple | list) else v

    return {
        section: {k: plain(v) for k, v in dataclasses.asdict(getattr(cfg, section)).items()}
        for section in _SECTION_TYPES
    }


def dump_config(cfg: Config, header: str = "") -> str:
    """YAML text of ``cfg`` that ``load_config`` reads back to an equal Config."""
    import yaml

    def scalar(v: Any) -> str:
        # One line per value; lists in flow style ([0.9, 0.999]); drop YAML's "..." end marker.
        text = yaml.safe_dump(v, default_flow_style=True, width=10**6)
        return text.removesuffix("...\n").strip()

    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for section, values in config_to_dict(cfg).items():
        lines.append(f"{section}:")
        lines.extend(f"  {key}: {scalar(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


def _git_commit() -> tuple[str, bool | None]:
    """(commit, dirty) of the checkout holding this package; ("unknown", None) otherwise."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(here), *args], capture_output=True, text=True, timeout=10
        )

    try:
        # Only trust a repo that tracks this package (not e.g. a site-packages inside a repo).
        if git("ls-files", "--error-unmatch", "__init__.py").returncode != 0:
            return "unknown", None
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown", None
        status = git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return head.stdout.strip(), dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


def run_info() -> dict[str, Any]:
    """Provenance of a run: package version, git commit, Python and torch versions, UTC time."""
    from importlib import metadata

    from cloudfree import __version__

    try:
        torch_version: str | None = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    commit, dirty = _git_commit()
    return {
        "cloudfree_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "torch": torch_version,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": list(sys.argv),
    }


def save_config(cfg: Config, run_dir: str | Path) -> Path:
    """Write ``config.yaml`` (resolved) and ``run_info.json`` into ``run_dir``, atomically.

    Returns:
        The path of ``config.yaml``; ``load_config`` on it gives back ``cfg``.
    """
    from cloudfree.io import atomic_path

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    info = run_info()
    out = run_dir / "config.yaml"
    text = dump_config(
        cfg, header=f"resolved config, cloudfree {info['cloudfree_version']} @ {info['git_commit']}"
    )
    with atomic_path(out) as tmp, atomic_path(run_dir / "run_info.json") as info_tmp:
        tmp.write_text(text, encoding="utf-8")
        info_tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


def write_presets(folder: str | Path) -> list[Path]:
    """Write every preset as ``<folder>/<name>.yaml`` (how the repo's ``configs/`` is made)."""
    from cloudfree.io import atomic_path

    written = []
    for name, cfg in PRESETS.items():
        path = Path(folder) / f"{name}.yaml"
        header = (
            f"Preset {name!r} (generated from cloudfree.config.PRESETS by write_presets;\n"
            f"edit PRESETS, not this file). Use: cloudfree train --config {name} key=value ..."
        )
        with atomic_path(path) as tmp:
            tmp.write_text(dump_config(cfg, header=header), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_presets(sys.argv[1] if len(sys.argv) > 1 else "configs"):
        print(written_path)
