"""Evaluation protocols: the conventions under which published cloud-removal numbers were measured.

Published SEN12MS-CR results disagree partly because they were measured differently (see
``docs/field.md``, "Evaluation protocol differences"): network scale 2000 vs reflectance
10000, predictions clipped or not, full 256x256 patches vs a centre 128x128 crop, per-image vs
per-pixel means, and different test splits. A protocol fixes these choices so that a number
produced here can be placed next to the published numbers it is comparable with.

Every protocol computes the metrics of :func:`cloudfree.metrics.compute` on **reflectance**
(DN / 10000, spec section 6 "Scale of the paper's numbers"); the differences are the window,
the clipping, the SSIM's border handling and how PSNR is averaged over patches.

**PSNR averaging.** The mean of per-patch PSNRs is never *below* ``20 log10(1 / mean RMSE)``
(Jensen: -log is convex) and exceeds it by about ``4.34 Var(ln RMSE_i)`` dB. In the paper's
Table 1, three rows sit on that bound (L_CARL: 20 log10(1 / 0.0366) = 28.73 against 28.7
printed; L_T: 29.29 / 29.3; L_T no SAR: 28.85 / 28.8), and the no-SAR CARL row is *below* it
(28.25 from its RMSE, 27.6 printed), which a mean of per-patch PSNRs cannot produce. So the
paper's PSNR was most likely computed from an aggregated RMSE, not averaged per patch
(``docs/dsen2cr_spec.md`` section 6 guesses the opposite direction). Evaluations
report both: ``psnr`` (mean of per-patch PSNR) and ``psnr_mean_rmse`` (20 log10(1 / mean
RMSE)); the ``paper`` protocol's table shows the second, the leaderboard's the first, which is
what UnCRtainTS's ``avg_img_metrics`` averages.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from cloudfree.metrics.names import SSIM_PADDINGS

#: Values of ``EvalProtocol.mean``. Only per-image means: every published number we compare
#: with (DSen2-CR Table 1, the leaderboard, GLF-CR) averages metrics over images.
MEANS: Final[tuple[str, ...]] = ("per_image",)
#: Values of ``EvalProtocol.psnr``: the table's PSNR is the mean of per-patch PSNRs
#: ("per_image") or 20 log10(1 / mean RMSE) ("mean_rmse"; see the module docstring).
PSNR_MEANS: Final[tuple[str, ...]] = ("per_image", "mean_rmse")
#: Summary key of the PSNR of the mean RMSE (beside ``psnr``, the mean of per-patch PSNRs).
PSNR_MEAN_RMSE_KEY: Final[str] = "psnr_mean_rmse"


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
        psnr: the PSNR column of its table, ``"per_image"`` (mean of per-patch PSNRs) or
            ``"mean_rmse"`` (20 log10(1 / mean RMSE)), :data:`PSNR_MEANS`.
        ssim_padding: ``"valid"`` (``tf.image.ssim``) or ``"zero"`` (pytorch-ssim), see
            :mod:`cloudfree.metrics.ssim`.
    """

    name: str
    crop: int | None
    clip_prediction: bool
    mean: str
    description: str
    comparable_with: str
    psnr: str = "per_image"
    ssim_padding: str = "valid"

    def __post_init__(self) -> None:
        if self.crop is not None and self.crop < 1:
            raise ValueError(f"crop must be a positive number of pixels or None, got {self.crop}")
        if self.mean not in MEANS:
            raise ValueError(f"unknown mean {self.mean!r}; expected one of {MEANS}")
        if self.psnr not in PSNR_MEANS:
            raise ValueError(f"unknown psnr {self.psnr!r}; expected one of {PSNR_MEANS}")
        if self.ssim_padding not in SSIM_PADDINGS:
            raise ValueError(
                f"unknown ssim_padding {self.ssim_padding!r}; expected {SSIM_PADDINGS}"
            )

    @property
    def psnr_key(self) -> str:
        """The summary key its table's PSNR column shows."""
        return PSNR_MEAN_RMSE_KEY if self.psnr == "mean_rmse" else "psnr"

    def columns(self) -> dict[str, str]:
        """How each column is computed under this protocol (summary.json, table.md)."""
        window = "full patch" if self.crop is None else f"centre {self.crop}x{self.crop} crop"
        clip = (
            "predictions clipped to [0, 1]" if self.clip_prediction else "predictions not clipped"
        )
        per = (
            f"per patch ({window}, reflectance = DN / 10000, {clip}), then the NaN-aware mean "
            "over patches"
        )
        ssim = (
            "tf.image.ssim: 11x11 Gaussian window (sigma 1.5), k1 0.01, k2 0.03, data range 1, "
            "'valid' filtering (only where the window fits), mean over bands"
            if self.ssim_padding == "valid"
            else "pytorch-ssim (UnCRtainTS util/pytorch_ssim): 11x11 Gaussian window (sigma 1.5), "
            "k1 0.01, k2 0.03, data range 1, zero padding, mean over every pixel and band"
        )
        psnr = (
            "20 log10(1 / RMSE) with RMSE the mean of the per-patch RMSEs (not the mean of "
            "per-patch PSNRs, which is summary key 'psnr')"
            if self.psnr == "mean_rmse"
            else f"20 log10(1 / RMSE) with the RMSE of the patch, {per}"
        )
        return {
            "mae": f"mean |P - T| over all bands and pixels, {per}",
            "mae_reprod": f"mean |P - I| over the clear pixels of the DSen2-CR mask, {per}",
            "mae_recon": f"mean |P - T| over its cloud/shadow pixels, {per}",
            "rmse": f"sqrt(mean (P - T)^2) over all bands and pixels, {per}",
            "psnr": psnr,
            "sam": "spectral angle between T and P per pixel, degrees (float64, 2 atan2(|u - v|, "
            f"|u + v|) of the unit spectra = arccos of their cosine), mean over pixels, {per}",
            "sam_reprod": f"spectral angle between I and P over the clear pixels, {per}",
            "sam_recon": f"spectral angle between T and P over the cloud/shadow pixels, {per}",
            "ssim": f"{ssim}, {per}",
        }


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
    psnr="mean_rmse",
    ssim_padding="valid",
    description=(
        "DSen2-CR Table 1: full 256x256 patches, predictions not clipped, reflectance = "
        "DN / 10000 (a network value in its own scaling, e.g. DSen2-CR's x 2000 / 10000), "
        "metrics per patch averaged over patches "
        "(NaN-aware) except PSNR, computed from the mean RMSE, tf.image.ssim; cloud/shadow "
        "mask of the DSen2-CR CSM for the reprod/recon split"
    ),
    comparable_with=(
        "DSen2-CR paper, Table 1 (all columns). Caveat: the paper measured on its own split of "
        "the original WGS84 release; the public release is reprojected to UTM and its split "
        "differs slightly (docs/field.md, section 1), so expect small differences"
    ),
)

#: SEN12MS-CR leaderboard / UnCRtainTS ``img_metrics`` (field.md "Evaluation protocol
#: differences": UnCRtainTS loader and metrics).
LEADERBOARD: Final[EvalProtocol] = EvalProtocol(
    name="leaderboard",
    crop=None,
    # UnCRtainTS (model/src/learning/metrics.py@5e1f1b5, img_metrics per sample, then
    # avg_img_metrics' running mean over samples skipping NaN) clips the inputs and targets to
    # [0, 10000] / 10000 in its loader but never the prediction (its sigmoid-bounded means
    # need none), so neither do we: a method whose output leaves [0, 1] is measured as it is.
    clip_prediction=False,
    mean="per_image",
    psnr="per_image",
    ssim_padding="zero",
    description=(
        "SEN12MS-CR leaderboard (UnCRtainTS img_metrics): all 13 bands, every test ROI, "
        "predictions not clipped, full 256x256 patches, RMSE over the whole patch and PSNR "
        "from it, SSIM of pytorch-ssim (zero-padded borders), metrics per image averaged over "
        "images"
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

#: SEN12MS-CR-TS with UnCRtainTS's test script: the same img_metrics per sample (issue 31);
#: for :func:`cloudfree.evaluate.series.evaluate_series`.
SEN12MSCR_TS: Final[EvalProtocol] = replace(
    LEADERBOARD,
    name="sen12mscr-ts",
    description=(
        "SEN12MS-CR-TS (UnCRtainTS test script, img_metrics): the target date's 13 bands, "
        "reflectance in [0, 1], predictions not clipped, full 256x256 patches, RMSE, MAE, "
        "PSNR, SAM, SSIM (pytorch-ssim) per sample averaged over samples; reprod/recon "
        "against the least cloudy input and its mask"
    ),
    comparable_with=(
        "the SEN12MS-CR-TS benchmark table (patricktum.github.io/cloud_removal): RMSE, SAM, "
        "PSNR, SSIM with 3 input dates, the official test split and the fixed sampler"
    ),
)

#: Protocols of one-date datasets (SEN12MS-CR) by name (command line ``--protocol``).
PROTOCOLS: Final[dict[str, EvalProtocol]] = {p.name: p for p in (PAPER, LEADERBOARD, GLF_CR)}
#: Protocols of series (a SEN12MS-CR-TS index: :mod:`cloudfree.evaluate.series`).
SERIES_PROTOCOLS: Final[dict[str, EvalProtocol]] = {SEN12MSCR_TS.name: SEN12MSCR_TS}
#: Every protocol by name (what a ``summary.json`` may name).
ALL_PROTOCOLS: Final[dict[str, EvalProtocol]] = PROTOCOLS | SERIES_PROTOCOLS


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


def centre_window(x: Any, crop: int | None) -> Any:
    """Centre ``crop x crop`` window of the last two axes of an array (the whole array for
    None): the window a protocol's metrics see (:attr:`EvalProtocol.crop`)."""
    if crop is None:
        return x
    h, w = x.shape[-2:]
    if crop > h or crop > w:
        raise ValueError(
            f"the protocol's {crop}x{crop} centre crop is larger than the {h}x{w} patches; "
            "use a protocol without a crop (e.g. 'paper') for these patches"
        )
    r, c = (h - crop) // 2, (w - crop) // 2
    return x[..., r : r + crop, c : c + crop]
