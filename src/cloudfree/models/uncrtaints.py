"""UnCRtainTS, mono-temporal: Ebel et al. (2023), CVPR EarthVision, "UnCRtainTS: Uncertainty
Quantification for Cloud Removal in Optical Satellite Time Series".

Facts from the paper and the upstream code (``PatrickTUM/UnCRtainTS`` @5e1f1b5,
``model/src/backbones/uncrtaints.py``, ``utae.py``, ``parse_args.py``, ``base_model.py``; MIT);
this is our own code, with the module tree laid out so that the upstream state dict maps onto it
one tensor to one tensor (:mod:`cloudfree.models.uncrtaints_import`)::

    x = scale_by * concat([S1 (2), S2 (13)])         # SAR first (upstream prepare_data_mono)
    x = relu(groupnorm(conv1x1(x, W)))               # in_conv, encoder_norm
    x = MBConv(x) for each encoder width             # in_block, encoder_norm
    (multi-temporal only: L-TAE attention over the dates; absent for input_t = 1)
    x = MBConv(x) for each decoder width             # out_block, decoder_norm
    y = conv1x1(x, 13 [+ 13 variances])              # out_conv, no norm, no activation
    mean = scale_by * sigmoid(y[:13]) / scale_by     # out_nonlin_mean (parse_args default on)
    var  = (softplus(y[13:]) + eps) / scale_by**2    # diagonal variance, eps 1e-3 (1e-9 if scale_by = 1)

MBConv (expansion 2, ``W -> 2W -> W``): ``x + pw(SE(gelu(n(dw3x3(gelu(n(pw(n(x)))))))))`` with a
pre-norm on the input, a depthwise 3x3 with reflect padding, a squeeze-excitation of width
``W / 4`` and bias-free convolutions.

The published checkpoints (pCloud folder linked from the upstream README, each with the
``conf.json`` of its flags) are W = 128, one encoder and five decoder blocks, group norm (4
groups) in the encoder and batch norm in the decoder, ``scale_by`` 10 (``--scale_by 10.0`` of the
README's training command): 0.52 M parameters. The L2 checkpoints predict the mean only (13
output channels); the Gaussian-NLL ones 13 means and 13 variances.

**Inputs and outputs are reflectance-scaled** (``cloudfree.bands.REFLECTANCE``: S2 / 10000,
S1 [-25, 0] dB to [0, 1]); ``scale_by`` is part of the network (the sigmoid's range and the
variance floor depend on it), so it is applied and undone inside ``forward``. The mean comes back
in [0, 1] reflectance and the variance in reflectance squared.

**Not local.** Group norm and the squeeze-excitation average over the whole input, so the output
depends on the tile it is computed on, unlike DSen2-CR's: whole scenes are predicted on tiles of
the training patch size, :attr:`UnCRtainTS.native_tile` (``cloudfree.predict.plan``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS, PATCH_SIZE
from cloudfree.models.contract import ModelContract
from cloudfree.models.inputs import check_optical_sar_inputs
from cloudfree.models.registry import register_model

#: Normalisation layers a block may use (upstream ``get_norm_layer``; "none" breaks MBConv there).
NORMS: tuple[str, ...] = ("group", "batch", "instance")
#: Groups of every group norm (upstream ``n_groups=4`` everywhere).
NORM_GROUPS: int = 4
#: MBConv channel expansion (upstream ``MBConv(..., expansion=2)`` in UNCRTAINTS).
EXPANSION: int = 2
#: Squeeze-excitation width, as a fraction of the block's input width (upstream ``SE(expansion=0.25)``).
SE_RATIO: float = 0.25
#: Variance non-linearities (``--var_nonLinearity``); the NLL training forces "softplus".
VAR_NONLINEARITIES: tuple[str, ...] = ("softplus", "elu")
#: Covariance modes with variance outputs: "diag" and "uni" predict one variance per band, "iso"
#: one for all bands (``--covmode``); None: mean only (the L2 checkpoints).
COVMODES: tuple[str, ...] = ("diag", "uni", "iso")


@dataclass(frozen=True)
class UnCRtainTSConfig:
    """Constructor arguments of :class:`UnCRtainTS`; defaults are the published checkpoints'.

    Attributes:
        include_sar: S1 concatenated before S2 at the input (``--use_sar``; 15 channels, else 13).
        encoder_widths: one MBConv block per entry (``--encoder_widths``, ``[128]``).
        decoder_widths: one MBConv block per entry (``--decoder_widths``, ``[128] * 5``); the
            first must equal the last encoder width (upstream asserts it).
        encoder_norm, decoder_norm: "group", "batch" or "instance" (``group`` / ``batch``).
        covmode: "diag" (a variance per band), "uni", "iso" (one variance), or None (mean only,
            the L2 checkpoints).
        mean_sigmoid: squash the mean with ``scale_by * sigmoid`` (``--mean_nonLinearity``, on
            by default upstream: the flag switches it *off*).
        var_nonlinearity: "softplus" (the NLL checkpoints) or "elu" (``elu + 1``).
        scale_by: inputs, targets and means are scaled by this inside the network (``--scale_by``).
        separate_out: two output convolutions, one for the means and one for the variances
            (``--separate_out``), instead of one for both.
    """

    include_sar: bool = True
    encoder_widths: tuple[int, ...] = (128,)
    decoder_widths: tuple[int, ...] = field(default=(128, 128, 128, 128, 128))
    encoder_norm: str = "group"
    decoder_norm: str = "batch"
    covmode: str | None = "diag"
    mean_sigmoid: bool = True
    var_nonlinearity: str = "softplus"
    scale_by: float = 10.0
    separate_out: bool = False

    def __post_init__(self) -> None:
        # Lists from JSON (the weights metadata, conf.json) become tuples: frozen and hashable.
        object.__setattr__(self, "encoder_widths", tuple(int(w) for w in self.encoder_widths))
        object.__setattr__(self, "decoder_widths", tuple(int(w) for w in self.decoder_widths))
        if not isinstance(self.include_sar, bool):
            raise TypeError(f"include_sar must be a bool, got {self.include_sar!r}")
        if not self.encoder_widths or not self.decoder_widths:
            raise ValueError("encoder_widths and decoder_widths need at least one block each")
        widths = self.encoder_widths + self.decoder_widths
        if any(w < NORM_GROUPS or w % NORM_GROUPS for w in widths):
            raise ValueError(
                f"every width must be a positive multiple of {NORM_GROUPS} (group norm), got "
                f"encoder {list(self.encoder_widths)}, decoder {list(self.decoder_widths)}"
            )
        if len(set(widths)) != 1:
            # Upstream chains the blocks without projections: they only run with one width.
            raise ValueError(
                "all encoder and decoder widths must be equal (the blocks are chained without "
                f"projection), got encoder {list(self.encoder_widths)}, decoder "
                f"{list(self.decoder_widths)}"
            )
        for key in ("encoder_norm", "decoder_norm"):
            if getattr(self, key) not in NORMS:
                raise ValueError(f"{key} must be one of {NORMS}, got {getattr(self, key)!r}")
        if self.covmode is not None and self.covmode not in COVMODES:
            raise ValueError(f"covmode must be one of {COVMODES} or None, got {self.covmode!r}")
        if self.var_nonlinearity not in VAR_NONLINEARITIES:
            raise ValueError(
                f"var_nonlinearity must be one of {VAR_NONLINEARITIES}, got "
                f"{self.var_nonlinearity!r}"
            )
        if not self.scale_by > 0:
            raise ValueError(f"scale_by must be > 0, got {self.scale_by!r}")

    @property
    def width(self) -> int:
        """Feature width of every block."""
        return self.encoder_widths[0]

    @property
    def in_channels(self) -> int:
        """Input channels: 15 with SAR (2 S1 + 13 S2), 13 without."""
        return NUM_S2_BANDS + (NUM_S1_BANDS if self.include_sar else 0)

    @property
    def variance_channels(self) -> int:
        """Variance outputs: 13 ("diag", "uni"), 1 ("iso") or 0 (mean only)."""
        return {None: 0, "iso": 1}.get(self.covmode, NUM_S2_BANDS)

    @property
    def variance_eps(self) -> float:
        """Floor added to the variance, in the network's (``scale_by``) units (upstream rule)."""
        return 1e-9 if self.scale_by == 1.0 else 1e-3

    @property
    def name(self) -> str:
        """Registry name: ``"uncrtaints"`` or ``"uncrtaints-nosar"``."""
        return "uncrtaints" if self.include_sar else "uncrtaints-nosar"

    def to_dict(self) -> dict[str, object]:
        """Plain, JSON-serialisable dict of the constructor arguments."""
        d = asdict(self)
        d["encoder_widths"] = list(self.encoder_widths)
        d["decoder_widths"] = list(self.decoder_widths)
        return d

    def macs(self, height: int, width: int) -> int:
        """Multiply-accumulates of one forward pass on a ``height x width`` input.

        Convolutions and the SE's linear layers; norms, activations and adds (< 2 %) are not
        counted. 28.6 GMAC at 256 x 256 for the published configuration (UnCRtainTS issue text).
        """
        px = height * width
        w, h = self.width, EXPANSION * self.width
        se = int(w * SE_RATIO)
        block = px * (w * h + 9 * h + h * w) + 2 * h * se
        head = px * self.in_channels * w
        out = px * w * (NUM_S2_BANDS + self.variance_channels)
        return head + block * (len(self.encoder_widths) + len(self.decoder_widths)) + out


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(NORM_GROUPS, channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.InstanceNorm2d(channels)


class _ConvBlock(nn.Module):
    """1x1 conv (+ norm + ReLU); state-dict keys ``conv.conv.<i>.*`` as upstream's ConvBlock."""

    def __init__(self, cin: int, cout: int, norm: str | None, relu: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 1)]
        if norm is not None:
            layers.append(_norm(norm, cout))
        if relu:
            layers.append(nn.ReLU())
        # Named conv.conv as in the published weights' keys (UnCRtainTS' ConvLayer).
        self.conv = nn.Module()
        self.conv.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(nn.Module, self.conv.conv)(x)


class SqueezeExcitation(nn.Module):
    """Channel gates from the global mean: ``x * sigmoid(W2 gelu(W1 mean(x)))``, no biases.

    Shapes: (B, C, H, W) -> (B, C, H, W); the hidden width is ``int(block input width / 4)``.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.GELU(),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


class _PreNorm(nn.Module):
    def __init__(self, channels: int, norm: str, fn: nn.Module) -> None:
        super().__init__()
        self.norm = _norm(norm, channels)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class MBConv(nn.Module):
    """Inverted residual block of width ``channels`` (expansion 2), without down-sampling.

    ``x + pw(SE(gelu(n(dw(gelu(n(pw(n(x)))))))))``: pre-norm, 1x1 to ``2C``, depthwise 3x3
    (reflect padding), squeeze-excitation, 1x1 back to ``C``; every conv bias-free and followed by
    a norm. Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        hidden = EXPANSION * channels
        body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            _norm(norm, hidden),
            nn.GELU(),
            nn.Conv2d(
                hidden, hidden, 3, padding=1, padding_mode="reflect", groups=hidden, bias=False
            ),
            _norm(norm, hidden),
            nn.GELU(),
            SqueezeExcitation(hidden, int(channels * SE_RATIO)),
            nn.Conv2d(hidden, channels, 1, bias=False),
            _norm(norm, channels),
        )
        self.conv = _PreNorm(channels, norm, body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class UnCRtainTS(nn.Module):
    """UnCRtainTS for one date (input_t = 1): cloudy S2 (+ S1) -> mean and per-band variance.

    Args: the fields of :class:`UnCRtainTSConfig` (defaults: the published checkpoints).

    ``forward(s2_cloudy, s1)`` returns the mean, (B, 13, H, W) reflectance;
    ``forward(s2_cloudy, s1, return_variance=True)`` returns (B, 26, H, W): the 13 means, then
    the 13 variances in reflectance squared (the layout of upstream's output and of the NLL
    losses of :mod:`cloudfree.losses.nll`).
    """

    def __init__(
        self,
        include_sar: bool = True,
        encoder_widths: tuple[int, ...] | list[int] = (128,),
        decoder_widths: tuple[int, ...] | list[int] = (128, 128, 128, 128, 128),
        encoder_norm: str = "group",
        decoder_norm: str = "batch",
        covmode: str | None = "diag",
        mean_sigmoid: bool = True,
        var_nonlinearity: str = "softplus",
        scale_by: float = 10.0,
        separate_out: bool = False,
    ) -> None:
        super().__init__()
        self.config = UnCRtainTSConfig(
            include_sar=include_sar,
            encoder_widths=tuple(encoder_widths),
            decoder_widths=tuple(decoder_widths),
            encoder_norm=encoder_norm,
            decoder_norm=decoder_norm,
            covmode=covmode,
            mean_sigmoid=mean_sigmoid,
            var_nonlinearity=var_nonlinearity,
            scale_by=float(scale_by),
            separate_out=separate_out,
        )
        cfg = self.config
        w, nvar = cfg.width, cfg.variance_channels
        self.in_conv = _ConvBlock(cfg.in_channels, w, cfg.encoder_norm, relu=True)
        self.in_block = nn.ModuleList(MBConv(w, cfg.encoder_norm) for _ in cfg.encoder_widths)
        self.out_block = nn.ModuleList(MBConv(w, cfg.decoder_norm) for _ in cfg.decoder_widths)
        if cfg.separate_out:
            self.out_conv_mean_1 = _ConvBlock(w, NUM_S2_BANDS, None, relu=False)
            if nvar:
                self.out_conv_var_1 = _ConvBlock(w, nvar, None, relu=False)
        else:
            self.out_conv = _ConvBlock(w, NUM_S2_BANDS + nvar, None, relu=False)
        self.reset_parameters()

    @property
    def include_sar(self) -> bool:
        """Whether ``forward`` expects an S1 tensor."""
        return self.config.include_sar

    @property
    def registry_name(self) -> str:
        """Name under which ``build_model`` rebuilds this model (saved with its weights)."""
        return self.config.name

    @property
    def predicts_variance(self) -> bool:
        """Whether ``forward(..., return_variance=True)`` is available."""
        return self.config.covmode is not None

    @property
    def scaling(self) -> str:
        """Every input and the output are in reflectance (``cloudfree.bands``)."""
        return "reflectance"

    @property
    def contract(self) -> ModelContract:
        """One date of S2 (and S1) in reflectance; variances with a ``covmode``."""
        return ModelContract(
            include_sar=self.include_sar,
            scaling=self.scaling,
            predicts_variance=self.predicts_variance,
        )

    @property
    def native_tile(self) -> int:
        """Tile side whole scenes are predicted on: the training patch (outputs depend on it)."""
        return PATCH_SIZE

    def reset_parameters(self) -> None:
        """Upstream ``weight_init``: Xavier-normal conv and linear weights, N(0, 1) conv biases,
        N(0, 1) batch-norm weights with zero biases; group norm keeps torch's (1, 0)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.normal_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight)
                nn.init.zeros_(m.bias)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.separate_out:
            out = [self.out_conv_mean_1(x)]
            if self.config.variance_channels:
                out.append(self.out_conv_var_1(x))
            return torch.cat(out, dim=1) if len(out) > 1 else out[0]
        return self.out_conv(x)

    def forward(
        self, s2_cloudy: torch.Tensor, s1: torch.Tensor | None = None, return_variance: bool = False
    ) -> torch.Tensor:
        """Predict the cloud-free image (and its variance).

        Args:
            s2_cloudy: (B, 13, H, W) cloudy S2 reflectance, DN / 10000 clipped to [0, 1].
            s1: (B, 2, H, W) S1 VV, VH, [-25, 0] dB mapped to [0, 1]; required iff
                ``include_sar``.
            return_variance: also return the variances (a model with ``covmode``).

        Returns:
            (B, 13, H, W) mean reflectance; with ``return_variance`` (B, 26, H, W): means, then
            variances (reflectance squared, > 0; "iso" repeats its one variance per band).
        """
        check_optical_sar_inputs(s2_cloudy, s1, self.include_sar, "uncrtaints")
        cfg = self.config
        self._check_variance(return_variance)
        # SAR first: upstream's prepare_data_mono concatenates (S1, S2).
        x = torch.cat([s1, s2_cloudy], dim=1) if s1 is not None else s2_cloudy
        return self._decode(self._encode(x * cfg.scale_by), return_variance)

    def _check_variance(self, return_variance: bool) -> None:
        if return_variance and not self.predicts_variance:
            raise ValueError(
                "this UnCRtainTS model predicts no variance (covmode=None, an L2 model); call "
                "it without return_variance, or use a model trained with the NLL loss"
            )

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) scaled input -> (N, W, H, W) features (the encoder)."""
        x = self.in_conv(x)
        for block in self.in_block:
            x = block(x)
        return x

    def _decode(self, x: torch.Tensor, return_variance: bool) -> torch.Tensor:
        """(B, W, H, W) features -> the outputs of :meth:`forward` (decoder, head, scaling)."""
        cfg = self.config
        for block in self.out_block:
            x = block(x)
        y = self._head(x)
        logits = y[:, :NUM_S2_BANDS]
        mean = cfg.scale_by * torch.sigmoid(logits) if cfg.mean_sigmoid else logits
        mean = mean / cfg.scale_by
        if not return_variance:
            return mean
        raw = y[:, NUM_S2_BANDS:]
        if cfg.var_nonlinearity == "softplus":
            var = F.softplus(raw, beta=1.0, threshold=20.0)
        else:
            var = F.elu(raw) + 1.0
        var = (var + cfg.variance_eps) / (cfg.scale_by**2)
        if var.shape[1] == 1:
            var = var.expand(-1, NUM_S2_BANDS, -1, -1)
        return torch.cat([mean, var], dim=1)


@register_model("uncrtaints")
def uncrtaints(**kwargs: object) -> UnCRtainTS:
    """UnCRtainTS with SAR input (the published mono-temporal configuration by default)."""
    return UnCRtainTS(**kwargs)  # type: ignore[arg-type]


@register_model("uncrtaints-nosar")
def uncrtaints_nosar(**kwargs: object) -> UnCRtainTS:
    """UnCRtainTS on the 13 optical bands only."""
    if kwargs.pop("include_sar", False):
        raise ValueError(
            "'uncrtaints-nosar' has no SAR input; use 'uncrtaints' for include_sar=True"
        )
    return UnCRtainTS(include_sar=False, **kwargs)  # type: ignore[arg-type]
