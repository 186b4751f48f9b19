"""One output window of a scene prediction: read with a halo, tile, predict, blend, write.

:class:`WindowPredictor` holds the state of one :func:`cloudfree.predict.scene.predict_scene`
call (sources, models, tiling, counters) and does steps 1-3 of that module's docstring for one
window; :class:`Runner` runs a method (a model or a baseline) on a batch of tiles.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from cloudfree.bands import get_scaling, s2_index
from cloudfree.data.preprocess import denormalize_s2, normalize_s1, normalize_s2
from cloudfree.data.sentinel.scene import S1Source, S2Source, s1_coverage
from cloudfree.errors import DataError
from cloudfree.masks.computed import SceneMask
from cloudfree.masks.params import CLEAR
from cloudfree.masks.report import class_counts
from cloudfree.methods.base import Method
from cloudfree.predict.options import PredictOptions
from cloudfree.predict.plan import TilePlan
from cloudfree.predict.tiling import (
    axis_positions,
    blend_margin,
    blend_weights,
    coverage_reach,
    coverage_weights,
    fit_tile,
)
from cloudfree.units import nodata_pixels
from cloudfree.windows import Window, grow

log = logging.getLogger(__name__)


@dataclass
class Runner:
    """A method (a model or a baseline) run on batches of tiles."""

    method: Method

    def __call__(
        self,
        s2: np.ndarray,
        s1: np.ndarray | None,
        mask: np.ndarray | None,
        variance: bool = False,
    ) -> np.ndarray:
        """(B, 13, h, w) float32 network values -> prediction, same shape, numpy float32.

        With ``variance``: (B, 26, h, w), the prediction then its variance (network units
        squared); NaN variances from a method that predicts none.
        """
        batch: dict[str, torch.Tensor] = {"s2_cloudy": torch.from_numpy(s2)}
        if s1 is not None:
            batch["s1"] = torch.from_numpy(s1)
        if mask is not None:
            batch["mask"] = torch.from_numpy(mask)
        if not variance:
            return self._finite(self.method.predict(batch).numpy())
        if not self.method.predicts_variance:
            pred = self._finite(self.method.predict(batch).numpy())
            return np.concatenate([pred, np.full_like(pred, np.nan)], axis=1)
        mean, var = self.method.predict_variance(batch)
        return np.concatenate([self._finite(mean.numpy()), var.numpy()], axis=1)

    def _finite(self, pred: np.ndarray) -> np.ndarray:
        """``pred``, or an error if the method predicted NaN or inf (its inputs are finite):
        written out, such values would be 0 DN, a black image with rc 0."""
        if not np.isfinite(pred).all():
            n = int((~np.isfinite(pred)).sum())
            raise DataError(
                getattr(self.method, "path", None) or self.method.name,
                f"{self.method.name} predicted NaN or inf ({n} of {pred.size} values of a batch "
                "of finite inputs): nothing is written",
                "a model that predicts finite values; with --precision bf16 try fp32, else "
                "check the weights (a training that diverged?)",
            )
        return pred


def load_runner(
    spec: str | Method,
    device: str,
    precision: str,
    sd_weights: str | None = None,
    backend: str = "auto",
) -> Runner:
    """A :class:`Runner` of ``spec`` (:func:`~cloudfree.methods.load.load_method`), or of a
    method given as such."""
    from cloudfree.methods.load import load_method
    from cloudfree.methods.model import ModelMethod
    from cloudfree.models.runtime import cpu_has_native_bf16, resolve_precision

    if isinstance(spec, Method):
        return Runner(spec)
    method = load_method(
        spec, device=device, precision=precision, sd_weights=sd_weights, backend=backend
    )
    on_cpu = isinstance(method, ModelMethod) and method.device.type == "cpu"
    if on_cpu and resolve_precision(precision) == "bf16" and not cpu_has_native_bf16():
        log.warning("bf16 on a CPU without native bf16 support is much slower than fp32")
    return Runner(method)


@dataclass
class SarRegion:
    """The S1 side of a region (window + halo) for a SAR model.

    Attributes:
        s1n: (2, L, M) network-scale S1 (0 where S1 is missing).
        cov: (L, M) bool, True where S1 has data (:func:`s1_coverage`).
        weight: (L, M) float32 in [0, 1], the share of the SAR model's prediction in each
            pixel (:func:`~cloudfree.predict.tiling.coverage_weights`); the no-SAR model's
            prediction takes the rest (``outside_sar="nosar"``), or the input keeps the
            pixels without S1 (``"input"``: the weight is the coverage itself).
    """

    s1n: np.ndarray
    cov: np.ndarray
    weight: np.ndarray

    def crop(self, rows: slice, cols: slice) -> SarRegion:
        """The same arrays on a sub-region."""
        return SarRegion(self.s1n[:, rows, cols], self.cov[rows, cols], self.weight[rows, cols])

    def tiles(self, pos: list[tuple[int, int]], size: tuple[int, int]) -> SarRegion:
        """The arrays of tiles at ``pos``, stacked: (B, 2, th, tw), (B, th, tw), (B, th, tw)."""
        tr, tc = size
        cut = [(slice(r, r + tr), slice(c, c + tc)) for r, c in pos]
        return SarRegion(
            np.stack([self.s1n[:, a, b] for a, b in cut]),
            np.stack([self.cov[a, b] for a, b in cut]),
            np.stack([self.weight[a, b] for a, b in cut]),
        )


def _mix(sar: np.ndarray, nosar: np.ndarray, w: np.ndarray, nb: int) -> np.ndarray:
    """``w * sar + (1 - w) * nosar`` per pixel, exactly ``sar`` where ``w`` is 1 and ``nosar``
    where it is 0.

    With variances (channels ``nb:``, after the ``nb`` means), those are mixed alike where both
    models predict one; where the no-SAR model predicts none (NaN) the SAR model's variance
    stands for the pixels it contributes to (``w > 0``), and the rest stay NaN.
    """
    out = np.where(w >= 1, sar, np.where(w <= 0, nosar, w * sar + (1 - w) * nosar))
    if sar.shape[1] > nb:
        v_sar, v_nosar = sar[:, nb:], nosar[:, nb:]
        out[:, nb:] = np.where(np.isnan(v_nosar), np.where(w > 0, v_sar, np.nan), out[:, nb:])
    return out


class WindowPredictor:
    """State of one ``predict_scene`` call (see the module docstring for the steps)."""

    def __init__(
        self,
        cloudy: S2Source,
        s1: S1Source | None,
        main: Runner,
        opts: PredictOptions,
        plan: TilePlan,
        mask_src: SceneMask | None = None,
        uncertainty: bool = False,
    ) -> None:
        self.cloudy, self.s1, self.main = cloudy, s1, main
        #: Where each window's mask comes from (a file or the computed mask); None: no mask.
        self.opts, self.mask_src = opts, mask_src
        #: also blend the variance, and return the standard deviation (``predict_scene``'s
        #: ``uncertainty_out``)
        self.uncertainty = uncertainty
        self.tile, self.overlap, self.batch_size = plan.tile, plan.overlap, plan.batch
        self._nosar: Runner | None = None
        self.scaling = get_scaling(main.method.scaling)
        # Context around a window: its edge pixels must lie inside the trusted part of their
        # tile (>= blend_margin from the edge, cloudfree.predict.tiling), one more for safety.
        # Was overlap // 2: twice the margin, 8 % more pixels on a 1024-px window for nothing.
        self.halo = blend_margin(self.overlap) + 1 if self.overlap else 0
        #: S1 coverage read beyond the halo: as far as the coverage edge's ramp reaches.
        self.edge_reach = coverage_reach(self.overlap)
        self.counts = {"tiles": 0, "tile_pixels": 0, "sar_tiles": 0, "nosar_tiles": 0}
        self.covered = 0
        #: Mask pixels by class (clear, cloud, shadow) among the pixels with data, then nodata.
        self.mask_counts = np.zeros(4, dtype=np.int64)
        #: Pixels with data (not nodata) so far, and those whose values were changed.
        self.valid = 0
        self.changed = 0
        #: Pixels with data by what made their values: the main model, the no-SAR model (no
        #: S1 there), the input (kept: --keep-clear, --outside-sar input, an inpainting).
        self.made_by = {"model": 0, "nosar": 0, "input": 0}
        # The SAR model is used only with S1; without S1 a SAR checkpoint falls back to no-SAR.
        self.sar = main.method.include_sar and s1 is not None
        # A model that is not local (UnCRtainTS: group norm and squeeze-excitation over the
        # whole tile) sees only real pixels: no reflected halo beyond the scene, so a scene of
        # one tile is predicted exactly as the model computes that image (evaluate's patches).
        self.local = getattr(getattr(main.method, "model", None), "native_tile", None) is None

    @property
    def nosar_runner(self) -> Runner | None:
        """The model that predicted the pixels without S1, if one was needed."""
        return self._nosar

    def nosar(self) -> Runner:
        """The model for pixels without S1 (loaded on first use)."""
        if self._nosar is None:
            if not self.main.method.include_sar:
                self._nosar = self.main
            else:
                from cloudfree.predict.bundled import choose_nosar

                opts = self.opts
                why = "no S1 was given" if self.s1 is None else "S1 misses part of the scene"
                spec = choose_nosar(self.main.method.name, opts.checkpoint_nosar,
                                    opts.outside_sar, why)  # fmt: skip
                self._nosar = load_runner(
                    spec, opts.device, opts.precision, opts.sd_weights, opts.backend
                )
                if self._nosar.method.include_sar:
                    raise DataError(
                        spec, "is a model that takes S1", "a no-SAR checkpoint for checkpoint_nosar"
                    )
        return self._nosar

    def _s1_tiles(self, s1n: np.ndarray, cov: np.ndarray) -> np.ndarray:
        # Where a tile has no S1, the SAR model is given the mean of the tile's covered S1 (a
        # neutral value, never 0, which is a real backscatter); those pixels take the no-SAR
        # prediction or the input afterwards, only their neighbours see the filled values.
        out = s1n.copy()
        for i in range(out.shape[0]):
            c = cov[i]
            if c.all():
                continue
            for b in range(out.shape[1]):
                out[i, b][~c] = out[i, b][c].mean()
        return out

    def _predict_sar_batch(
        self,
        x: np.ndarray,
        m: np.ndarray | None,
        pos: list[tuple[int, int]],
        sar: SarRegion,
        size: tuple[int, int],
        use_input: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tiles of a SAR model, blended with the no-SAR model by ``sar.weight``: the SAR
        prediction where the weight is 1 (well inside the S1 coverage), the no-SAR one where
        it is 0 (no S1), a mix on the ramp between (the coverage edge is blended as tiles are).

        Returns:
            ``(pred (B, 13, th, tw), skip (B,) bool)``; ``skip``: tiles without any S1 pixel
            when ``use_input`` (nothing predicted there).
        """
        t = sar.tiles(pos, size)
        flat_w = t.weight.reshape(len(pos), -1)
        use_sar, use_nosar = (flat_w > 0).any(axis=1), (flat_w < 1).any(axis=1)
        channels = x.shape[1] * (2 if self.uncertainty else 1)
        pred = np.zeros((x.shape[0], channels, *x.shape[2:]), dtype=np.float32)
        if use_sar.any():
            idx = np.flatnonzero(use_sar)
            pred[idx] = self.main(
                x[idx], self._s1_tiles(t.s1n[idx], t.cov[idx]), None if m is None else m[idx],
                self.uncertainty,
            )  # fmt: skip
            self.counts["sar_tiles"] += len(idx)
        if not use_input and use_nosar.any():
            idx = np.flatnonzero(use_nosar)
            out = self.nosar()(x[idx], None, None if m is None else m[idx], self.uncertainty)
            pred[idx] = _mix(pred[idx], out, t.weight[idx][:, None], x.shape[1])
            self.counts["nosar_tiles"] += len(idx)
        skip = ~use_sar if use_input else np.zeros(len(pos), dtype=bool)
        return pred, np.asarray(skip, dtype=bool)

    def predict_region(
        self, xn: np.ndarray, sar: SarRegion | None, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Blend the tiles of one window + halo.

        Args:
            xn: (13, L, M) network-scale S2; sar: the region's S1, coverage and SAR weight
                (None without a SAR model); mask: (L, M) uint8 or None.

        Returns:
            ``(acc, wsum)``: weighted sum of tile predictions (13, L, M) and weight sum (L, M);
            with ``uncertainty`` acc is (26, L, M), the variances' weighted sum below the
            predictions', and wsum (2, L, M): the predictions' weights, then the variances'
            (pixels without a variance, from a model that predicts none, add no weight).
        """
        _, length_r, length_c = xn.shape
        if self.local:
            tr = fit_tile(length_r, self.tile, self.overlap)
            tc = fit_tile(length_c, self.tile, self.overlap)
        else:  # the model's own tile size (its statistics are the tile's), not a shorter one
            tr, tc = min(self.tile, length_r), min(self.tile, length_c)
        weights = blend_weights((tr, tc), self.overlap)
        positions = [
            (r, c)
            for r in axis_positions(length_r, tr, self.overlap)
            for c in axis_positions(length_c, tc, self.overlap)
        ]
        nb = xn.shape[0]
        var = self.uncertainty
        acc = np.zeros((2 * nb if var else nb, *xn.shape[1:]), dtype=np.float32)
        wsum = np.zeros((2, *xn.shape[1:]) if var else xn.shape[1:], dtype=np.float32)
        use_input = self.opts.outside_sar == "input"
        buf = np.empty((nb, tr, tc), dtype=np.float32)
        for k in range(0, len(positions), self.batch_size):
            pos = positions[k : k + self.batch_size]
            x = np.stack([xn[:, r : r + tr, c : c + tc] for r, c in pos])
            m = None if mask is None else np.stack([mask[r : r + tr, c : c + tc] for r, c in pos])
            skip = np.zeros(len(pos), dtype=bool)
            if not self.sar:  # one model for every pixel
                pred = self.nosar()(x, None, m, var)
                self.counts["nosar_tiles"] += len(pos)
            else:
                assert sar is not None
                pred, skip = self._predict_sar_batch(x, m, pos, sar, (tr, tc), use_input)
            for i, (r, c) in enumerate(pos):
                if skip[i]:
                    continue  # no S1 and outside_sar="input": every pixel keeps the input
                np.multiply(pred[i, :nb], weights, out=buf)
                acc[:nb, r : r + tr, c : c + tc] += buf
                if not var:
                    wsum[r : r + tr, c : c + tc] += weights
                    continue
                wsum[0, r : r + tr, c : c + tc] += weights
                has = np.isfinite(pred[i, nb])  # NaN: a model without variance here
                wv = np.where(has, weights, 0.0).astype(np.float32)
                acc[nb:, r : r + tr, c : c + tc] += np.where(has, pred[i, nb:], 0.0) * wv
                wsum[1, r : r + tr, c : c + tc] += wv
            self.counts["tiles"] += len(pos)
            self.counts["tile_pixels"] += len(pos) * tr * tc
        return acc, wsum

    def _predict_inside(
        self,
        xn: np.ndarray,
        sar: SarRegion | None,
        mask: np.ndarray | None,
        inner: Window,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_region` on the part of the region inside the scene (``inner``: the
        real part of the read); zeros outside."""
        top, left, ih, iw = inner
        sub = (slice(top, top + ih), slice(left, left + iw))
        acc_in, wsum_in = self.predict_region(
            xn[(slice(None), *sub)],
            None if sar is None else sar.crop(*sub),
            None if mask is None else mask[sub],
        )
        acc = np.zeros((acc_in.shape[0], *xn.shape[1:]), dtype=np.float32)
        acc[(slice(None), *sub)] = acc_in
        wsum = np.zeros((*wsum_in.shape[:-2], *xn.shape[1:]), dtype=np.float32)
        wsum[(..., *sub)] = wsum_in
        return acc, wsum

    def _sar_region(self, win: Window) -> SarRegion:
        """S1, its coverage and the SAR model's weight on ``win`` grown by the halo.

        The weight falls from 1 to 0 towards the edge of the S1 coverage as a tile's blend
        weight does towards the tile edge (:func:`coverage_weights`), so the no-SAR model takes
        over without a seam. The distance to the edge needs coverage beyond the halo: S1 (two
        bands, cheap) is read with :attr:`edge_reach` more pixels, then cut back.
        """
        assert self.s1 is not None
        h, reach = self.halo, self.edge_reach
        s1_db = self.s1.read(grow(win, h + reach), self.cloudy.height, self.cloudy.width)
        cov = s1_coverage(s1_db)
        if self.opts.outside_sar == "input":
            weight = cov.astype(np.float32)  # the input keeps the pixels without S1
        else:
            weight = coverage_weights(cov, self.overlap)
        cut = (slice(reach, cov.shape[0] - reach), slice(reach, cov.shape[1] - reach))
        s1n = normalize_s1(np.nan_to_num(s1_db[(slice(None), *cut)], nan=0.0), self.scaling)
        return SarRegion(s1n, cov[cut], weight[cut])

    def window(self, win: Window) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Predict one output window: ``(values in the file dtype (C, h, w), mask or None,
        standard deviation or None)``; the standard deviation (with ``uncertainty``) is float32
        reflectance (C, h, w), NaN where the value is not the model's (nodata, pixels kept from
        the input) or the model predicts no variance."""
        cloudy, h = self.cloudy, self.halo
        r, c, wh, ww = win
        region = grow(win, h)  # the window and its halo, read and predicted together
        data, inner = cloudy.read(region)
        # Rows of the 13-band array that the file has (all but the inserted B10 for L2A).
        rows = (
            [i for i in range(data.shape[0]) if i != s2_index("B10")] if cloudy.l2a else slice(None)
        )
        # The mask file or the computed mask: the same pixels whatever the windows.
        mask = None if self.mask_src is None else self.mask_src.read(region)
        xn = normalize_s2(data, self.scaling)  # finite: S2Source reads NaN as missing (0)
        sar = None
        if self.sar:
            sar = self._sar_region(win)
            self.covered += int(sar.cov[h : h + wh, h : h + ww].sum())
        if self.local:
            acc, wsum = self.predict_region(xn, sar, mask)
        else:
            acc, wsum = self._predict_inside(xn, sar, mask, inner)
        keep = (slice(None), slice(h, h + wh), slice(h, h + ww))
        acc, wsum = acc[keep], wsum[(slice(None), *keep[1:]) if self.uncertainty else keep[1:]]
        std = None
        if self.uncertainty:
            nb = acc.shape[0] // 2
            vw = wsum[1]
            var = np.divide(acc[nb:], vw, out=np.full_like(acc[nb:], np.nan), where=vw > 0)
            # Variance of a network value -> standard deviation in reflectance.
            to_refl = np.float32(self.scaling.reflectance_per_unit)
            std = (np.sqrt(np.maximum(var, 0.0)) * to_refl)[rows]
            acc, wsum = acc[:nb], wsum[0]
        pred = np.divide(acc, wsum, out=np.zeros_like(acc), where=wsum > 0)
        dn = denormalize_s2(pred, self.scaling)[rows]
        # DN are reflectance x 10000, never negative; the network's output can dip below 0
        # (written as such into int16 and float files, most in B10).
        np.maximum(dn, 0.0, out=dn)
        raw = data[:, h : h + wh, h : h + ww][rows]
        nodata = cloudy.meta.nodata
        # S2Source reads a missing pixel as 0 in every band, whatever the file declares
        # (cloudfree.units.zero_missing); the output gets the file's nodata there.
        holes = nodata_pixels(raw, None)
        replace = np.zeros((wh, ww), dtype=bool)
        win_mask = None
        if mask is not None:
            win_mask = np.ascontiguousarray(mask[h : h + wh, h : h + ww])
            self.mask_counts += class_counts(win_mask, holes)
            if self.opts.keep_clear:
                replace |= win_mask == CLEAR
            kept = self.main.method.unchanged(win_mask)
            if kept is not None:  # e.g. an inpainting: bit for bit the input outside its mask
                replace |= kept
        if sar is not None and self.opts.outside_sar == "input":
            replace |= ~sar.cov[h : h + wh, h : h + ww]
        dn[:, replace] = raw[:, replace]
        predicted = ~holes & ~replace
        if not self.main.method.include_sar:
            no_s1 = np.zeros((wh, ww), dtype=bool)
        elif sar is None:
            no_s1 = np.ones((wh, ww), dtype=bool)
        else:
            no_s1 = ~sar.cov[h : h + wh, h : h + ww]
        self.made_by["input"] += int((replace & ~holes).sum())
        self.made_by["nosar"] += int((predicted & no_s1).sum())
        self.made_by["model"] += int((predicted & ~no_s1).sum())
        out = to_dtype(dn, np.dtype(cloudy.meta.dtype))
        avoid_nodata(out, ~replace & ~holes, nodata)
        out[:, holes] = np.asarray(0 if nodata is None else nodata).astype(out.dtype)
        self.valid += int((~holes).sum())
        differs = (out.astype(np.float32) != raw).any(axis=0) & ~holes
        self.changed += int(differs.sum())
        if std is not None:
            std[:, replace] = np.nan  # the input's value there, not the model's
            std[:, holes] = np.nan
        return out, win_mask, std


def avoid_nodata(out: np.ndarray, predicted: np.ndarray, nodata: float | None) -> None:
    """Move predicted values off the nodata value, in place, so that no predicted pixel becomes
    a hole in a GIS.

    GDAL's nodata is per band: a predicted band value equal to the file's nodata would be
    transparent. Such values move one step inside the data range (integers: +1, or -1 at the
    dtype's maximum; floats: the next representable value). Without a declared nodata only a
    pixel 0 in every band would read as missing (:func:`cloudfree.units.nodata_pixels`); its
    bands become 1 step above 0.

    Args:
        out: (C, h, w) values in the output dtype.
        predicted: (h, w) bool, the pixels that hold predicted values (not input or nodata).
        nodata: the output's nodata value, or None.
    """
    if nodata is not None and np.isnan(nodata):
        return  # predictions are finite (Runner checks), never NaN
    value = np.asarray(0 if nodata is None else nodata).astype(out.dtype)
    at = out == value
    if nodata is None:
        at &= at.all(axis=0, keepdims=True)  # only a pixel missing in every band
    at &= predicted[None]
    if not at.any():
        return
    if np.issubdtype(out.dtype, np.integer):
        step = -1 if value == np.iinfo(out.dtype).max else 1
        out[at] = value + out.dtype.type(step)
    else:
        out[at] = np.nextafter(value, np.inf if value <= 0 else -np.inf).astype(out.dtype)


def to_dtype(dn: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip to an integer dtype's range (float dtypes: cast); ``dn`` is modified."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        np.rint(dn, out=dn)
        np.clip(dn, info.min, info.max, out=dn)
    return dn.astype(dtype)
