"""Evaluation protocols: the conventions under which published cloud-removal numbers were measured.

Published SEN12MS-CR results disagree partly because they were measured differently (see
``shared/docs/field.md``, "Evaluation protocol differences"): network scale 2000 vs reflectance
10000, predictions clipped or not, full 256x256 patches vs a centre 128x128 crop, per-image vs
per-pixel means, and different test splits. A protocol fixes these choices so that a number
produced here can be placed next to the published numbers it is comparable with.

Every protocol computes the metrics of :func:`cloudfree.metrics.compute` on **reflectance**
(DN / 10000, spec section 6 "Scale of the paper's numbers"); the differences are only the
window, the clipping and how patches are averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: Values of ``EvalProtocol.mean``. Only per-image means: every published number we compare
#: with (DSen2-CR Table 1, the leaderboard, GLF-CR) averages metrics over images.
MEANS: Final[tuple[str, ...]] = ("per_image",)


@dataclass(frozen=True)
class EvalProtocol:
    """One evaluation convention.

    Attributes:
        name: key in :data:`PROTOCOLS`.
        crop: side in pixels of the centred square window the metrics see; None = the whole
            patch (256x256 in SEN12MS-CR).
        clip_prediction: clip the predicted reflectance to [0, 1] before the metrics. Targets
            and cloudy inputs are already in [0, 1] (DN clipped to [0, 10000], spec section 2).
        mean: ``"per_image"``: metrics per patch, then the NaN-aware mean over patches (an
            undefined recon/reprod value of a patch is skipped, not counted as 0). The only
            value (:data:`MEANS`); pooled per-pixel means are not offered because no published
            SEN12MS-CR number we compare with uses them.
        description: what the protocol does, for reports.
        comparable_with: which published numbers it reproduces the conditions of.
    """

    name: str
    crop: int | None
    clip_prediction: bool
    mean: str
    description: str
    comparable_with: str

    def __post_init__(self) -> None:
        if self.crop is not None and self.crop < 1:
            raise ValueError(f"crop must be a positive number of pixels or None, got {self.crop}")
        if self.mean not in MEANS:
            raise ValueError(f"unknown mean {self.mean!r}; expected one of {MEANS}")


#: DSen2-CR, Table 1 of Meraner et al. (2020), spec sections 6 and 8.
PAPER: Final[EvalProtocol] = EvalProtocol(
    name="paper",
    crop=None,
    clip_prediction=False,
    # Spec section 6: the paper's prediction mode runs batch 1 and writes one row of metrics
    # per image (eval.csv); the table is the mean of those rows. Keras does not clip the
    # network output, so neither do we. Network values x 2000 / 10000 give the reflectance the
    # table is in (the "5x off" of ameraner/dsen2-cr issue #13 is forgetting this).
    mean="per_image",
    description=(
        "DSen2-CR Table 1: full 256x256 patches, predictions not clipped, reflectance = "
        "DN / 10000 (network value x 2000 / 10000), metrics per patch averaged over patches "
        "(NaN-aware), cloud/shadow mask of the DSen2-CR CSM for the reprod/recon split"
    ),
    comparable_with=(
        "DSen2-CR paper, Table 1 (all columns). Caveat: the paper measured on its own split of "
        "the original WGS84 release; the public release is reprojected to UTM and its split "
        "differs slightly (field.md, section 1), so expect small differences"
    ),
)

#: SEN12MS-CR leaderboard / UnCRtainTS ``img_metrics`` (field.md "Evaluation protocol
#: differences": UnCRtainTS loader and metrics).
LEADERBOARD: Final[EvalProtocol] = EvalProtocol(
    name="leaderboard",
    crop=None,
    # UnCRtainTS rescales S2 to [0, 1] reflectance (clip [0, 10000] / 10000) and its output
    # is compared in that range; clipping the prediction reproduces its bounded outputs.
    clip_prediction=True,
    mean="per_image",
    description=(
        "SEN12MS-CR leaderboard (UnCRtainTS img_metrics): all 13 bands, every test ROI, "
        "predictions clipped to [0, 1] reflectance, full 256x256 patches, metrics per image "
        "averaged over images"
    ),
    comparable_with=(
        "SEN12MS-CR leaderboard rows and UnCRtainTS / EMRDM / DiffCR SEN12MS-CR tables: MAE, "
        "SAM, PSNR, SSIM (RMSE is not reported there; the reprod/recon columns are ours)"
    ),
)

#: GLF-CR's test script (field.md: ``codes/test_CR.py`` defaults load_size 256, crop_size 128).
GLF_CR: Final[EvalProtocol] = EvalProtocol(
    name="glf-cr",
    crop=128,
    clip_prediction=True,
    mean="per_image",
    description=(
        "GLF-CR test script: centre 128x128 crop of each 256x256 patch, reflectance "
        "DN / 10000 (PSNR peak 1), predictions clipped to [0, 1], per-image means"
    ),
    comparable_with=(
        "GLF-CR paper and the methods evaluated with its script: PSNR and SSIM (the released "
        "script prints only these two)"
    ),
)

#: Protocols by name (command line ``--protocol``).
PROTOCOLS: Final[dict[str, EvalProtocol]] = {p.name: p for p in (PAPER, LEADERBOARD, GLF_CR)}


def get_protocol(name: str) -> EvalProtocol:
    """Look up a protocol by name (``"paper"``, ``"leaderboard"`` or ``"glf-cr"``).

    Raises:
        KeyError: unknown name; the message lists the valid ones.
    """
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise KeyError(
            f"unknown evaluation protocol {name!r}; expected one of {sorted(PROTOCOLS)}"
        ) from None
