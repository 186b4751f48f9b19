"""Fast inference set-up for a pure model: precision, memory format and convolution algorithm.

The models stay plain ``nn.Module``s; this module decides *how* to run them on a device, so
that ``predict`` and ``evaluate`` share one fast path::

    model = prepare_for_inference(model, device, precision="auto")
    with inference_context(device, precision="auto"):
        out = model(s2_cloudy.to(device), s1.to(device))

What "auto" picks, and why (figures in ``benchmarks/README.md``, section "Model"):

- "auto" is fp32 on every device. bf16 autocast rounds every convolution input to 8 mantissa
  bits; on the He-initialised full model that moved the output by 0.007-0.011 reflectance
  against fp32 (budget: 0.002), so it is opt-in (``precision="bf16"``).
- fp32 on CPU: the 3x3 convolutions run through NNPACK's Winograd/FFT kernels (bundled with
  the PyTorch CPU wheels) when available: the full model's forward is 2.0-2.4x (128x128) and
  2.7-3.0x (256x256) faster than with oneDNN's direct convolution on a 2-core AVX2 AMD EPYC,
  output within 1e-5 reflectance. bf16 there has no hardware support (oneDNN reports no
  AVX512-BF16/AMX) and is 8-200x *slower* than fp32.
- fp32 on CPU, models built of depthwise and 1x1 convolutions (UnCRtainTS's MBConv blocks):
  channels_last instead, and no NNPACK (its 1x1 path is slower than oneDNN's, and it has no
  grouped convolutions): the published UnCRtainTS runs 1.4x faster than in NCHW on a 2-core
  Xeon, output within 2e-6 reflectance; with NNPACK on its convolutions it ran at 0.63-0.81x
  (``benchmarks/model.py --uncrtaints``).
- fp32 on CUDA: channels_last (cuDNN's TF32 tensor-core kernels prefer NHWC).
- bf16 (opt-in): channels_last weights + autocast; NCHW bf16 convolutions are very slow on CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import nn

from cloudfree.errors import CloudfreeError

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
#: Values of ``backend``: "torch" (PyTorch, :func:`prepare_for_inference`), "openvino" (CPU,
#: fp32: :mod:`cloudfree.models.openvino`), "auto" (see :func:`resolve_backend`).
BACKENDS: tuple[str, ...] = ("auto", "torch", "openvino")
#: Below this many output pixels per image NNPACK is slower than oneDNN's direct convolution
#: (one 256->256 conv, 2-core AVX2 EPYC: 0.46x at 16x16, 1.0x at 32x32, 2.0x at 48x48).
NNPACK_MIN_PIXELS: int = 40 * 40


class DeviceError(CloudfreeError, ValueError):
    """A device that this machine or this PyTorch build does not have."""


def resolve_device(
    device: str | torch.device = "auto", local_rank: int | None = None, flag: str = "--device"
) -> torch.device:
    """The device a ``--device`` / ``train.device`` value names, checked to exist here.

    Args:
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:1"``, ``"mps"``...
        local_rank: under torchrun, this process's GPU: ``"auto"`` and a bare ``"cuda"`` mean
            ``cuda:local_rank``. None: ``cuda`` stays the current device.
        flag: how the user gave it, for the message (``--device``, ``train.device``).

    Raises:
        DeviceError: a name torch does not know, CUDA asked for on a build or machine without
            it, or a GPU index beyond those visible.
    """
    name = str(device)
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda" if local_rank is None else f"cuda:{local_rank}")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise DeviceError(
            f"{flag} {name!r} is not a device name ({e}); use auto, cpu, cuda or cuda:N"
        ) from None
    if dev.type == "cuda":
        if local_rank is not None and dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
        if not torch.cuda.is_available():
            why = (
                f"this PyTorch ({torch.__version__}) is a build without CUDA; install a CUDA "
                "build (https://pytorch.org/get-started/locally/)"
                if torch.version.cuda is None
                else "no CUDA device is visible (driver, CUDA_VISIBLE_DEVICES?)"
            )
            cpu = f"{flag} cpu" if flag.startswith("-") else f"{flag}=cpu"  # a config key
            raise DeviceError(f"{flag} {name}: {why}, or use {cpu} (or auto)")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceError(
                f"{flag} {name}: only {count} CUDA device(s) are visible (cuda:0"
                f"{f'..cuda:{count - 1}' if count > 1 else ''})"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"{flag} {name}: MPS is not available on this machine; use cpu")
    return dev


def cpu_has_native_bf16() -> bool:
    """True if oneDNN runs bf16 convolutions in hardware on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def nnpack_available() -> bool:
    """True if this PyTorch build has NNPACK and it initialises on this CPU.

    The first call initialises NNPACK; ``torch._nnpack_spatial_convolution`` fails before it.
    """
    try:
        return bool(torch.backends.nnpack.is_available())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str = "auto") -> Precision:
    """The precision to run in: ``"auto"`` stands for ``"fp32"`` (see the module docstring).

    Raises:
        ValueError: ``precision`` is not one of ``"auto"``, ``"fp32"``, ``"bf16"``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    # "auto" is fp32 everywhere: bf16 misses the 0.002-reflectance budget (module docstring).
    return "fp32" if precision == "auto" else precision  # type: ignore[return-value]


class NNPACKConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose CPU fp32 forward runs NNPACK's fast (Winograd/FFT) convolution.

    Same parameters and state-dict keys as ``nn.Conv2d``. Any case NNPACK does not cover
    (another device or dtype, autocast on, groups, dilation, non-zero padding modes) or where
    it is slower (images under ``NNPACK_MIN_PIXELS``) goes through the ordinary ``nn.Conv2d``
    forward. A batch is convolved one image at a time: PyTorch calls NNPACK's fast inference
    path only for batch 1, and its batched path is no faster than oneDNN (measured: 4 images of
    128x128, 256->256 channels: 0.54 s batched, 0.20 s one by one, 0.54 s oneDNN). Gradients
    flow (PyTorch differentiates ``_nnpack_spatial_convolution`` with the ordinary convolution
    backward).
    """

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> NNPACKConv2d:
        """A drop-in replacement sharing ``conv``'s weight and bias tensors."""
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            stride=conv.stride,  # type: ignore[arg-type]
            padding=conv.padding,  # type: ignore[arg-type]
            dilation=conv.dilation,  # type: ignore[arg-type]
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            device="meta",  # no allocation or init: the tensors are replaced just below
        )
        new.weight = conv.weight
        new.bias = conv.bias
        return new.train(conv.training)

    def _nnpack_ok(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and x.ndim == 4
            and self.weight.dtype == torch.float32
            and self.groups == 1
            and self.dilation == (1, 1)
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
            and x.shape[-2] * x.shape[-1] >= NNPACK_MIN_PIXELS
            and not torch.is_autocast_enabled("cpu")
            # Also initialises NNPACK (once): its convolution fails until this has run.
            and nnpack_available()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._nnpack_ok(x):
            return super().forward(x)
        weight = self.weight.contiguous()
        padding = [int(p) for p in self.padding]
        stride = [int(s) for s in self.stride]
        outs = [
            torch._nnpack_spatial_convolution(xi.contiguous(), weight, self.bias, padding, stride)
            for xi in x.split(1)
        ]
        return outs[0] if len(outs) == 1 else torch.cat(outs)


def use_nnpack(model: nn.Module) -> nn.Module:
    """Swap every plain ``nn.Conv2d`` of ``model`` for :class:`NNPACKConv2d`, in place.

    Only zero-padded, stride-1, ungrouped, undilated convolutions with a kernel wider than 1 x 1
    are swapped (the cases NNPACK's fast algorithms cover; a 1 x 1 convolution is a matrix
    product, which oneDNN runs faster). The parameters are shared, not copied, so state dicts and
    optimisers are unaffected.
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (
                type(child) is nn.Conv2d
                and child.padding_mode == "zeros"
                and child.stride == (1, 1)
                and child.dilation == (1, 1)
                and child.groups == 1
                and child.kernel_size != (1, 1)
                and not isinstance(child.padding, str)
            ):
                setattr(parent, name, NNPACKConv2d.from_conv(child))
    return model


def has_depthwise_convs(model: nn.Module) -> bool:
    """True if ``model`` has a depthwise convolution (``groups == in_channels > 1``)."""
    return any(
        isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
        for m in model.modules()
    )


def resolve_backend(
    backend: str, model: nn.Module, device: str | torch.device, precision: str = "auto"
) -> str:
    """The backend ``model`` runs on: ``"torch"`` or ``"openvino"``.

    ``"auto"`` takes OpenVINO on the CPU in fp32 for a model with depthwise convolutions (3.3x
    faster for UnCRtainTS, :mod:`cloudfree.models.openvino`) when it is installed, PyTorch
    otherwise. Models with inputs besides S2 and S1 (the hybrid) always run on PyTorch.

    Raises:
        ValueError: an unknown backend, or ``"openvino"`` off the CPU, in bf16, or for a model
            it cannot run.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    from cloudfree.models.contract import contract_of
    from cloudfree.models.openvino import openvino_available

    contract = contract_of(model)
    runnable = not contract.extra_inputs and not contract.temporal
    cpu_fp32 = torch.device(device).type == "cpu" and resolve_precision(precision) == "fp32"
    if backend == "openvino":
        if not (runnable and cpu_fp32):
            raise ValueError(
                "the OpenVINO backend runs models of S2 (and S1) only, on the CPU, in fp32; "
                f"got {type(model).__name__} on {device} in {precision}: use --backend torch"
            )
        return "openvino"
    if runnable and cpu_fp32 and has_depthwise_convs(model) and openvino_available():
        return "openvino"
    return "torch"


def prepare_for_inference(
    model: nn.Module, device: str | torch.device = "cpu", precision: str = "auto"
) -> nn.Module:
    """Put a model in its fastest accurate inference form on ``device``, in place.

    - eval mode, moved to ``device``;
    - bf16 (as resolved by :func:`resolve_precision`): channels_last weights, which the
      bf16 kernels of cuDNN and oneDNN need (NCHW bf16 is very slow on CPU);
    - fp32 on CUDA: channels_last (tensor-core friendly under TF32);
    - fp32 on CPU: NNPACK convolutions where available, or channels_last for a model with
      depthwise convolutions (see the module docstring).

    Run the model inside :func:`inference_context` with the same ``device`` and ``precision``.

    Returns:
        ``model`` (modified in place).
    """
    dev = torch.device(device)
    resolved = resolve_precision(precision)
    model = model.eval().to(dev)
    if resolved == "bf16" or dev.type == "cuda" or has_depthwise_convs(model):
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    elif dev.type == "cpu" and nnpack_available():
        use_nnpack(model)
    return model


def training_bf16(device: str | torch.device, precision: str) -> bool:
    """Whether training and its validation run under bf16 autocast (``TrainConfig.precision``):
    ``"bf16"`` on any device, ``"auto"`` on CUDA only, ``"fp32"`` never.

    (Inference resolves ``"auto"`` to fp32 everywhere: :func:`resolve_precision`.)

    Raises:
        ValueError: ``precision`` is not ``"auto"``, ``"fp32"`` or ``"bf16"``.
    """
    resolve_precision(precision)  # validates the name
    return precision == "bf16" or (precision == "auto" and torch.device(device).type == "cuda")


def bf16_autocast(
    device: str | torch.device, enabled: bool
) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` to bf16 on ``device``'s type when ``enabled``, else a no-op."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


@contextlib.contextmanager
def tf32_mode(enabled: bool) -> Iterator[None]:
    """Run CUDA fp32 convolutions (cuDNN) and matmuls in TF32 (``enabled``) or in IEEE fp32
    inside the block; the previous settings are restored after it.

    PyTorch's default is TF32 for cuDNN convolutions and IEEE for matmuls; the paper trained in
    plain fp32, so the paper presets turn TF32 off (``TrainConfig.tf32 = False``). No effect on
    the CPU.
    """
    cudnn_conv = getattr(torch.backends.cudnn, "conv", None)
    if cudnn_conv is not None and hasattr(cudnn_conv, "fp32_precision"):
        # torch >= 2.9: the per-backend API (reading allow_tf32 after using it raises).
        matmul = torch.backends.cuda.matmul
        saved = (cudnn_conv.fp32_precision, matmul.fp32_precision)
        mode = "tf32" if enabled else "ieee"
        cudnn_conv.fp32_precision, matmul.fp32_precision = mode, mode
        try:
            yield
        finally:
            cudnn_conv.fp32_precision, matmul.fp32_precision = saved
        return
    saved_legacy = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved_legacy


@contextlib.contextmanager
def inference_context(
    device: str | torch.device = "cpu", precision: str = "auto"
) -> Iterator[None]:
    """``torch.inference_mode()`` plus bf16 autocast when ``precision`` resolves to bf16."""
    with torch.inference_mode(), bf16_autocast(device, resolve_precision(precision) == "bf16"):
        yield
