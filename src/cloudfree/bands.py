"""Band order, scaling and release-layout constants, defined once for the whole project.

The base of the package: it imports nothing of cloudfree, numpy or torch, so every layer
(``data``, ``masks``, ``models``, the command line) can take its constants from here.

Sources: ``docs/dsen2cr_spec.md`` sections 1-2 (DSen2-CR code, Meraner et al. 2020) and
``field.md`` section 1 (the reflectance protocol of the SEN12MS-CR leaderboard / UnCRtainTS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: The 13 Sentinel-2 L1C bands in SEN12MS-CR file order (numpy index 0 = B1, 10 = B10 cirrus).
S2_BANDS: Final[tuple[str, ...]] = (
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12",
)  # fmt: skip
#: Bands of an L2A product: B10 (cirrus) is dropped by sen2cor.
S2_L2A_BANDS: Final[tuple[str, ...]] = tuple(b for b in S2_BANDS if b != "B10")
#: The 2 Sentinel-1 GRD bands in file order, backscatter sigma0 in dB.
S1_BANDS: Final[tuple[str, ...]] = ("VV", "VH")

NUM_S2_BANDS: Final[int] = len(S2_BANDS)  # 13
NUM_S1_BANDS: Final[int] = len(S1_BANDS)  # 2

#: Ground sampling distance of every SEN12MS-CR band after resampling, metres.
GSD_M: Final[float] = 10.0
#: Native resolution (metres) of each S2 band, used when stacking a .SAFE product.
S2_NATIVE_GSD_M: Final[dict[str, int]] = {
    "B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20,
    "B8": 10, "B8A": 20, "B9": 60, "B10": 60, "B11": 20, "B12": 20,
}  # fmt: skip

#: Side of a released SEN12MS-CR patch, pixels.
PATCH_SIZE: Final[int] = 256
#: Side of the random training crop of the paper (spec section 2).
TRAIN_CROP_SIZE: Final[int] = 128

#: S2 L1C digital numbers are TOA reflectance x 10000.
S2_DN_PER_REFLECTANCE: Final[float] = 10000.0


def s2_index(band: str) -> int:
    """Numpy index of an S2 band name in file order (``s2_index("B10") == 10``)."""
    try:
        return S2_BANDS.index(band)
    except ValueError:
        raise KeyError(f"unknown Sentinel-2 band {band!r}; expected one of {S2_BANDS}") from None


@dataclass(frozen=True)
class Scaling:
    """How raw values become network values for one protocol.

    S2: ``clip(dn, *s2_clip) / s2_scale``. S1: per band ``(clip(db, lo, hi) - lo) / (hi - lo) *
    s1_max``. The inverse for S2 (network value -> DN) is ``value * s2_scale``.
    """

    name: str
    s2_clip: tuple[float, float]
    s2_scale: float
    s1_clip: tuple[tuple[float, float], ...]  # one (lo, hi) in dB per S1 band, in S1_BANDS order
    s1_max: float

    @property
    def reflectance_per_unit(self) -> float:
        """Reflectance of one S2 network unit: ``s2_scale / 10000`` (0.2 for DSen2-CR).

        The one network value -> reflectance conversion (metrics, panels, the predicted
        standard deviation): ``reflectance = value * reflectance_per_unit``; a variance scales
        by its square.
        """
        return self.s2_scale / S2_DN_PER_REFLECTANCE


#: DSen2-CR (spec section 2): S2 clipped to [0, 10000] DN then / 2000 -> [0, 5];
#: S1 VV clipped to [-25, 0] dB, VH to [-32.5, 0] dB, each mapped to [0, 2] (max_val_sar = 2).
DSEN2CR: Final[Scaling] = Scaling(
    name="dsen2cr",
    s2_clip=(0.0, 10000.0),
    s2_scale=2000.0,
    s1_clip=((-25.0, 0.0), (-32.5, 0.0)),
    s1_max=2.0,
)

#: The reflectance protocol of the SEN12MS-CR leaderboard (UnCRtainTS ``process_MS/SAR``):
#: S2 / 10000 into [0, 1]; both S1 bands clipped to [-25, 0] dB and mapped to [0, 1].
REFLECTANCE: Final[Scaling] = Scaling(
    name="reflectance",
    s2_clip=(0.0, 10000.0),
    s2_scale=10000.0,
    s1_clip=((-25.0, 0.0), (-25.0, 0.0)),
    s1_max=1.0,
)

#: Protocols by name, for configs and command lines.
SCALINGS: Final[dict[str, Scaling]] = {s.name: s for s in (DSEN2CR, REFLECTANCE)}


def get_scaling(name: str) -> Scaling:
    """Look up a scaling protocol by name (``"dsen2cr"`` or ``"reflectance"``)."""
    try:
        return SCALINGS[name]
    except KeyError:
        raise KeyError(
            f"unknown scaling protocol {name!r}; expected one of {sorted(SCALINGS)}"
        ) from None


#: SEN12MS-CR seasons and the ROI prefix each is released under.
SEASONS: Final[dict[str, str]] = {
    "spring": "ROIs1158_spring",
    "summer": "ROIs1868_summer",
    "fall": "ROIs1970_fall",
    "winter": "ROIs2017_winter",
}
#: Kinds of file in a triplet, as the release names them.
KINDS: Final[tuple[str, ...]] = ("s1", "s2", "s2_cloudy")
#: Band count and data type of each kind of file as released (spec section 1): S2 L1C DN as
#: uint16, S1 sigma0 in dB as float32.
FILE_LAYOUT: Final[dict[str, tuple[int, str]]] = {
    "s2_cloudy": (NUM_S2_BANDS, "uint16"),
    "s2": (NUM_S2_BANDS, "uint16"),
    "s1": (NUM_S1_BANDS, "float32"),
}
#: Dataset splits an index assigns (``--split all`` on the command line means every one).
SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")
