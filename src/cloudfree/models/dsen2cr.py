"""DSen2-CR: the residual network of Meraner et al. (2020), ISPRS J. 166:333-346.

Spec: ``docs/dsen2cr_spec.md`` section 4, read from ``ameraner/dsen2-cr``
``Code/dsen2cr_network.py`` (B and F from ``dsen2cr_main.py``)::

    x = concat([cloudy S2 (13), S1 (2)])            # optical first, channels first
    x = relu(conv3x3(x, F))                          # head, 15 (or 13) -> F
    repeat B times: x = x + 0.1 * conv3x3(relu(conv3x3(x)))   # no BN, no act. after add
    out = conv3x3(x, 13) + cloudy S2                 # tail, then the long skip

Decisions (the spec's INFER items):

- Parameter count, derived analytically (no published number):
  ``9*C_in*F + F + B*2*(9*F*F + F) + 9*F*13 + 13`` = 18,947,341 for C_in = 15, B = 16, F = 256
  and 18,942,733 without SAR (C_in = 13). It agrees with the saved Keras graph (34 Conv2D =
  head + 2*16 + tail). ``DSen2CRConfig.num_parameters`` computes it.
- Initialisation is Keras ``he_uniform`` on every conv, U(+-sqrt(6 / fan_in)) with zero biases:
  torch ``kaiming_uniform_(mode="fan_in", nonlinearity="relu")``. The torch Conv2d default
  (a = sqrt(5), i.e. U(+-sqrt(1 / fan_in))) differs and is overridden.
- ``x + 0.1 * r`` is written as ``torch.add(x, r, alpha=0.1)``: the same value (one fused
  multiply-add), one temporary fewer.

The model is pure: it takes *normalised* tensors (S2 DN / 2000, S1 mapped to [0, 2], see
``cloudfree.bands.DSEN2CR``) and does no clipping, tiling or device handling. Fast paths
(NNPACK Winograd convolutions on CPU, channels_last, bf16 autocast) live in
``cloudfree.models.runtime``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS
from cloudfree.models.contract import ModelContract
from cloudfree.models.inputs import check_optical_sar_inputs
from cloudfree.models.registry import register_model

#: Scale of each residual branch before the add (DSen2 / DSen2-CR, spec section 4).
RESIDUAL_SCALE: float = 0.1
#: Every convolution of the network is 3x3, stride 1, padding "same".
KERNEL_SIZE: int = 3


@dataclass(frozen=True)
class DSen2CRConfig:
    """Constructor arguments of :class:`DSen2CR`; the defaults are the paper's.

    Attributes:
        include_sar: concatenate the 2 S1 bands to the 13 S2 bands at the input (paper: True).
        num_layers: number of residual blocks B (paper: 16; the Keras function default is 32).
        feature_size: width F of every hidden convolution (paper: 256).
    """

    include_sar: bool = True
    num_layers: int = 16
    feature_size: int = 256

    def __post_init__(self) -> None:
        if not isinstance(self.include_sar, bool):
            raise TypeError(f"include_sar must be a bool, got {self.include_sar!r}")
        if not isinstance(self.num_layers, int) or self.num_layers < 0:
            raise ValueError(f"num_layers must be an int >= 0, got {self.num_layers!r}")
        if not isinstance(self.feature_size, int) or self.feature_size < 1:
            raise ValueError(f"feature_size must be an int >= 1, got {self.feature_size!r}")

    @property
    def in_channels(self) -> int:
        """Channels entering the head: 15 with SAR (13 S2 + 2 S1), 13 without."""
        return NUM_S2_BANDS + (NUM_S1_BANDS if self.include_sar else 0)

    @property
    def name(self) -> str:
        """Registry name of this variant: ``"dsen2cr"`` or ``"dsen2cr-nosar"``."""
        return "dsen2cr" if self.include_sar else "dsen2cr-nosar"

    def conv_shapes(self) -> list[tuple[int, int]]:
        """``(in, out)`` channels of every conv in forward order: head, 2 per block, tail."""
        f = self.feature_size
        return [(self.in_channels, f)] + [(f, f)] * (2 * self.num_layers) + [(f, NUM_S2_BANDS)]

    @property
    def num_parameters(self) -> int:
        """Trainable parameters, analytically: ``k*k*in*out + out`` summed over the convs."""
        k2 = KERNEL_SIZE * KERNEL_SIZE
        return sum(k2 * cin * cout + cout for cin, cout in self.conv_shapes())

    def conv_flops(self, height: int, width: int) -> int:
        """Forward FLOPs of the convolutions for one ``height x width`` sample.

        ``2 * k * k * C_in * C_out * H * W`` per conv (one multiply and one add per MAC); the
        ReLUs, residual adds and biases (< 0.1 %) are not counted. A training step (forward,
        input gradient, weight gradient) costs about 3x this.
        """
        k2 = KERNEL_SIZE * KERNEL_SIZE
        return sum(2 * k2 * cin * cout * height * width for cin, cout in self.conv_shapes())

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the constructor arguments (JSON-serialisable)."""
        return asdict(self)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    # padding=1 is Keras padding="same" for a 3x3 kernel at stride 1 (1 pixel each side).
    return nn.Conv2d(cin, cout, KERNEL_SIZE, padding=KERNEL_SIZE // 2, bias=True)


class ResidualBlock(nn.Module):
    """``x + 0.1 * conv(relu(conv(x)))``: no batch norm, no activation after the add.

    Shapes: (B, F, H, W) -> (B, F, H, W).
    """

    def __init__(self, feature_size: int) -> None:
        super().__init__()
        self.conv1 = _conv(feature_size, feature_size)
        self.conv2 = _conv(feature_size, feature_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.conv2(torch.relu(self.conv1(x)))
        return torch.add(x, r, alpha=RESIDUAL_SCALE)


class DSen2CR(nn.Module):
    """DSen2-CR cloud removal network (Meraner et al. 2020; spec section 4).

    Args:
        include_sar: the model takes S1 as a second input (15 input channels) or not (13).
        num_layers: number of residual blocks B (paper 16).
        feature_size: width F (paper 256). The defaults have exactly 18,947,341 parameters
            (18,942,733 without SAR).

    Submodules, in forward order (also the order of the Keras Conv2D layers, which the weight
    import relies on): ``head``, ``body[i].conv1``, ``body[i].conv2``, ``tail``.
    """

    def __init__(self, include_sar: bool = True, num_layers: int = 16, feature_size: int = 256):
        super().__init__()
        self.config = DSen2CRConfig(
            include_sar=include_sar, num_layers=num_layers, feature_size=feature_size
        )
        cfg = self.config
        self.head = _conv(cfg.in_channels, cfg.feature_size)
        self.body = nn.Sequential(*(ResidualBlock(cfg.feature_size) for _ in range(num_layers)))
        self.tail = _conv(cfg.feature_size, NUM_S2_BANDS)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: DSen2CRConfig) -> DSen2CR:
        """Build from a :class:`DSen2CRConfig`."""
        return cls(**config.to_dict())

    @property
    def include_sar(self) -> bool:
        """Whether ``forward`` expects an S1 tensor."""
        return self.config.include_sar

    @property
    def registry_name(self) -> str:
        """Name under which ``build_model`` rebuilds this model (saved with its weights)."""
        return self.config.name

    @property
    def contract(self) -> ModelContract:
        """One date of S2 (and S1), DSen2-CR's scaling (DN / 2000), no variance."""
        return ModelContract(include_sar=self.include_sar)

    def reset_parameters(self) -> None:
        """Keras ``he_uniform`` weights, U(+-sqrt(6 / fan_in)), and zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _check_inputs(self, s2_cloudy: torch.Tensor, s1: torch.Tensor | None) -> None:
        check_optical_sar_inputs(s2_cloudy, s1, self.include_sar, "dsen2cr")

    def forward(self, s2_cloudy: torch.Tensor, s1: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the cloud-free image.

        Args:
            s2_cloudy: (B, 13, H, W) float, cloudy S2 normalised as DN / 2000 (in [0, 5]).
            s1: (B, 2, H, W) float, S1 VV, VH normalised to [0, 2]; required if and only if
                the model was built with ``include_sar=True``.

        Returns:
            (B, 13, H, W) predicted cloud-free S2 in the same scale as ``s2_cloudy``
            (x 2000 -> DN); not clipped.
        """
        self._check_inputs(s2_cloudy, s1)
        # Optical first, then SAR (the Keras Concatenate order; the imported weights rely on it).
        x = torch.cat([s2_cloudy, s1], dim=1) if s1 is not None else s2_cloudy
        x = torch.relu(self.head(x))
        x = self.body(x)
        # Long skip to the normalised cloudy input: the network predicts a correction.
        return self.tail(x) + s2_cloudy


@register_model("dsen2cr")
def dsen2cr(**kwargs: int | bool) -> DSen2CR:
    """DSen2-CR with SAR input (paper default: B = 16, F = 256)."""
    return DSen2CR(**kwargs)  # type: ignore[arg-type]


@register_model("dsen2cr-nosar")
def dsen2cr_nosar(**kwargs: int | bool) -> DSen2CR:
    """DSen2-CR on the 13 optical bands only (the paper's "no SAR" ablation)."""
    if kwargs.pop("include_sar", False):
        raise ValueError("'dsen2cr-nosar' has no SAR input; use 'dsen2cr' for include_sar=True")
    return DSen2CR(include_sar=False, **kwargs)
