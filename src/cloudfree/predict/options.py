"""What one :func:`~cloudfree.predict.scene.predict_scene` call was asked to do, frozen.

:class:`SceneFiles` names the files (inputs and outputs), :class:`PredictOptions` says how to
predict (tiling requests, device, fallbacks). Both are built once from ``predict_scene``'s
arguments, checked, and passed down whole, so the window predictor and the writer read one
value instead of a dozen positional arguments. The tiling that is finally used is the
:class:`~cloudfree.predict.plan.TilePlan` made from these requests and the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cloudfree.data.sentinel.scene import OUTSIDE_SAR
from cloudfree.outputs import check_outputs

#: Smallest tile side the tiler accepts, px.
MIN_TILE = 8
#: Output windows are multiples of this many pixels (the output GeoTIFF's block sides).
WINDOW_MULTIPLE = 16


def _path(p: str | os.PathLike[str] | None) -> Path | None:
    return None if p is None else Path(p)


@dataclass(frozen=True)
class SceneFiles:
    """The files of one scene prediction.

    Attributes:
        s2_cloudy: the cloudy Sentinel-2 scene (the input; ``--s2``).
        out: the cloud-free prediction to write.
        s1: the Sentinel-1 scene (VV, VH in dB), or None.
        mask: a cloud/shadow mask GeoTIFF used instead of the computed one, or None.
        mask_out: where to write the cloud/shadow mask, or None.
        uncertainty_out: where to write the predicted standard deviation, or None.
    """

    s2_cloudy: Path
    out: Path
    s1: Path | None = None
    mask: Path | None = None
    mask_out: Path | None = None
    uncertainty_out: Path | None = None

    @classmethod
    def of(
        cls,
        s2_cloudy: str | os.PathLike[str],
        out: str | os.PathLike[str],
        s1: str | os.PathLike[str] | None = None,
        mask: str | os.PathLike[str] | None = None,
        mask_out: str | os.PathLike[str] | None = None,
        uncertainty_out: str | os.PathLike[str] | None = None,
    ) -> SceneFiles:
        """From paths given as strings or path-likes (None: not given)."""
        return cls(
            Path(s2_cloudy), Path(out), _path(s1), _path(mask), _path(mask_out),
            _path(uncertainty_out),
        )  # fmt: skip

    def check(self) -> None:
        """Raise :class:`~cloudfree.outputs.OutputError` if an output is an input, two outputs
        are one file, or an output cannot be written (before any work is done)."""
        check_outputs(
            {"--out": self.out, "--mask-out": self.mask_out,
             "--uncertainty-out": self.uncertainty_out},
            [self.s2_cloudy, self.s1, self.mask],
        )  # fmt: skip


@dataclass(frozen=True)
class PredictOptions:
    """How a scene is predicted: :func:`~cloudfree.predict.scene.predict_scene`'s arguments
    other than the files and the main method (see its docstring for each).

    ``tile``, ``overlap``, ``batch_size`` and ``window`` are requests: None lets
    :func:`~cloudfree.predict.plan.plan_tiles` (and ``choose_window``) decide. ``mask_backend``
    and ``dilate`` say how the cloud/shadow mask is computed (``--mask-backend``, ``--dilate``;
    ``dilate`` also grows a mask file when given).
    """

    checkpoint_nosar: str | None = None
    #: None: not chosen; where a SAR model needs it, the no-SAR partner of a registry model,
    #: else an error (never a silent substitute).
    outside_sar: str | None = None
    tile: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    window: int | None = None
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"
    keep_clear: bool = False
    b10: float | None = None
    sd_weights: str | None = None
    progress: bool = True
    mask_backend: str = "auto"
    dilate: str | float | None = None

    def check(self) -> None:
        """Raise ValueError for a value no scene can be predicted with (unknown names, sizes
        out of range); requests left at None are checked once they are planned."""
        from cloudfree.masks.backends import MASK_BACKENDS
        from cloudfree.masks.dilate import parse_distance
        from cloudfree.models.runtime import BACKENDS, resolve_precision

        if self.mask_backend not in MASK_BACKENDS:
            raise ValueError(
                f"mask_backend must be one of {MASK_BACKENDS}, got {self.mask_backend!r}"
            )
        if self.dilate is not None:
            parse_distance(self.dilate)  # raises for a bad distance
        if self.outside_sar is not None and self.outside_sar not in OUTSIDE_SAR:
            raise ValueError(f"outside_sar must be one of {OUTSIDE_SAR}, got {self.outside_sar!r}")
        resolve_precision(self.precision)  # raises for an unknown name
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        check_tiling(
            2048 if self.tile is None else self.tile,
            0 if self.overlap is None else self.overlap,
            1 if self.batch_size is None else self.batch_size,
        )
        w = self.window
        if w is not None and (w < WINDOW_MULTIPLE or w % WINDOW_MULTIPLE):
            raise ValueError(
                f"window must be a multiple of {WINDOW_MULTIPLE} (>= {WINDOW_MULTIPLE}), got {w}"
            )


def check_tiling(tile: int, overlap: int, batch_size: int) -> None:
    """Raise ValueError unless ``tile`` / ``overlap`` / ``batch_size`` can tile a scene."""
    if tile < MIN_TILE:
        raise ValueError(f"tile must be >= {MIN_TILE} pixels, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= overlap < tile, got overlap {overlap}, tile {tile}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
