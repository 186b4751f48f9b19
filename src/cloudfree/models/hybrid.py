"""The hybrid: DSen2-CR fed with the inpainted image, whose long skip starts from it (issue 11).

The replication study this project grew from proposes: (1) detect the cloud/shadow mask, (2)
inpaint the masked area, (3) give the inpainted image with S1 to DSen2-CR trained with CARL.
This module is step 3, the network; steps 1-2 happen outside it, because inpainting is not a
differentiable layer (:mod:`cloudfree.inpaint`; the chain is
:class:`cloudfree.methods.hybrid.HybridMethod`, and training reads the inpainted image
cached in the packed shards)::

    x = concat([inpainted S2 (13), cloudy S2 (13, optional), S1 (2, optional), mask (1, optional)])
    x = relu(conv3x3(x, F))                                    # head
    repeat B times: x = x + 0.1 * conv3x3(relu(conv3x3(x)))   # DSen2-CR's residual blocks
    out = conv3x3(x, 13) + skip                                # skip: the inpainted image

Decisions:

- **The long skip adds the inpainted image** (``skip="inpainted"``), not the cloudy input as
  DSen2-CR does (``skip="cloudy"``, kept to measure the alternative): the network begins
  where the inpainting ends and only learns the correction.
- **The tail starts at zero**: at initialisation the hybrid returns its skip exactly (the
  inpainted image), so with little data it starts from the inpainting instead of from a random
  perturbation of it (as the last layer of residual branches in Fixup / ReZero). Every other
  convolution is Keras ``he_uniform`` with zero biases, as DSen2-CR.
- **The binary cloud/shadow mask is an input channel** (``mask_channel``): the network knows
  which pixels were inpainted (an inpainted forest and a real one look alike).
- **The cloudy image is an input too** (``cloudy_input``): inpainting throws away what a
  thin cloud or a shadow lets through; the network can take it back where it helps.
- ``inpaint`` names the :mod:`cloudfree.inpaint` method that makes its input; it is saved
  with the weights so that evaluation and prediction inpaint as training did.

The model is pure: normalised tensors in (S2 DN / 2000, S1 to [0, 2], spec section 2), no
inpainting, tiling or device handling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS
from cloudfree.models.contract import ModelContract
from cloudfree.models.dsen2cr import ResidualBlock, _conv
from cloudfree.models.inputs import check_optical_sar_inputs
from cloudfree.models.registry import register_model

#: Where the long skip starts: the inpainted image (the hybrid) or the cloudy input (DSen2-CR).
SKIPS: tuple[str, ...] = ("inpainted", "cloudy")


@dataclass(frozen=True)
class HybridConfig:
    """Constructor arguments of :class:`HybridDSen2CR`.

    Attributes:
        include_sar: S1 is an input (15+ channels) or not.
        num_layers: residual blocks B (DSen2-CR: 16).
        feature_size: width F (DSen2-CR: 256).
        mask_channel: the binary cloud/shadow mask is an input channel.
        cloudy_input: the cloudy image is an input beside the inpainted one.
        skip: ``"inpainted"`` (the hybrid) or ``"cloudy"`` (DSen2-CR's long skip).
        inpaint: the :mod:`cloudfree.inpaint` method that makes the inpainted input.
    """

    include_sar: bool = True
    num_layers: int = 16
    feature_size: int = 256
    mask_channel: bool = True
    cloudy_input: bool = True
    skip: str = "inpainted"
    inpaint: str = "mask-fill"

    def __post_init__(self) -> None:
        for key in ("include_sar", "mask_channel", "cloudy_input"):
            if not isinstance(getattr(self, key), bool):
                raise TypeError(f"{key} must be a bool, got {getattr(self, key)!r}")
        if not isinstance(self.num_layers, int) or self.num_layers < 0:
            raise ValueError(f"num_layers must be an int >= 0, got {self.num_layers!r}")
        if not isinstance(self.feature_size, int) or self.feature_size < 1:
            raise ValueError(f"feature_size must be an int >= 1, got {self.feature_size!r}")
        if self.skip not in SKIPS:
            raise ValueError(f"skip must be one of {SKIPS}, got {self.skip!r}")
        from cloudfree.inpaint.registry import INPAINT_METHODS

        if self.inpaint not in INPAINT_METHODS:
            raise ValueError(
                f"unknown inpainting method {self.inpaint!r}; expected one of {INPAINT_METHODS}"
            )
        if self.inpaint == "sar-match" and not self.include_sar:
            raise ValueError(
                "inpaint='sar-match' reads S1, which a hybrid without SAR does not have; use "
                "'hybrid' (include_sar=True) or another inpainting method"
            )

    @property
    def in_channels(self) -> int:
        """Channels entering the head (inpainted, cloudy, S1, mask, as configured)."""
        return (
            NUM_S2_BANDS * (2 if self.cloudy_input else 1)
            + (NUM_S1_BANDS if self.include_sar else 0)
            + (1 if self.mask_channel else 0)
        )

    @property
    def name(self) -> str:
        """Registry name: ``"hybrid"`` or ``"hybrid-nosar"``."""
        return "hybrid" if self.include_sar else "hybrid-nosar"

    def to_dict(self) -> dict[str, bool | int | str]:
        """Plain dict of the constructor arguments (JSON-serialisable)."""
        return asdict(self)


# Adapted from cloudfree.models.dsen2cr.DSen2CR (a variant gets its own file, style guide
# rule 18): the same head / residual body / tail, other inputs, another skip, a zero tail.
class HybridDSen2CR(nn.Module):
    """DSen2-CR on the inpainted image (module docstring).

    Args: those of :class:`HybridConfig`.

    Attributes:
        extra_inputs: the batch keys ``forward`` takes besides ``s2_cloudy`` and ``s1``:
            ``("s2_inpainted", "mask")`` (``"mask"`` only with ``mask_channel``).
    """

    def __init__(
        self,
        include_sar: bool = True,
        num_layers: int = 16,
        feature_size: int = 256,
        mask_channel: bool = True,
        cloudy_input: bool = True,
        skip: str = "inpainted",
        inpaint: str = "mask-fill",
    ) -> None:
        super().__init__()
        self.config = HybridConfig(
            include_sar, num_layers, feature_size, mask_channel, cloudy_input, skip, inpaint
        )
        cfg = self.config
        self.head = _conv(cfg.in_channels, cfg.feature_size)
        self.body = nn.Sequential(*(ResidualBlock(cfg.feature_size) for _ in range(num_layers)))
        self.tail = _conv(cfg.feature_size, NUM_S2_BANDS)
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
    def extra_inputs(self) -> tuple[str, ...]:
        """Batch keys passed to ``forward`` as keyword arguments."""
        return ("s2_inpainted", "mask") if self.config.mask_channel else ("s2_inpainted",)

    @property
    def contract(self) -> ModelContract:
        """One date of S2 (and S1) in DSen2-CR's scaling, with the inpainted image (and the
        mask) as extra inputs."""
        return ModelContract(include_sar=self.include_sar, extra_inputs=self.extra_inputs)

    def reset_parameters(self) -> None:
        """Keras ``he_uniform`` weights and zero biases; the tail all zero (starts as its skip)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.zeros_(self.tail.weight)

    def forward(
        self,
        s2_cloudy: torch.Tensor,
        s1: torch.Tensor | None = None,
        *,
        s2_inpainted: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the cloud-free image.

        Args:
            s2_cloudy: (B, 13, H, W) cloudy S2, DN / 2000.
            s1: (B, 2, H, W) S1 in [0, 2]; required iff ``include_sar``.
            s2_inpainted: (B, 13, H, W) the cloudy S2 inpainted (:mod:`cloudfree.inpaint`),
                same scale.
            mask: (B, H, W) cloud/shadow mask (any nonzero value = cloud or shadow), or
                (B, 1, H, W); required iff ``mask_channel``.

        Returns:
            (B, 13, H, W) predicted cloud-free S2, same scale (not clipped).
        """
        cfg = self.config
        check_optical_sar_inputs(s2_cloudy, s1, cfg.include_sar, "hybrid")
        if s2_inpainted.shape != s2_cloudy.shape:
            raise ValueError(
                f"s2_inpainted {tuple(s2_inpainted.shape)} must have the shape of s2_cloudy "
                f"{tuple(s2_cloudy.shape)}"
            )
        parts = [s2_inpainted]
        if cfg.cloudy_input:
            parts.append(s2_cloudy)
        if s1 is not None:
            parts.append(s1)
        if cfg.mask_channel:
            if mask is None:
                raise ValueError(
                    "this hybrid model takes the cloud/shadow mask as an input channel: pass "
                    "mask (B, H, W)"
                )
            m = mask if mask.ndim == 4 else mask[:, None]
            if m.shape[0] != s2_cloudy.shape[0] or m.shape[1:] != (1, *s2_cloudy.shape[2:]):
                raise ValueError(
                    f"mask {tuple(mask.shape)} must be (B, H, W) like s2_cloudy "
                    f"{tuple(s2_cloudy.shape)}"
                )
            parts.append((m != 0).to(s2_cloudy.dtype))
        x = torch.relu(self.head(torch.cat(parts, dim=1)))
        x = self.body(x)
        base = s2_inpainted if cfg.skip == "inpainted" else s2_cloudy
        return self.tail(x) + base


@register_model("hybrid")
def hybrid(**kwargs: int | bool | str) -> HybridDSen2CR:
    """The hybrid with SAR input: inpainted S2 + cloudy S2 + S1 + mask."""
    return HybridDSen2CR(**kwargs)  # type: ignore[arg-type]


@register_model("hybrid-nosar")
def hybrid_nosar(**kwargs: int | bool | str) -> HybridDSen2CR:
    """The hybrid on optical input only: inpainted S2 + cloudy S2 + mask."""
    if kwargs.pop("include_sar", False):
        raise ValueError("'hybrid-nosar' has no SAR input; use 'hybrid' for include_sar=True")
    return HybridDSen2CR(include_sar=False, **kwargs)  # type: ignore[arg-type]
