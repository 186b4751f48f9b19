"""pix2pix (Isola et al. 2017), the baseline of the DSen2-CR paper's Table 1 (spec section 9).

The paper names the baseline "pix2pix" and gives no settings; no repository holds its code.
ASSUMPTION (spec section 9, UNVERIFIED): the standard pix2pix settings, i.e. the defaults of
``junyanz/pytorch-CycleGAN-and-pix2pix`` (``--model pix2pix``): generator ``unet_256``, 70x70
PatchGAN discriminator (``basic``, ``n_layers_D = 3``), norm ``batch``, dropout on, init
``normal`` with gain 0.02, L1 weight 100, Adam 2e-4 with beta1 = 0.5 (the last two live in
``cloudfree.losses.pix2pix``). Adapted to SEN12MS-CR: 15 channels in (13 S2 + 2 S1, optical
first as in DSen2-CR) or 13 without SAR, 13 out, data in the DSen2-CR scale (S2 DN / 2000).

Generator (U-Net, ``num_downs`` levels; C = Conv4x4 stride 2, T = ConvTranspose4x4 stride 2)::

    encoder  C(in->ngf) | LReLU C BN (ngf->2ngf) | ... -> 8ngf | LReLU C (innermost, no BN)
    decoder  ReLU T BN (innermost) | ReLU T BN Dropout(0.5) x (num_downs - 5) | ReLU T BN ...
             | ReLU T(2ngf->13, with bias)       each decoder level: concat(skip, decoded)

Decisions:

- Output activation. pix2pix ends in Tanh because its images are scaled to [-1, 1]; S2 in the
  DSen2-CR scale lies in [0, 5] (DN / 2000, DN clipped to [0, 10000]), so Tanh would cap the
  prediction at 1 (2000 DN) and cut off bright surfaces. It is dropped, and the last transposed
  conv is linear (``residual=False``, the default): the generator predicts the image directly,
  as pix2pix does. That is the baseline the paper most plausibly ran: its pix2pix row has a
  reprod SAM of 13.93 deg against 3.9 deg for DSen2-CR, which a generator with DSen2-CR's long
  skip to the cloudy input would not show. ``residual=True`` adds the cloudy input to the output
  (DSen2-CR's long skip) for a variant that is not in the paper.
- Dropout is placed as junyanz does (the ``num_downs - 5`` decoder blocks just above the
  innermost one; 3 for unet_256), not on the first three decoder layers as the paper's text
  says. Dropout is active in ``train()`` and off in ``eval()``; junyanz's test script keeps
  train mode unless ``--eval`` is given, cloudfree evaluates in ``eval()`` (deterministic).
- Skip connections carry the LeakyReLU-activated encoder features: junyanz's in-place
  LeakyReLU modifies the tensor it later concatenates, and this reproduces that computation.
- Convolutions followed by BatchNorm have no bias (junyanz ``use_bias = False`` for batch
  norm); the first encoder conv also has none, the last decoder conv has one.
- H and W must be multiples of ``2 ** num_downs`` (256 for unet_256): the innermost level is
  1x1 there. 128x128 crops need ``num_downs=7``.

The model is pure, like :class:`cloudfree.models.dsen2cr.DSen2CR`: normalised tensors in,
no clipping, tiling or device handling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS
from cloudfree.models.contract import ModelContract
from cloudfree.models.inputs import check_optical_sar_inputs
from cloudfree.models.registry import register_model

#: Every conv of the generator and discriminator is 4x4 (pix2pix, Isola et al. 2017 sec. 6.1).
KERNEL_SIZE: int = 4
#: Negative slope of every LeakyReLU (encoder and discriminator).
LEAKY_SLOPE: float = 0.2
#: Dropout probability in the decoder (pix2pix: 0.5).
DROPOUT: float = 0.5
#: Std of the normal weight init (junyanz ``init_type="normal"``, ``init_gain=0.02``).
INIT_GAIN: float = 0.02
#: Levels above the innermost with constant width 8 * ngf and no dropout: unet needs >= 5.
MIN_NUM_DOWNS: int = 5


def unet_level_channels(ngf: int, num_downs: int) -> list[tuple[int, int]]:
    """``(outer, inner)`` feature widths of each U-Net level, outermost first.

    Level 0's outer side is the image (its channels are set by the caller); widths double from
    ``ngf`` up to ``8 * ngf`` and stay there (junyanz ``UnetGenerator``).
    """
    widths = [ngf * min(2**i, 8) for i in range(num_downs)]  # inner width of each level
    return [(widths[i - 1] if i else 0, widths[i]) for i in range(num_downs)]


def unet_num_parameters(in_channels: int, out_channels: int, ngf: int, num_downs: int) -> int:
    """Trainable parameters of the U-Net generator, analytically.

    Per level (k = 4, so k*k = 16 weights per channel pair; a BatchNorm has 2 per channel):
    outermost ``16*in*ngf`` (conv, no bias) + ``16*2ngf*out + out`` (transposed conv, bias);
    innermost ``16*o*i`` + ``16*i*o + 2o``; any other ``16*o*i + 2i`` + ``16*2i*o + 2o``.
    For junyanz's unet_256 with 3 -> 3 channels this is 54,413,955 (its log prints 54.414 M).
    """
    k2 = KERNEL_SIZE * KERNEL_SIZE
    total = 0
    for level, (outer, inner) in enumerate(unet_level_channels(ngf, num_downs)):
        if level == 0:
            total += k2 * in_channels * inner + k2 * 2 * inner * out_channels + out_channels
        elif level == num_downs - 1:
            total += k2 * outer * inner + k2 * inner * outer + 2 * outer
        else:
            total += k2 * outer * inner + 2 * inner + k2 * 2 * inner * outer + 2 * outer
    return total


@dataclass(frozen=True)
class Pix2PixConfig:
    """Constructor arguments of :class:`Pix2PixGenerator`; defaults are pix2pix's (assumed).

    Attributes:
        include_sar: concatenate the 2 S1 bands after the 13 S2 bands at the input.
        ngf: width of the outermost encoder level (pix2pix: 64).
        num_downs: U-Net levels (unet_256: 8; use 7 for 128x128 crops). At least 5.
        use_dropout: dropout 0.5 in the decoder (pix2pix: on).
        residual: add the cloudy S2 input to the output (DSen2-CR's long skip; pix2pix: off).
    """

    include_sar: bool = True
    ngf: int = 64
    num_downs: int = 8
    use_dropout: bool = True
    residual: bool = False

    def __post_init__(self) -> None:
        for name in ("include_sar", "use_dropout", "residual"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not isinstance(self.ngf, int) or isinstance(self.ngf, bool) or self.ngf < 1:
            raise ValueError(f"ngf must be an int >= 1, got {self.ngf!r}")
        if (
            not isinstance(self.num_downs, int)
            or isinstance(self.num_downs, bool)
            or self.num_downs < MIN_NUM_DOWNS
        ):
            raise ValueError(
                f"num_downs must be an int >= {MIN_NUM_DOWNS}, got {self.num_downs!r} "
                "(8 for 256x256 inputs, 7 for 128x128)"
            )

    @property
    def in_channels(self) -> int:
        """Generator input channels: 15 with SAR (13 S2 + 2 S1), 13 without."""
        return NUM_S2_BANDS + (NUM_S1_BANDS if self.include_sar else 0)

    @property
    def discriminator_in_channels(self) -> int:
        """Channels of the conditional discriminator input: condition + 13-band image."""
        return self.in_channels + NUM_S2_BANDS

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this: ``2 ** num_downs`` (256 for unet_256)."""
        return 2**self.num_downs

    @property
    def name(self) -> str:
        """Registry name of this variant: ``"pix2pix"`` or ``"pix2pix-nosar"``."""
        return "pix2pix" if self.include_sar else "pix2pix-nosar"

    @property
    def num_parameters(self) -> int:
        """Trainable parameters of the generator (see :func:`unet_num_parameters`)."""
        return unet_num_parameters(self.in_channels, NUM_S2_BANDS, self.ngf, self.num_downs)

    def to_dict(self) -> dict[str, bool | int]:
        """Plain dict of the constructor arguments (JSON-serialisable)."""
        return asdict(self)


def init_pix2pix_weights(module: nn.Module) -> None:
    """junyanz ``init_weights(net, "normal", 0.02)``: conv weights N(0, 0.02), biases 0,
    BatchNorm weights N(1, 0.02), BatchNorm biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, INIT_GAIN)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, INIT_GAIN)
            nn.init.zeros_(m.bias)


def _down(cin: int, cout: int, norm: bool) -> nn.Sequential:
    # The LeakyReLU before this conv is applied in forward (its output is also the skip).
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, KERNEL_SIZE, stride=2, padding=1, bias=False)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers)


def _up(cin: int, cout: int, outermost: bool, dropout: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.ReLU(),
        nn.ConvTranspose2d(cin, cout, KERNEL_SIZE, stride=2, padding=1, bias=outermost),
    ]
    if not outermost:
        layers.append(nn.BatchNorm2d(cout))
    if dropout:
        layers.append(nn.Dropout(DROPOUT))
    return nn.Sequential(*layers)


class Pix2PixGenerator(nn.Module):
    """pix2pix U-Net generator for 13-band cloud removal (assumed settings, see module doc).

    Args:
        include_sar: the model takes S1 as a second input (15 input channels) or not (13).
        ngf: outermost width (pix2pix 64: 54,446,733 parameters at num_downs 8 with SAR).
        num_downs: U-Net levels; H and W must be multiples of ``2 ** num_downs``.
        use_dropout: dropout 0.5 in the ``num_downs - 5`` decoder blocks above the innermost.
        residual: output = network + cloudy S2 (off in pix2pix and by default).

    Submodules: ``downs[i]`` (encoder level i, outermost first) and ``ups[i]`` (decoder, innermost
    first, ``ups[-1]`` the output layer).
    """

    def __init__(
        self,
        include_sar: bool = True,
        ngf: int = 64,
        num_downs: int = 8,
        use_dropout: bool = True,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.config = Pix2PixConfig(
            include_sar=include_sar,
            ngf=ngf,
            num_downs=num_downs,
            use_dropout=use_dropout,
            residual=residual,
        )
        levels = unet_level_channels(ngf, num_downs)
        last = num_downs - 1
        self.downs = nn.ModuleList()
        for level, (outer, inner) in enumerate(levels):
            cin = self.config.in_channels if level == 0 else outer
            # No norm on the outermost conv (raw input) nor the innermost (1x1 map at 256 px).
            self.downs.append(_down(cin, inner, norm=0 < level < last))
        self.ups = nn.ModuleList()
        for level in range(last, -1, -1):
            outer, inner = levels[level]
            cin = inner if level == last else 2 * inner  # innermost sees no skip concat
            cout = NUM_S2_BANDS if level == 0 else outer
            dropout = use_dropout and MIN_NUM_DOWNS - 1 <= level < last
            self.ups.append(_up(cin, cout, outermost=level == 0, dropout=dropout))
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: Pix2PixConfig) -> Pix2PixGenerator:
        """Build from a :class:`Pix2PixConfig`."""
        return cls(**config.to_dict())  # type: ignore[arg-type]

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
        """One date of S2 (and S1), DSen2-CR's scaling, no variance."""
        return ModelContract(include_sar=self.include_sar)

    def reset_parameters(self) -> None:
        """pix2pix init: N(0, 0.02) conv weights, N(1, 0.02) BatchNorm weights, zero biases."""
        init_pix2pix_weights(self)

    def _check_inputs(self, s2_cloudy: torch.Tensor, s1: torch.Tensor | None) -> None:
        check_optical_sar_inputs(s2_cloudy, s1, self.include_sar, "pix2pix")
        h, w = s2_cloudy.shape[2:]
        m = self.config.size_multiple
        if h % m or w % m:
            hint = " (128x128 crops need num_downs=7)" if self.config.num_downs != 7 else ""
            raise ValueError(
                f"pix2pix U-Net with num_downs={self.config.num_downs} needs H and W that are "
                f"multiples of 2**{self.config.num_downs} = {m}, got {h}x{w}; crop or pad the "
                f"input, or build the model with a num_downs that divides its size{hint}"
            )

    def condition(self, s2_cloudy: torch.Tensor, s1: torch.Tensor | None = None) -> torch.Tensor:
        """Checked generator input, also the discriminator's condition.

        Returns:
            (B, 15, H, W) ``[S2 (13), S1 (2)]``, optical first, or (B, 13, H, W) without SAR.
        """
        self._check_inputs(s2_cloudy, s1)
        return torch.cat([s2_cloudy, s1], dim=1) if s1 is not None else s2_cloudy

    def forward(self, s2_cloudy: torch.Tensor, s1: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the cloud-free image.

        Args:
            s2_cloudy: (B, 13, H, W) float, cloudy S2 normalised as DN / 2000 (in [0, 5]);
                H and W multiples of ``2 ** num_downs``.
            s1: (B, 2, H, W) float, S1 VV, VH normalised to [0, 2]; required if and only if
                the model was built with ``include_sar=True``.

        Returns:
            (B, 13, H, W) predicted cloud-free S2 in the same scale as ``s2_cloudy``; linear
            output, not clipped.
        """
        x = self.downs[0](self.condition(s2_cloudy, s1))
        skips: list[torch.Tensor] = []
        for down in self.downs[1:]:
            # The activated features feed both the next level and the skip (junyanz's in-place
            # LeakyReLU makes its concat see them too).
            x = F.leaky_relu(x, LEAKY_SLOPE)
            skips.append(x)
            x = down(x)
        for up in self.ups[:-1]:
            x = torch.cat([skips.pop(), up(x)], dim=1)  # (B, 2 * outer, h, w)
        out = self.ups[-1](x)
        return out + s2_cloudy if self.config.residual else out


def patchgan_receptive_field(n_layers: int = 3) -> int:
    """Receptive field in pixels of one PatchGAN output logit.

    Convs (all 4x4): ``n_layers`` of stride 2, then two of stride 1. With strides s_i,
    RF = 1 + sum_i (k - 1) * prod_{j < i} s_j; 70 for n_layers = 3 (the "70x70 PatchGAN").
    """
    strides = [2] * n_layers + [1, 1]
    rf, jump = 1, 1
    for s in strides:
        rf += (KERNEL_SIZE - 1) * jump
        jump *= s
    return rf


def patchgan_num_parameters(in_channels: int, ndf: int = 64, n_layers: int = 3) -> int:
    """Trainable parameters of :class:`PatchGANDiscriminator`, analytically.

    First conv ``16*in*ndf + ndf`` (bias, no norm); then per conv with BatchNorm ``16*i*o + 2o``;
    output conv ``16*c*1 + 1``. For junyanz's basic D on 6 channels: 2,768,705 (its log prints 2.769 M).
    """
    k2 = KERNEL_SIZE * KERNEL_SIZE
    widths = [ndf * min(2**n, 8) for n in range(n_layers + 1)]
    total = k2 * in_channels * ndf + ndf
    for cin, cout in zip(widths[:-1], widths[1:], strict=True):
        total += k2 * cin * cout + 2 * cout
    return total + k2 * widths[-1] + 1


class PatchGANDiscriminator(nn.Module):
    """Conditional PatchGAN discriminator (pix2pix; 70x70 receptive field for ``n_layers=3``).

    Layers (C = Conv4x4, padding 1): C(in->ndf, s2) LReLU | C BN LReLU (s2) x (n_layers - 1) |
    C BN LReLU (s1, width 8*ndf at most) | C(->1, s1). For 256x256 input the logits are 30x30.

    Args:
        in_channels: condition channels + image channels (15 + 13 = 28 with SAR, 26 without;
            ``Pix2PixConfig.discriminator_in_channels``).
        ndf: width of the first conv (pix2pix 64).
        n_layers: stride-2 convs (pix2pix 3).
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("ndf", ndf), ("n_layers", n_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.in_channels = in_channels
        self.ndf = ndf
        self.n_layers = n_layers
        k = KERNEL_SIZE
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, k, stride=2, padding=1),
            nn.LeakyReLU(LEAKY_SLOPE),
        ]
        widths = [ndf * min(2**n, 8) for n in range(n_layers + 1)]
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(widths[n - 1], widths[n], k, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(widths[n]),
                nn.LeakyReLU(LEAKY_SLOPE),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, k, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_pix2pix_weights(self)

    @classmethod
    def for_generator(
        cls, generator: Pix2PixGenerator, ndf: int = 64, n_layers: int = 3
    ) -> PatchGANDiscriminator:
        """The discriminator matching ``generator``'s condition (28 or 26 input channels)."""
        return cls(generator.config.discriminator_in_channels, ndf=ndf, n_layers=n_layers)

    @property
    def receptive_field(self) -> int:
        """Receptive field of one logit in input pixels (70 for n_layers = 3)."""
        return patchgan_receptive_field(self.n_layers)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Real/fake logits per patch.

        Args:
            condition: (B, Cc, H, W) generator input (cloudy S2 [+ S1], see
                :meth:`Pix2PixGenerator.condition`).
            image: (B, 13, H, W) real target or generated image, same scale.

        Returns:
            (B, 1, H', W') logits (no sigmoid); H' = H / 2**n_layers - 2.
        """
        if condition.ndim != 4 or image.ndim != 4:
            raise ValueError(
                f"condition and image must be (B, C, H, W), got {tuple(condition.shape)} and "
                f"{tuple(image.shape)}"
            )
        if condition.shape[0] != image.shape[0] or condition.shape[2:] != image.shape[2:]:
            raise ValueError(
                f"condition {tuple(condition.shape)} and image {tuple(image.shape)} must have "
                "the same batch size and H, W"
            )
        channels = condition.shape[1] + image.shape[1]
        if channels != self.in_channels:
            raise ValueError(
                f"condition ({condition.shape[1]} ch) + image ({image.shape[1]} ch) = "
                f"{channels} channels, but this discriminator takes {self.in_channels}; build it "
                "with PatchGANDiscriminator.for_generator(generator)"
            )
        return self.model(torch.cat([condition, image], dim=1))


@register_model("pix2pix")
def pix2pix(**kwargs: int | bool) -> Pix2PixGenerator:
    """pix2pix U-Net generator with SAR input (the paper's baseline; assumed settings)."""
    return Pix2PixGenerator(**kwargs)  # type: ignore[arg-type]


@register_model("pix2pix-nosar")
def pix2pix_nosar(**kwargs: int | bool) -> Pix2PixGenerator:
    """pix2pix U-Net generator on the 13 optical bands only."""
    if kwargs.pop("include_sar", False):
        raise ValueError("'pix2pix-nosar' has no SAR input; use 'pix2pix' for include_sar=True")
    return Pix2PixGenerator(include_sar=False, **kwargs)  # type: ignore[arg-type]
