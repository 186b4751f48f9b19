"""What a cloud-removal network promises its callers, declared once, and the one forward call.

Every caller (a method at inference, the training loop, validation, the OpenVINO export) used
to read a model's promises through ``getattr`` and write its call out by hand. Here a model
declares them in a :class:`ModelContract` (its ``contract`` property), and :func:`forward` is
the only place that turns a batch into a call, so a new kind of model (a temporal one, a model
with an extra input) is a new entry, not a new branch in each caller.

Batch keys (tensors, normalised in the model's ``scaling``; ``cloudfree.bands``):

- one date: ``s2_cloudy`` (B, 13, H, W), ``s1`` (B, 2, H, W);
- a series (``temporal`` models): ``s2_series`` (B, T, 13, H, W), ``s1_series``
  (B, T, 2, H, W) and ``dates`` (B, T), days of each input relative to the target date (the
  target's own day is 0; UnCRtainTS's ``batch_positions``);
- extra inputs a model names in ``extra_inputs`` (the hybrid's ``s2_inpainted`` (B, 13, H, W)
  and ``mask`` (B, H, W); a temporal model's absolute time, ``s2_days`` and ``s1_days`` (B, T),
  days since Sentinel-1A's launch as UnCRtainTS counts them), passed as keyword arguments of
  the same names.

The output is (B, 13, H, W) in the scale of the S2 input; with ``variance`` (a model that
``predicts_variance``) (B, 26, H, W): the 13 means, then the 13 variances.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

import torch
from torch import nn

#: Input scalings a contract may name (:func:`cloudfree.bands.get_scaling`).
SCALINGS: Final[tuple[str, ...]] = ("dsen2cr", "reflectance")
#: Extra inputs a model may ask for, and what provides them.
EXTRA_INPUTS: Final[dict[str, str]] = {
    "s2_inpainted": "the cloudy S2 inpainted (cloudfree.inpaint; packed shards or HybridMethod)",
    "mask": "the cloud/shadow mask (B, H, W), nonzero = masked",
    "s2_days": "the days of each S2 input since Sentinel-1A's launch, 2014-04-03 (B, T) "
    "(SEN12MS-CR-TS samples, composite; UnCRtainTS encodes them)",
    "s1_days": "the days of each S1 input since Sentinel-1A's launch, 2014-04-03 (B, T)",
}
#: Batch keys of a series (``temporal`` models).
SERIES_KEYS: Final[tuple[str, ...]] = ("s2_series", "s1_series", "dates")


@dataclass(frozen=True)
class ModelContract:
    """What a network takes and gives (module docstring for the batch keys).

    Attributes:
        include_sar: it takes S1 (``s1``, or ``s1_series`` for a temporal model).
        scaling: the scaling of every input and of the output (:data:`SCALINGS`).
        predicts_variance: ``forward(..., return_variance=True)`` gives means and variances.
        extra_inputs: batch keys it takes as keyword arguments (:data:`EXTRA_INPUTS`).
        temporal: it takes a series of dates (``s2_series``, ``s1_series``, ``dates``) in
            place of one date.
    """

    include_sar: bool
    scaling: str = "dsen2cr"
    predicts_variance: bool = False
    extra_inputs: tuple[str, ...] = ()
    temporal: bool = False

    def __post_init__(self) -> None:
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        unknown = [k for k in self.extra_inputs if k not in EXTRA_INPUTS]
        if unknown:
            raise ValueError(
                f"unknown extra inputs {unknown}; a model may take {list(EXTRA_INPUTS)}"
            )

    @property
    def needs_inpainting(self) -> bool:
        """It reads the inpainted image (the hybrid models)."""
        return "s2_inpainted" in self.extra_inputs

    @property
    def input_keys(self) -> tuple[str, ...]:
        """Every batch key :func:`forward` reads for this model, in call order."""
        if self.temporal:
            keys: tuple[str, ...] = ("s2_series",) + (("s1_series",) if self.include_sar else ())
            keys += ("dates",)
        else:
            keys = ("s2_cloudy",) + (("s1",) if self.include_sar else ())
        return keys + self.extra_inputs


@runtime_checkable
class CloudRemovalModel(Protocol):
    """A network cloudfree runs: an ``nn.Module`` with a :class:`ModelContract`."""

    @property
    def contract(self) -> ModelContract: ...

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor: ...


def unwrap(model: Any) -> Any:
    """The network inside a DDP / ``torch.compile`` wrapper (itself otherwise)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def contract_of(model: Any) -> ModelContract:
    """The contract of ``model`` (wrappers looked through). A module that declares none is
    taken as a one-date model of S2 (and S1 when its ``config.include_sar`` says so), in
    DSen2-CR's scaling, without variance or extra inputs."""
    net = unwrap(model)
    value = getattr(net, "contract", None)  # OpenVINOModel: its source's
    if value is not None:
        if not isinstance(value, ModelContract):
            raise TypeError(f"{type(net).__name__}.contract must be a ModelContract")
        return value
    from cloudfree.models.inputs import reads_sar

    return ModelContract(include_sar=reads_sar(net))


def model_inputs(
    contract: ModelContract,
    batch: Mapping[str, Any],
    device: torch.device | str | None = None,
    memory_format: torch.memory_format | None = None,
) -> dict[str, torch.Tensor]:
    """The tensors of ``batch`` the model reads (:attr:`ModelContract.input_keys`), on
    ``device``; images as float32 (``memory_format`` for the 4-D ones, e.g. channels_last).

    Raises:
        ValueError: the batch lacks one of them (the message says what provides it).
    """
    _check_keys(contract, batch)
    out = {}
    for k in contract.input_keys:
        t = torch.as_tensor(batch[k])
        if k in _IMAGES:
            t = t.to(device, torch.float32, non_blocking=True)
            if memory_format is not None and t.ndim == 4:
                t = t.contiguous(memory_format=memory_format)
        else:
            t = t.to(device, non_blocking=True)
        out[k] = t
    return out


_IMAGES: Final[frozenset[str]] = frozenset({"s2_cloudy", "s1", "s2_series", "s1_series",
                                            "s2_inpainted"})  # fmt: skip
_BASE_KEYS: Final[dict[str, str]] = {
    "s2_cloudy": "the cloudy S2 (B, 13, H, W)",
    "s1": "the S1 (B, 2, H, W) of a model that reads SAR",
    "s2_series": "the S2 dates (B, T, 13, H, W) of a temporal model",
    "s1_series": "the S1 dates (B, T, 2, H, W) of a temporal model that reads SAR",
    "dates": "the days of each input date relative to the target (B, T)",
}


def _check_keys(contract: ModelContract, batch: Mapping[str, Any]) -> None:
    missing = [k for k in contract.input_keys if k not in batch]
    if missing:
        what = "; ".join(f"{k} ({EXTRA_INPUTS.get(k) or _BASE_KEYS[k]})" for k in missing)
        raise ValueError(f"the model reads {list(contract.input_keys)}; the batch has no {what}")


def forward(
    model: nn.Module | Any,
    inputs: Mapping[str, torch.Tensor],
    *,
    variance: bool = False,
    contract: ModelContract | None = None,
) -> torch.Tensor:
    """Call ``model`` (plain, DDP-wrapped or compiled) on ``inputs`` as its contract says.

    Args:
        model: the network (or its wrapper: the call goes through the wrapper).
        inputs: batch keys -> tensors (:func:`model_inputs`); keys it does not read are
            ignored.
        variance: ask for the variances too (``return_variance=True``).
        contract: the model's contract when the caller has it (else :func:`contract_of`).

    Returns:
        (B, 13, H, W), or (B, 26, H, W) with ``variance``.
    """
    c = contract or contract_of(model)
    _check_keys(c, inputs)
    if variance and not c.predicts_variance:
        raise ValueError(
            "this model predicts no variance; call it without variance=True, or use a model "
            "trained with the NLL loss"
        )
    if c.temporal:
        args: tuple[torch.Tensor, ...] = (inputs["s2_series"],)
        if c.include_sar:
            args += (inputs["s1_series"],)
        kwargs: dict[str, Any] = {"dates": inputs["dates"]}
    else:
        args = (inputs["s2_cloudy"],)
        if c.include_sar:
            args += (inputs["s1"],)
        kwargs = {}
    kwargs.update({k: inputs[k] for k in c.extra_inputs})
    if variance:
        kwargs["return_variance"] = True
    return model(*args, **kwargs)
