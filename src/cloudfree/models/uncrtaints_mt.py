"""UnCRtainTS, multi-temporal: the network of :mod:`cloudfree.models.uncrtaints` run on several
dates of one place, its features combined over time by a lightweight temporal attention.

Facts from the upstream code (``PatrickTUM/UnCRtainTS`` @5e1f1b5: ``model/src/backbones/
uncrtaints.py`` ``UNCRTAINTS`` with ``is_mono=False``, ``ltae.py`` ``LTAE2dtiny``,
``positional_encoding.py``; ``train_reconstruct.py`` ``prepare_data_multi``; MIT); this is our
own code, laid out so that the upstream state dict maps onto it one tensor to one tensor::

    x_t  = scale_by * concat([S1_t (2), S2_t (13)])      # each date t, SAR first
    f_t  = MBConv...(relu(groupnorm(conv1x1(x_t))))      # the encoder, shared over dates
    pad  = dates whose whole input equals pad_value (0)  # upstream's temporal padding
    a    = L-TAE(maxpool_32x32(f), days)                 # (heads, B, T, 32, 32), softmax over T
    f    = sum_t upsample(a)_t * f_t, per channel group  # "att_group": head h weighs group h
    y    = MBConv...(f) -> conv1x1 -> mean (and variances) as the mono-temporal model

The L-TAE (Garnot & Landrieu 2020, "Lightweight Temporal Self-Attention", its "tiny" form that
returns the attention only): per pixel of the 32 x 32 max-pooled features, a group norm (one
group per head) over channels and dates, a 1x1 projection to ``d_model``, plus a sinusoidal
encoding of each date's day (period 1000 days, ``d_model / n_head`` frequencies repeated for
every head), then keys ``fc1_k`` against one learnt query per head (``Q``), scaled by
``sqrt(d_k)``, padded dates filled with -1000 before the softmax over dates.

**Time is absolute**: each date's position is its day count from Sentinel-1A's launch
(2014-04-03, upstream's ``S1_LAUNCH``), the mean of the S1 and S2 days with SAR
(``prepare_data_multi``). The batch gives them as ``s2_days`` and ``s1_days``
(:mod:`cloudfree.models.contract`); the target-relative ``dates`` every temporal model receives
are not read.

Upstream's ``use_v`` (the full L-TAE with values and an MLP) is not implemented: the README's
training command does not set it. Inputs must be at least 32 x 32 px (the attention grid).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import torch
from torch import nn
from torch.nn import functional as F

from cloudfree.bands import NUM_S1_BANDS, NUM_S2_BANDS
from cloudfree.models.contract import ModelContract
from cloudfree.models.registry import register_model
from cloudfree.models.uncrtaints import UnCRtainTS, UnCRtainTSConfig

#: Temporal aggregations (``--agg_mode``): attention per channel group, attention averaged
#: over heads, plain mean of the non-padded dates.
AGG_MODES: Final[tuple[str, ...]] = ("att_group", "att_mean", "mean")
#: Side of the grid the attention is computed on (upstream ``att_down = 32``).
ATTENTION_GRID: Final[int] = 32
#: Score of a padded date before the softmax (upstream ``masked_fill(..., -1e3)``).
PAD_SCORE: Final[float] = -1e3
#: Dropout on the upsampled attention in training (upstream ``Compact_Temporal_Aggregator``).
ATTENTION_DROPOUT: Final[float] = 0.1


@dataclass(frozen=True)
class UnCRtainTSMTConfig(UnCRtainTSConfig):
    """:class:`UnCRtainTSConfig` and the temporal encoder's flags; defaults are upstream's
    (``parse_args.py``) and the README's training command.

    Attributes:
        input_t: dates the model was trained on (``--input_t``, 3); the network itself takes
            any number, ``composite`` and ``evaluate`` feed it this many.
        n_head: attention heads (``--n_head``, 16); divides the width and ``d_model``.
        d_model: L-TAE feature width (``--d_model``, 256).
        d_k: key and query width (``--d_k``, 4).
        agg_mode: one of :data:`AGG_MODES` (``--agg_mode``, "att_group").
        positional_encoding: add the date encoding (on by default upstream: its
            ``--positional_encoding`` flag switches it *off*).
        period: period of the date encoding, days (upstream ``T=1000``).
        pad_value: an input date equal to this everywhere is padding (``--pad_value``, 0).
    """

    input_t: int = 3
    n_head: int = 16
    d_model: int = 256
    d_k: int = 4
    agg_mode: str = "att_group"
    positional_encoding: bool = True
    period: int = 1000
    pad_value: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.input_t < 1:
            raise ValueError(f"input_t must be >= 1, got {self.input_t}")
        for key in ("n_head", "d_model", "d_k", "period"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)!r}")
        if self.width % self.n_head or self.d_model % self.n_head:
            raise ValueError(
                f"n_head ({self.n_head}) must divide the width ({self.width}: one channel "
                f"group per head) and d_model ({self.d_model}: the date encoding)"
            )
        if self.agg_mode not in AGG_MODES:
            raise ValueError(f"agg_mode must be one of {AGG_MODES}, got {self.agg_mode!r}")

    @property
    def name(self) -> str:
        """Registry name: ``"uncrtaints-mt"`` or ``"uncrtaints-mt-nosar"``."""
        return "uncrtaints-mt" if self.include_sar else "uncrtaints-mt-nosar"

    def macs(self, height: int, width: int, dates: int | None = None) -> int:
        """Multiply-accumulates of one forward pass on ``dates`` (default ``input_t``) dates of
        ``height x width``: the encoder once per date, the L-TAE on the 32 x 32 grid, the
        weighted sum, the decoder once."""
        t = self.input_t if dates is None else dates
        px = height * width
        one = super().macs(height, width)  # encoder + decoder + head of one date
        w, h = self.width, 2 * self.width
        block = px * (w * h + 9 * h + h * w) + 2 * h * int(w * 0.25)
        encoder = px * self.in_channels * w + block * len(self.encoder_widths)
        grid = ATTENTION_GRID**2 * t
        ltae = grid * (w * self.d_model + self.d_model * self.n_head * self.d_k)
        return one + (t - 1) * encoder + ltae + t * px * w


class PositionalEncoder(nn.Module):
    """Sinusoidal encoding of a day count: ``d`` frequencies ``period ** (2 * (i // 2) / d)``,
    sine on even and cosine on odd channels, repeated ``repeat`` times (one per head).

    Shapes: (B, T) days -> (B, T, d * repeat). Nothing learnt; the frequencies are recomputed
    on the input's device (no buffer: the published state dicts have none).
    """

    def __init__(self, d: int, period: int, repeat: int) -> None:
        super().__init__()
        self.d, self.period, self.repeat = d, period, repeat

    def forward(self, days: torch.Tensor) -> torch.Tensor:
        i = torch.arange(self.d, device=days.device).float()
        denom = torch.pow(self.period, 2 * (i // 2) / self.d)
        table = days.float()[:, :, None] / denom
        table[:, :, 0::2] = torch.sin(table[:, :, 0::2])
        table[:, :, 1::2] = torch.cos(table[:, :, 1::2])
        return table.repeat(1, 1, self.repeat)


class _Heads(nn.Module):
    """One learnt query per head against keys of the dates: softmax attention over dates.

    Module names as upstream's ``MultiHeadAttentionSmall`` (``Q``, ``fc1_k``).
    """

    def __init__(self, n_head: int, d_k: int, d_in: int) -> None:
        super().__init__()
        self.n_head, self.d_k = n_head, d_k
        self.Q = nn.Parameter(torch.zeros(n_head, d_k))
        self.fc1_k = nn.Linear(d_in, n_head * d_k)

    def forward(self, v: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        """(N, T, d_in) features, (N, T) padding -> (n_head, N, T) attention."""
        n, t, _ = v.shape
        k = self.fc1_k(v).view(n, t, self.n_head, self.d_k)
        scores = torch.einsum("hk,nthk->hnt", self.Q, k) / self.d_k**0.5
        if pad is not None:
            scores = scores.masked_fill(pad[None], PAD_SCORE)
        return scores.softmax(dim=-1)


class LTAE2dTiny(nn.Module):
    """The L-TAE's attention over dates at every pixel of a small grid (module docstring).

    Shapes: (B, T, C, h, w) features, (B, T) days, (B, T) padding -> (n_head, B, T, h, w).
    Module names as upstream's ``LTAE2dtiny`` (``in_norm``, ``inconv``, ``attention_heads``).
    """

    def __init__(
        self, in_channels: int, n_head: int, d_k: int, d_model: int, period: int,
        positional_encoding: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.n_head = n_head
        self.in_norm = nn.GroupNorm(n_head, in_channels)
        self.inconv = nn.Conv1d(in_channels, d_model, 1)
        self.positional_encoder = (
            PositionalEncoder(d_model // n_head, period, n_head) if positional_encoding else None
        )
        self.attention_heads = _Heads(n_head, d_k, d_model)

    def forward(
        self, x: torch.Tensor, days: torch.Tensor | None, pad: torch.Tensor | None
    ) -> torch.Tensor:
        b, t, c, h, w = x.shape
        v = x.permute(0, 3, 4, 2, 1).reshape(b * h * w, c, t)  # per pixel: channels x dates
        v = self.inconv(self.in_norm(v)).transpose(1, 2)  # (N, T, d_model)
        if self.positional_encoder is not None:
            if days is None:
                raise ValueError("this UnCRtainTS encodes the dates: pass their days")
            pe = self.positional_encoder(days)  # (B, T, d_model), the same at every pixel
            v = v + pe[:, None, None].expand(b, h, w, t, -1).reshape(b * h * w, t, -1)
        pix_pad = None if pad is None else pad[:, None, None].expand(b, h, w, t).reshape(-1, t)
        attn = self.attention_heads(v, pix_pad)  # (heads, N, T)
        return attn.view(self.n_head, b, h, w, t).permute(0, 1, 4, 2, 3)


class TemporalAggregator(nn.Module):
    """Features of the dates -> one map, weighted by the attention (upstream's
    ``Compact_Temporal_Aggregator``: bilinear upsampling of the attention to the features,
    dropout in training, padded dates weighted 0).

    Shapes: (B, T, C, H, W) features, (B, T) padding, (heads, B, T, h, w) attention ->
    (B, C, H, W).
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.attn_dropout = nn.Dropout(ATTENTION_DROPOUT)

    def forward(
        self, x: torch.Tensor, pad: torch.Tensor, attn: torch.Tensor | None
    ) -> torch.Tensor:
        b, t, c, hh, ww = x.shape
        padded = bool(pad.any())
        keep = (~pad).float()
        if self.mode == "mean":
            if padded:
                return (x * keep[:, :, None, None, None]).sum(1) / keep.sum(1)[:, None, None, None]
            return x.mean(dim=1)
        assert attn is not None
        heads, _, _, h, w = attn.shape
        if self.mode == "att_mean":
            a = F.interpolate(attn.mean(0), size=(hh, ww), mode="bilinear", align_corners=False)
            a = self.attn_dropout(a)
            if padded:
                a = a * keep[:, :, None, None]
            return (x * a[:, :, None]).sum(dim=1)
        a = attn.reshape(heads * b, t, h, w)
        if hh > h:
            a = self.attn_dropout(
                F.interpolate(a, size=(hh, ww), mode="bilinear", align_corners=False)
            )
        else:  # a map of the grid's size (upstream also pools to divisors of 32)
            a = F.avg_pool2d(a, kernel_size=h // hh)
        a = a.view(heads, b, t, hh, ww)
        if padded:
            a = a * keep[None, :, :, None, None]
        groups = x.view(b, t, heads, c // heads, hh, ww).permute(2, 0, 1, 3, 4, 5)
        out = (a[:, :, :, None] * groups).sum(dim=2)  # (heads, B, C / heads, H, W)
        return out.permute(1, 0, 2, 3, 4).reshape(b, c, hh, ww)


class UnCRtainTSMT(UnCRtainTS):
    """UnCRtainTS on a series: T cloudy dates of S2 (+ S1) -> one mean image (and variances).

    Args: the fields of :class:`UnCRtainTSMTConfig` (the mono-temporal ones, then ``input_t``,
    ``n_head``, ``d_model``, ``d_k``, ``agg_mode``, ``positional_encoding``, ``period``,
    ``pad_value``).

    ``forward(s2_series, s1_series, s2_days=..., s1_days=...)`` returns (B, 13, H, W) mean
    reflectance; with ``return_variance=True`` (B, 26, H, W), as :class:`UnCRtainTS`.
    """

    def __init__(
        self,
        *,
        input_t: int = 3,
        n_head: int = 16,
        d_model: int = 256,
        d_k: int = 4,
        agg_mode: str = "att_group",
        positional_encoding: bool = True,
        period: int = 1000,
        pad_value: float = 0.0,
        **base: object,
    ) -> None:
        temporal = {"input_t": int(input_t), "n_head": int(n_head), "d_model": int(d_model),
                    "d_k": int(d_k), "agg_mode": agg_mode,
                    "positional_encoding": bool(positional_encoding), "period": int(period),
                    "pad_value": float(pad_value)}  # fmt: skip
        super().__init__(**base)  # type: ignore[arg-type]
        self.config: UnCRtainTSMTConfig = UnCRtainTSMTConfig(
            **self.config.to_dict(),  # type: ignore[arg-type]
            **temporal,  # type: ignore[arg-type]
        )
        cfg = self.config
        self.temporal_encoder = LTAE2dTiny(
            cfg.width, cfg.n_head, cfg.d_k, cfg.d_model, cfg.period, cfg.positional_encoding
        )
        self.temporal_aggregator = TemporalAggregator(cfg.agg_mode)
        self.reset_parameters()

    @property
    def contract(self) -> ModelContract:
        """A series of S2 (and S1) with the days of each date since Sentinel-1A's launch."""
        days = ("s2_days", "s1_days") if self.include_sar else ("s2_days",)
        return replace(super().contract, extra_inputs=days, temporal=True)

    def reset_parameters(self) -> None:
        """Upstream ``weight_init`` (as :class:`UnCRtainTS`, and N(0, 1) Conv1d weights and
        biases) and the L-TAE's query ``Q`` ~ N(0, 2 / d_k)."""
        super().reset_parameters()
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.normal_(m.bias)
            elif isinstance(m, _Heads):
                nn.init.normal_(m.Q, std=(2.0 / m.d_k) ** 0.5)

    def forward(  # type: ignore[override]
        self,
        s2_series: torch.Tensor,
        s1_series: torch.Tensor | None = None,
        dates: torch.Tensor | None = None,
        s2_days: torch.Tensor | None = None,
        s1_days: torch.Tensor | None = None,
        return_variance: bool = False,
    ) -> torch.Tensor:
        """Predict the cloud-free image of the place from its dates.

        Args:
            s2_series: (B, T, 13, H, W) S2 reflectance (DN / 10000 in [0, 1]); a date that is
                0 everywhere (S2 and S1) is padding, left out of the attention.
            s1_series: (B, T, 2, H, W) S1 ([-25, 0] dB to [0, 1]); required iff
                ``include_sar``.
            dates: (B, T) days from the target date; not read (module docstring).
            s2_days, s1_days: (B, T) days of each S2 / S1 acquisition since 2014-04-03;
                ``s1_days`` only with SAR (the position is the mean of both, as upstream).
            return_variance: also return the variances (a model with ``covmode``).

        Returns:
            (B, 13, H, W) mean reflectance, or (B, 26, H, W) means then variances.
        """
        del dates  # the contract's target-relative days; UnCRtainTS encodes absolute ones
        cfg = self.config
        self._check(s2_series, s1_series, s2_days, s1_days)
        self._check_variance(return_variance)
        x = torch.cat([s1_series, s2_series], dim=2) if s1_series is not None else s2_series
        x = x * cfg.scale_by
        b, t = x.shape[:2]
        pad = (x == cfg.pad_value).flatten(2).all(dim=-1)  # (B, T)
        feats = self._encode(x.flatten(0, 1))  # every date through the same encoder
        attn = None
        if cfg.agg_mode != "mean":
            pooled = F.adaptive_max_pool2d(feats, ATTENTION_GRID)
            days = None
            if cfg.positional_encoding:
                assert s2_days is not None
                days = s2_days.float()
                if s1_days is not None:  # upstream: mean of the S1 and S2 days
                    days = torch.stack((s1_days.float(), days)).mean(dim=0)
            attn = self.temporal_encoder(
                pooled.view(b, t, *pooled.shape[1:]), days, pad if pad.any() else None
            )
        out = self.temporal_aggregator(feats.view(b, t, *feats.shape[1:]), pad, attn)
        return self._decode(out, return_variance)

    def _check(
        self,
        s2: torch.Tensor,
        s1: torch.Tensor | None,
        s2_days: torch.Tensor | None,
        s1_days: torch.Tensor | None,
    ) -> None:
        if s2.ndim != 5 or s2.shape[2] != NUM_S2_BANDS:
            raise ValueError(
                f"s2_series must be (B, T, {NUM_S2_BANDS}, H, W) S2 reflectance, got shape "
                f"{tuple(s2.shape)}"
            )
        b, t, _, h, w = s2.shape
        if min(h, w) < ATTENTION_GRID:
            raise ValueError(
                f"UnCRtainTS attends over dates on a {ATTENTION_GRID} x {ATTENTION_GRID} grid: "
                f"the input must be at least that large, got {h} x {w}"
            )
        if self.include_sar:
            if s1 is None or s1.shape != (b, t, NUM_S1_BANDS, h, w):
                got = None if s1 is None else tuple(s1.shape)
                raise ValueError(
                    f"this UnCRtainTS was built with SAR and needs s1_series ({b}, {t}, "
                    f"{NUM_S1_BANDS}, {h}, {w}), got {got}; use 'uncrtaints-mt-nosar' without SAR"
                )
        elif s1 is not None:
            raise ValueError(
                "this UnCRtainTS was built without SAR and takes no s1_series; use "
                "'uncrtaints-mt' for SAR"
            )
        if self.config.positional_encoding and self.config.agg_mode != "mean":
            need = {"s2_days": s2_days} | ({"s1_days": s1_days} if self.include_sar else {})
            for key, days in need.items():
                if days is None or tuple(days.shape) != (b, t):
                    got = None if days is None else tuple(days.shape)
                    raise ValueError(
                        f"{key} must be ({b}, {t}): the days of each date since Sentinel-1A's "
                        f"launch (2014-04-03), which UnCRtainTS encodes; got {got}"
                    )


@register_model("uncrtaints-mt")
def uncrtaints_mt(**kwargs: object) -> UnCRtainTSMT:
    """Multi-temporal UnCRtainTS with SAR (the README's training configuration by default)."""
    return UnCRtainTSMT(**kwargs)  # type: ignore[arg-type]


@register_model("uncrtaints-mt-nosar")
def uncrtaints_mt_nosar(**kwargs: object) -> UnCRtainTSMT:
    """Multi-temporal UnCRtainTS on the 13 optical bands only."""
    if kwargs.pop("include_sar", False):
        raise ValueError(
            "'uncrtaints-mt-nosar' has no SAR input; use 'uncrtaints-mt' for include_sar=True"
        )
    return UnCRtainTSMT(include_sar=False, **kwargs)  # type: ignore[arg-type]
