"""The cloud/shadow maskers a whole-scene command can use, behind one interface.

=============== ============================================================================
``ukis``        the default where installed (extra ``masks``): ukis-csmask's CNN at 30 m
                (scenes under 768 px also at their own resolution; :mod:`cloudfree.masks.ukis`);
                clouds and shadows, L1C and L2A, needs B2, B3, B4, B8; grown by
                :data:`DEFAULT_DILATE_M` metres.
``dsen2cr``     the DSen2-CR paper's heuristic (:mod:`cloudfree.masks.csm`), exactly as
                published: what training, the CARL loss and the paper's evaluation protocol
                use. Built to weight a training loss, not to map clouds: it flags 30-35 % of
                the clear real scenes of ``../shared/data`` as shadow and finds 8 % of a fully
                cloudy one (``benchmarks/README.md``). L1C only (reads B10); not grown.
``s2cloudless`` Sentinel Hub's pixel classifier (extra ``masks``): clouds only, L1C only.
=============== ============================================================================

``auto`` (every command's default) is ``ukis`` when ukis-csmask is installed, else
``dsen2cr`` with a one-line note saying how to install the better one.

A :class:`MaskBackend` masks a block of a scene from the raw values of its bands (the block
grown by :attr:`MaskBackend.halo` pixels of context); :class:`~cloudfree.masks.computed.
ComputedMask` walks a scene block by block with it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Final, Protocol

import numpy as np

from cloudfree.masks.params import CLEAR, CSM_BANDS, DEFAULT_PARAMS, CSMParams
from cloudfree.windows import Window

log = logging.getLogger(__name__)

#: Names a command accepts for ``--mask-backend``; ``auto`` resolves to one of the others.
MASK_BACKENDS: Final[tuple[str, ...]] = ("auto", "ukis", "dsen2cr", "s2cloudless")
#: The masker ``auto`` prefers, and the one it falls back to.
PREFERRED: Final[str] = "ukis"
FALLBACK: Final[str] = "dsen2cr"
#: Default growth of each masker's mask, metres (``--dilate``). The CNN's masks follow the
#: cloud body and leave the haze rim and the shadow penumbra out: on the real cloudy patches
#: (``benchmarks/mask.py``, part 3) blue is 11 % above the ground beside its cloud mask, 6 % at
#: 40-60 m, 4 % at 60-80 m, 1 % beyond 100 m, and NIR is 12 % below it beside its shadows, 0
#: beyond 30-40 m. 60 m takes the penumbra whole and the brightest part of the rim. The paper's
#: mask stays as published, and s2cloudless dilates its own mask already.
DEFAULT_DILATE_M: Final[dict[str, float]] = {"ukis": 60.0, "dsen2cr": 0.0, "s2cloudless": 0.0}

#: ``read_bands(names, window)`` -> raw values (len(names), h, w) of those bands in a window
#: inside the scene.
ReadBands = Callable[[tuple[str, ...], Window], np.ndarray]


class MaskBackend(Protocol):
    """A masker of scene blocks.

    Attributes:
        name: its ``--mask-backend`` name.
        bands: the bands it reads, by name (``S2_BANDS`` names).
        halo: pixels of context it needs on each side of a block.
        min_context: the least side, pixels, of the region it masks a block from: a block
            near the scene edge takes more context inwards rather than less (0: no minimum).
        align: the region's corner is a multiple of this (whole cells of a coarse scale).
    """

    name: str
    bands: tuple[str, ...]
    halo: int
    min_context: int
    align: int

    def fit(self, read_bands: ReadBands, height: int, width: int) -> None:
        """Whatever it needs from the whole scene before the first block (a no-op for most)."""

    def mask(self, dn: Mapping[str, np.ndarray], nodata: float | None) -> np.ndarray:
        """uint8 (h, w) mask, 0 clear, 1 cloud, 2 shadow, of a block grown by :attr:`halo`
        (clipped to the scene), from the raw values of :attr:`bands` (band name -> (h, w))."""

    def describe(self) -> str:
        """One line for summaries and file tags: the masker and its model."""


class UkisBackend:
    """ukis-csmask's CNN at 30 m, small scenes also at their own resolution
    (:mod:`cloudfree.masks.ukis`).

    Args:
        level: ``"l1c"`` or ``"l2a"``: which of its models.
        gsd_m: the scene's pixel size, metres (sets the coarse factor).
    """

    name = "ukis"

    def __init__(self, level: str, gsd_m: float) -> None:
        from cloudfree.masks.ukis import (
            UKIS_BANDS,
            UKIS_OVERLAP,
            UKIS_TILE,
            coarse_factor,
            load_model,
        )

        self.level, self.gsd_m = level, gsd_m
        self.factor = coarse_factor(gsd_m)
        self.factors: tuple[int, ...] = (self.factor,)  # set for the scene by fit()
        self.bands: tuple[str, ...] = UKIS_BANDS
        # Context: one tile overlap at the coarse scale, at least one model tile in all, in
        # whole coarse cells from the scene's corner, so a block's cells are the scene's own.
        self.halo = UKIS_OVERLAP * self.factor
        self.min_context = UKIS_TILE * self.factor
        self.align = self.factor
        self.version = load_model(level).version  # fails now, clearly, if not installed

    def fit(self, read_bands: ReadBands, height: int, width: int) -> None:
        """The scales of this scene (:func:`~cloudfree.masks.ukis.choose_factors`)."""
        from cloudfree.masks.ukis import choose_factors

        self.factors = choose_factors(height, width, self.gsd_m)

    def mask(self, dn: Mapping[str, np.ndarray], nodata: float | None) -> np.ndarray:
        from cloudfree.bands import S2_DN_PER_REFLECTANCE
        from cloudfree.masks.ukis import ukis_mask
        from cloudfree.units import nodata_pixels

        raw = np.stack([np.asarray(dn[b], dtype=np.float32) for b in self.bands])
        mask = ukis_mask(raw / np.float32(S2_DN_PER_REFLECTANCE), self.level, self.factors)
        mask[nodata_pixels(raw, nodata)] = CLEAR  # no data: nothing to call cloud
        return mask

    def describe(self) -> str:
        m = self.gsd_m
        scales = " and ".join(f"{f * m:.0f} m" for f in self.factors)
        return f"ukis (ukis-csmask model {self.version}, at {scales})"


class DSen2CRBackend:
    """The DSen2-CR mask (spec section 3), exactly the published algorithm: the scene's shadow
    thresholds from a first pass over B2, B8, B11 (:class:`~cloudfree.masks.csm_scene.SceneMasker`),
    then each block with enough context (``CSMParams.halo``) to equal the whole image's mask.
    """

    name = "dsen2cr"

    def __init__(self, params: CSMParams = DEFAULT_PARAMS, window: int = 1024) -> None:
        from cloudfree.masks.csm_scene import SceneMasker

        self.masker = SceneMasker(params)
        self.bands: tuple[str, ...] = CSM_BANDS
        self.halo = self.masker.halo
        self.min_context, self.align = 0, 1
        self.window = window

    def fit(self, read_bands: ReadBands, height: int, width: int) -> None:
        self.masker.fit(read_bands, height, width, self.window)

    def mask(self, dn: Mapping[str, np.ndarray], nodata: float | None) -> np.ndarray:
        # Nodata pixels are masked as the values they hold, as the published code does.
        return self.masker.mask(dn)

    def describe(self) -> str:
        return "dsen2cr (the DSen2-CR paper's mask)"


class S2CloudlessBackend:
    """s2cloudless's clouds (no shadows), L1C only (:mod:`cloudfree.masks.s2cloudless`)."""

    name = "s2cloudless"

    def __init__(self) -> None:
        from cloudfree.masks.s2cloudless import S2CLOUDLESS_BANDS, _detector, s2cloudless_halo

        self.bands: tuple[str, ...] = S2CLOUDLESS_BANDS
        self.halo = s2cloudless_halo()
        self.min_context, self.align = 0, 1
        _detector(0.4, 4, 2)  # fails now, clearly, if not installed

    def fit(self, read_bands: ReadBands, height: int, width: int) -> None:
        """Nothing to fit."""

    def mask(self, dn: Mapping[str, np.ndarray], nodata: float | None) -> np.ndarray:
        from cloudfree.masks.s2cloudless import s2cloudless_bands_mask

        return s2cloudless_bands_mask(dn)

    def describe(self) -> str:
        return "s2cloudless (clouds only)"


def resolve_backend(name: str) -> str:
    """The masker ``name`` stands for: ``auto`` -> ``ukis`` where installed, else ``dsen2cr``
    with a one-line note (logged) that says how to install ukis-csmask.

    Raises:
        ValueError: an unknown name.
    """
    if name not in MASK_BACKENDS:
        raise ValueError(f"unknown mask backend {name!r}; expected one of {MASK_BACKENDS}")
    if name != "auto":
        return name
    from cloudfree.masks.ukis import UKIS_INSTALL, ukis_available

    if ukis_available():
        return PREFERRED
    _note_fallback(UKIS_INSTALL)
    return FALLBACK


@lru_cache(maxsize=1)
def _note_fallback(install: str) -> None:
    """The one-line note of ``auto`` without ukis-csmask, once per process (a folder of
    scenes gets it once, not once a scene)."""
    log.warning(
        "cloud mask: ukis-csmask is not installed, using the DSen2-CR heuristic, which flags "
        "clear ground as shadow on many scenes; for the better mask: %s",
        install,
    )


def make_backend(
    name: str,
    level: str,
    gsd_m: float,
    layout_bands: Sequence[str] | None = None,
    where: str | os.PathLike[str] | None = None,
    params: CSMParams = DEFAULT_PARAMS,
    window: int = 1024,
) -> MaskBackend:
    """The backend called ``name`` (already resolved, not ``auto``) for a scene.

    Args:
        name: ``"ukis"``, ``"dsen2cr"`` or ``"s2cloudless"``.
        level: the scene's product level (``"l1c"`` or ``"l2a"``).
        gsd_m: the scene's pixel size, metres.
        layout_bands: the bands the scene holds; None skips the check (the caller supplies
            every band, e.g. an L2A scene with its B10 filled).
        where: the scene, for messages.
        params, window: the ``dsen2cr`` mask's constants, and the side of the windows its
            first pass reads.

    Raises:
        DataError: a masker that cannot run on this scene (missing bands, explained for an
            L2A file given to the DSen2-CR mask; L2A for s2cloudless), with what to do.
        ImportError: its optional package is not installed.
    """
    from cloudfree.bands import S2_L2A_BANDS
    from cloudfree.errors import DataError
    from cloudfree.masks.params import band_count_problem

    backend: MaskBackend
    if name == "ukis":
        backend = UkisBackend(level, gsd_m)
    elif name == "dsen2cr":
        backend = DSen2CRBackend(params, window)
    elif name == "s2cloudless":
        if level == "l2a":
            raise DataError(
                where,
                "is L2A, and s2cloudless was trained on L1C (top-of-atmosphere) data",
                "an L1C scene, or --mask-backend ukis (L1C and L2A)",
            )
        backend = S2CloudlessBackend()
    else:
        raise ValueError(f"unknown mask backend {name!r}; expected one of {MASK_BACKENDS[1:]}")
    missing = [] if layout_bands is None else [b for b in backend.bands if b not in layout_bands]
    if not missing:
        return backend
    if name == "dsen2cr" and missing == ["B10"] and set(layout_bands or ()) >= set(S2_L2A_BANDS):
        problem = band_count_problem(len(S2_L2A_BANDS))  # an L2A product: say why, and what to do
        assert problem is not None
        raise DataError(
            where,
            f"{problem[0]}; the dsen2cr mask needs it",
            problem[1] + "; or --mask-backend ukis, which masks L2A too",
        )
    hint = " (B10 is only in L1C products)" if "B10" in missing else ""
    raise DataError(
        where,
        f"the {name} mask needs the bands {', '.join(backend.bands)}; the file holds "
        f"{', '.join(layout_bands or ())}: missing {', '.join(missing)}{hint}",
        "a file with those bands (name the file's bands with --bands if its band "
        "descriptions do not), or another --mask-backend (ukis needs only B2, B3, B4, B8)",
    )
