"""A temporal network (multi-temporal UnCRtainTS) filling a composite of a whole scene.

``cloudfree composite --checkpoint`` with a temporal model: where some date sees a pixel clear,
the composite is the median of its clear observations (as :mod:`cloudfree.methods.temporal`);
where no date does, the network's prediction from the dates around the target. Each scene
window is cut into the model's native tiles (its training size, a quarter-tile overlap, the
blend of :mod:`cloudfree.tiles`), every tile given the same dates: the ``input_t`` dates nearest
in time to the target date (the earlier of two equally near; all of them when there are fewer),
chosen once for the scene so that no seam appears between windows. Upstream samples its inputs
around the target date in the same way; which dates a user gives decides what the model sees.

Values: S2 DN to the model's scaling (reflectance: DN / 10000, clipped), S1 dB likewise, NaN
(no S1) as 0 (upstream's ``nan_to_num``); absolute time as days since Sentinel-1A's launch,
the S1 date taken as its S2 date's (a series folder pairs them by date).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

import numpy as np
import torch

from cloudfree.bands import S2_DN_PER_REFLECTANCE
from cloudfree.methods.temporal import FILLED, FROM_LEAST_CLOUDY, series_statistic

#: Smallest side a temporal model's tile may have (UnCRtainTS's 32 x 32 attention grid).
MIN_TILE: Final[int] = 32


def nearest_dates(days: list[int], n: int) -> list[int]:
    """Indices of the ``n`` days nearest to 0 (the target), the earlier of equals, in time
    order. ``days``: each input's days from the target date."""
    order = sorted(range(len(days)), key=lambda i: (abs(days[i]), days[i]))
    return sorted(order[:n], key=lambda i: days[i])


class TemporalModelFill:
    """The median of the clear observations, and a temporal network where no date is clear.

    Args:
        method: a :class:`~cloudfree.methods.model.ModelMethod` of a temporal model (loaded
            with ``series=True``).
        days: each input date's days from the target date.
        target: the target date (absolute time of the inputs: ``target + days``).
        variance: also give the model's predicted standard deviation (a model that
            ``predicts_variance``).

    ``combine(dn, masks, days, s1)`` is that of :class:`~cloudfree.methods.temporal.
    TemporalMethod` with ``s1`` (T, 2, H, W) dB, every date's S1 (a model with SAR); with
    ``variance`` it returns a third array, (13, H, W) float32 standard deviation in
    reflectance where the network filled, NaN elsewhere.
    """

    temporal = True

    def __init__(self, method: Any, days: list[int], target: date, variance: bool = False) -> None:
        from cloudfree.data.timeseries.names import days_since_s1_launch

        self.method = method
        self.variance = variance
        if variance and not method.predicts_variance:
            raise ValueError(f"{method.name} predicts no variance: an uncertainty map needs a "
                             "model trained with the Gaussian NLL (e.g. uncrtaints-mt-nll)")  # fmt: skip
        self.include_sar = bool(method.include_sar)
        model = method.model
        self.tile = int(getattr(model, "native_tile", 256))
        input_t = int(getattr(getattr(model, "config", None), "input_t", len(days)))
        self.chosen = nearest_dates(days, input_t)
        t0 = days_since_s1_launch(target)
        self.abs_days = torch.tensor([[t0 + days[i] for i in self.chosen]], dtype=torch.int64)
        self.rel_days = torch.tensor([[days[i] for i in self.chosen]], dtype=torch.int64)

    def combine(
        self, dn: np.ndarray, masks: np.ndarray, days: np.ndarray, s1: np.ndarray | None = None
    ) -> tuple[np.ndarray, ...]:
        """``dn`` (T, 13, H, W), ``masks`` (T, H, W) 0 clear, ``days`` (T,), ``s1``
        (T, 2, H, W) dB -> ``(image (13, H, W) DN float32, made (H, W) int16)``, and the
        standard deviation with ``variance`` (class docstring)."""
        img, made = series_statistic(dn, masks, days, "median")
        holes = made == FROM_LEAST_CLOUDY
        std = np.full(img.shape, np.nan, np.float32) if self.variance else None
        if holes.any():
            pick = self.chosen
            pred, var = self.predict_dn(dn[pick], None if s1 is None else s1[pick], holes,
                                        variance=True)  # fmt: skip
            img[:, holes] = pred[:, holes]
            made = np.where(holes, FILLED, made).astype(np.int16)
            if std is not None and var is not None:
                std[:, holes] = np.sqrt(var[:, holes]) / S2_DN_PER_REFLECTANCE
        return (img, made) if std is None else (img, made, std)

    def predict_dn(
        self, dn: np.ndarray, s1: np.ndarray | None, where: np.ndarray | None = None,
        variance: bool = False,
    ) -> Any:  # fmt: skip
        """The network's image of a region from its chosen dates, in DN: (T', 13, H, W) DN and
        (T', 2, H, W) dB -> (13, H, W) float32, tile by tile and blended. With ``where`` (H, W)
        bool, only the tiles holding one of its pixels run: exact there, NaN where no tile
        ran. With ``variance``: ``(image, variance in DN squared or None)``, the variance
        blended as the means (a model that predicts none: None)."""
        from cloudfree.bands import get_scaling
        from cloudfree.data.preprocess import normalize_s1, normalize_s2
        from cloudfree.tiles import blend_weights, plan_tiles

        scaling = get_scaling(self.method.scaling)
        _, _, h, w = dn.shape
        if min(h, w) < MIN_TILE:
            raise ValueError(
                f"a temporal model needs regions of at least {MIN_TILE} x {MIN_TILE} px, got "
                f"{h} x {w}: use a larger scene or --fill"
            )
        s2n = np.nan_to_num(normalize_s2(dn, scaling))
        s1n = None if s1 is None else np.nan_to_num(normalize_s1(s1.swapaxes(0, 1), scaling))
        tile_h, tile_w = min(self.tile, h), min(self.tile, w)
        overlap = min(self.tile // 4, tile_h - 1, tile_w - 1)
        weights = blend_weights((tile_h, tile_w), overlap)
        acc = np.zeros((13, h, w), np.float32)
        with_var = variance and self.variance
        vacc = np.zeros((13, h, w), np.float32) if with_var else None
        wsum = np.zeros((h, w), np.float32)
        for r, c in plan_tiles(h, w, (tile_h, tile_w), overlap):
            if where is not None and not where[r : r + tile_h, c : c + tile_w].any():
                continue  # every pixel it would blend into lies in tiles that do run
            win = np.s_[..., r : r + tile_h, c : c + tile_w]
            batch = {"s2_series": torch.from_numpy(s2n[win][None].copy()),
                     "dates": self.rel_days, "s2_days": self.abs_days, "s1_days": self.abs_days}  # fmt: skip
            if s1n is not None:
                batch["s1_series"] = torch.from_numpy(s1n.swapaxes(0, 1)[win][None].copy())
            if vacc is not None:
                mean, var = self.method.predict_variance(batch)
                pred = mean[0].numpy()
                vacc[:, r : r + tile_h, c : c + tile_w] += var[0].numpy() * weights
            else:
                pred = self.method.predict(batch)[0].numpy()
            acc[:, r : r + tile_h, c : c + tile_w] += pred * weights
            wsum[r : r + tile_h, c : c + tile_w] += weights
        scale = np.float32(scaling.s2_scale)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = acc / wsum * scale
            var_dn = None if vacc is None else vacc / wsum * scale**2
        out[:, wsum == 0] = np.nan
        if not variance:
            return out
        if var_dn is not None:
            var_dn[:, wsum == 0] = np.nan
        return out, var_dn
