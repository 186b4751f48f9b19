"""OpenVINO inference of a pure model on the CPU (the optional extra ``cloudfree[openvino]``).

OpenVINO's CPU plugin fuses UnCRtainTS's chains of depthwise/1x1 convolutions, norms and GELUs
that PyTorch runs one memory-bound kernel at a time: the published UnCRtainTS runs 3.3x faster
than PyTorch's best CPU path (channels_last) at 256 x 256 and 2.8x at 512 x 512, output within
1.1e-5 reflectance; the full DSen2-CR, all dense 3x3 convolutions, gains only 1.08x over
NNPACK on a 2-core Xeon and ran at 0.76x on a 2-core EPYC (``benchmarks/README.md``, "CPU
inference backends" and "UnCRtainTS"). So ``backend="auto"`` takes OpenVINO for models with
depthwise convolutions where it is installed, and PyTorch otherwise.

The converted model (OpenVINO IR, fp32 weights) is cached under the cloudfree cache folder
(``cloudfree.weights.cache.cache_dir() / "openvino"``), keyed by the model class, its
configuration, every weight and the OpenVINO version: the conversion (a torch trace, a few
seconds) runs once per set of weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Final

import torch
from torch import nn

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS
from cloudfree.models.contract import contract_of, forward

#: Sub-folder of the cloudfree cache holding converted models.
CACHE_SUBDIR: Final[str] = "openvino"
#: Side of the example input the conversion traces with (any size runs afterwards).
_TRACE_SIDE: Final[int] = 64


def openvino_available() -> bool:
    """True if the ``openvino`` package imports."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class _Traced(nn.Module):
    """The graph that is converted: positional inputs only, mean and variance in one output."""

    def __init__(self, model: nn.Module, include_sar: bool, variance: bool) -> None:
        super().__init__()
        self.model, self.include_sar, self.variance = model, include_sar, variance
        self.contract = contract_of(model)

    def forward(self, s2: torch.Tensor, s1: torch.Tensor | None = None) -> torch.Tensor:
        inputs = {"s2_cloudy": s2} if s1 is None else {"s2_cloudy": s2, "s1": s1}
        return forward(self.model, inputs, variance=self.variance, contract=self.contract)


def _cache_key(model: nn.Module, include_sar: bool, variance: bool, version: str) -> str:
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    config = asdict(config) if is_dataclass(config) and not isinstance(config, type) else config
    head = {"class": type(model).__qualname__, "config": config, "sar": include_sar,
            "variance": variance, "openvino": version}  # fmt: skip
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


class OpenVINOModel(nn.Module):
    """A model compiled by OpenVINO for the CPU, called like the PyTorch model it came from.

    ``forward(s2, s1=None, return_variance=False)``: s2 (B, 13, H, W), s1 (B, 2, H, W) for a
    SAR model, any B, H, W; returns (B, 13, H, W), or with ``return_variance`` (B, 26, H, W)
    for a model that predicts a variance. Inputs and outputs are CPU float32 tensors.

    Build it with :func:`compile_openvino`. ``source`` is the PyTorch model it was converted
    from, never run: its attributes (``config``, ``registry_name``, ``native_tile``...) and
    layers (``predict``'s tile planning reads their widths) are this model's.
    """

    def __init__(self, compiled: Any, source: nn.Module, include_sar: bool, variance: bool) -> None:
        super().__init__()
        self._compiled = compiled
        self.source = source
        self.include_sar = include_sar
        self.predicts_variance = variance

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            # Through __dict__: before __init__ (copy, pickle) there is no source to ask.
            source = self.__dict__.get("_modules", {}).get("source")
            if source is None:
                raise
            return getattr(source, name)

    def forward(
        self, s2: torch.Tensor, s1: torch.Tensor | None = None, return_variance: bool = False
    ) -> torch.Tensor:
        if return_variance and not self.predicts_variance:
            raise ValueError("this model predicts no variance")
        inputs = [s2.detach().to("cpu", torch.float32).contiguous().numpy()]
        if self.include_sar:
            if s1 is None:
                raise ValueError("this model reads S1: pass s1 (B, 2, H, W)")
            inputs.append(s1.detach().to("cpu", torch.float32).contiguous().numpy())
        out = torch.from_numpy(self._compiled(inputs)[0])
        return out if return_variance else out[:, :NUM_S2_BANDS]


def compile_openvino(
    model: nn.Module, include_sar: bool, cache: Path | None = None
) -> OpenVINOModel:
    """Convert ``model`` to OpenVINO (or read its cached conversion) and compile it for the CPU.

    Args:
        model: a pure model taking ``(s2, s1)`` (``include_sar``) or ``(s2,)``, eval mode is set.
        include_sar: whether it reads S1.
        cache: folder of converted models (default: the cloudfree cache's ``openvino/``).

    Raises:
        ImportError: OpenVINO is not installed (the message says how to install it).
    """
    try:
        import openvino as ov
    except ImportError:
        raise ImportError(
            "the OpenVINO backend needs the openvino package: pip install 'cloudfree[openvino]' "
            "(or choose the PyTorch backend, --backend torch)"
        ) from None
    if cache is None:
        from cloudfree.home import cache_dir

        cache = cache_dir() / CACHE_SUBDIR
    model = model.eval().to("cpu")
    variance = contract_of(model).predicts_variance
    xml = cache / f"{_cache_key(model, include_sar, variance, ov.__version__)}.xml"
    core = ov.Core()
    if not (xml.is_file() and xml.with_suffix(".bin").is_file()):
        shapes = [(-1, NUM_S2_BANDS, -1, -1)] + (
            [(-1, NUM_S1_BANDS, -1, -1)] if include_sar else []
        )
        example = tuple(torch.rand(1, c, _TRACE_SIDE, _TRACE_SIDE) for _, c, _, _ in shapes)
        # The tracer warns about the models' shape checks (they hold for every input it runs)
        # and that torch.jit.trace, which OpenVINO's converter calls, is deprecated.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", "`torch.jit.trace", DeprecationWarning)
            converted = ov.convert_model(
                _Traced(model, include_sar, variance),
                example_input=example if include_sar else example[0],
                input=shapes,
            )
        # Written to a temporary folder, then renamed: a killed conversion leaves no half file.
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".part-", dir=cache))
        try:
            # fp32 weights: save_model would compress them to fp16 by default.
            ov.save_model(converted, tmp / xml.name, compress_to_fp16=False)
            os.replace(tmp / xml.with_suffix(".bin").name, xml.with_suffix(".bin"))
            os.replace(tmp / xml.name, xml)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    compiled = core.compile_model(core.read_model(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return OpenVINOModel(compiled, model, include_sar, variance)
