"""Named weights: one table of every model checkpoint cloudfree knows, addressable by name.

Every place that accepts a checkpoint (``predict``, ``evaluate``, ``compare``, ``view``,
``train --init``, the Python API through :func:`cloudfree.methods.load.load_method`)
accepts the name of an entry of :data:`WEIGHTS`, e.g. ``cloudfree predict --checkpoint
dsen2cr-sar-carl``. Two kinds of entries:

- **bundled**: small demonstration models shipped inside the package (``bundled/``, described in
  ``bundled/MODEL_CARD.md``), always available;
- **published**: the four DSen2-CR checkpoints of Meraner et al. (2020), Keras 2.2 HDF5 files on
  the authors' Google Drive, and UnCRtainTS's mono-temporal L2 checkpoint (Ebel et al. 2023), a
  ``model.pth.tar`` + ``conf.json`` in the authors' pCloud folder. ``cloudfree weights fetch NAME`` downloads one into the user cache
  (:mod:`cloudfree.weights.cache`), checks it and converts it to safetensors once
  (:mod:`cloudfree.weights.fetch`); ``cloudfree weights import FILE --name NAME`` does the same
  for a file downloaded by hand.

Each entry says what a user needs to judge the weights: the model and its input, where the
file comes from and in which format, its size and SHA-256 where known (checked by the test
suite for the bundled files, on every fetch for the others), the licence, the citation, the
scaling it expects and what it is for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cloudfree.config import model_family
from cloudfree.errors import DataError

#: Folder of the weights shipped inside the package.
BUNDLED_DIR: Final[Path] = Path(__file__).parent / "bundled"
#: The bundled weights' model card.
MODEL_CARD: Final[Path] = BUNDLED_DIR / "MODEL_CARD.md"

_CITATION_DSEN2CR = (
    "Meraner, Ebel, Zhu, Schmitt, 'Cloud removal in Sentinel-2 imagery using a deep residual "
    "neural network and SAR-optical data fusion', ISPRS J. Photogramm. Remote Sens. 166 (2020)"
)
_CITATION_HYBRID = (
    _CITATION_DSEN2CR + "; the hybrid (inpainting, then DSen2-CR SAR fusion): cloudfree"
)
_CITATION_PUBLISHED = (
    _CITATION_DSEN2CR + "; data: Ebel, Meraner, Schmitt, Zhu, 'Multisensor data fusion for cloud "
    "removal in global and all-season Sentinel-2 imagery', IEEE TGRS 59 (2021)"
)
#: What GPL-3.0 means for the published weights (README, ``weights show``, the model card).
LICENCE_PUBLISHED: Final[str] = (
    "GPL-3.0, the licence of the authors' repository ameraner/dsen2-cr, which says it holds "
    "'the code and models'; no separate licence is given for the weights. cloudfree does not "
    "redistribute them: 'weights fetch' downloads them from the authors' Google Drive link. "
    "What this means: you may use them for any purpose, commercial included, and the "
    "predictions you make with them are yours; if you share the weights, converted or "
    "fine-tuned from them ('train --init'), share them under GPL-3.0 with this notice and the "
    "citation. cloudfree's own code stays Apache-2.0: it does not contain the weights. "
    "Trained on SEN12MS-CR (CC BY 4.0, cite Ebel et al. 2021)"
)
_HOMEPAGE = "https://github.com/ameraner/dsen2-cr"
#: The paper's network (spec section 4): B = 16 residual blocks of F = 256 features.
_PAPER_SAR: Final[Mapping[str, Any]] = {"include_sar": True, "num_layers": 16, "feature_size": 256}
_PAPER_NOSAR: Final[Mapping[str, Any]] = {**_PAPER_SAR, "include_sar": False}
_LICENCE_BUNDLED = (
    "Apache-2.0 (cloudfree's licence); trained on Copernicus Sentinel data and SEN12MS-CR "
    "(CC BY 4.0) and Sen1Floods11 patches"
)


@dataclass(frozen=True)
class WeightsEntry:
    """One named checkpoint.

    Attributes:
        name: the name users type (``--checkpoint NAME``).
        model: its ``cloudfree.models`` registry name (``dsen2cr``, ``hybrid-nosar``, ...).
        input: what it reads, in words.
        source: ``"bundled"`` (a file of the package), the URL it is downloaded from (a Google
            Drive ``uc?id=`` link or any HTTP(S) URL), or ``"local"`` (imported by the user
            under a name of their own, ``cloudfree weights import``).
        filename: the file's name: in :data:`BUNDLED_DIR` for bundled weights, the name of the
            downloaded file otherwise (kept only until it is converted).
        size_bytes: expected size of that file, or None if unknown.
        sha256: expected SHA-256 of that file, or None if unknown (then the file is checked by
            format and structure, and the SHA-256 of the first download is recorded and shown).
        licence: licence of the weights, and of what they were trained on.
        citation: what to cite when using them.
        scaling: the normalisation protocol of its inputs (``cloudfree.bands``).
        description: what it is for, in one line.
        format: the file format: ``"safetensors"`` (loads as is), ``"keras-hdf5"`` (a Keras
            2.2 checkpoint, converted to safetensors once, :mod:`cloudfree.models.keras_import`)
            or ``"uncrtaints-pth"`` (an UnCRtainTS ``model.pth.tar`` with its ``conf.json``,
            :mod:`cloudfree.models.uncrtaints_import`; ``filename`` is then the experiment's
            folder in the pCloud folder ``source``).
        config: the model's constructor arguments (``DSen2CRConfig`` fields): what a download
            must hold, and what ``train --init`` checks a training config against.
        homepage: where the weights are described by their authors.
        nosar: the entry of the same recipe without S1 (for a SAR entry): what ``predict``
            uses for pixels that S1 does not cover, unless ``--checkpoint-nosar`` says.
    """

    name: str
    model: str
    input: str
    source: str
    filename: str
    size_bytes: int | None
    sha256: str | None
    licence: str
    citation: str
    scaling: str
    description: str
    format: str = "safetensors"
    config: Mapping[str, Any] = field(default_factory=dict)
    homepage: str = ""
    nosar: str | None = None

    @property
    def bundled(self) -> bool:
        """Whether the file ships with the package."""
        return self.source == "bundled"

    @property
    def local(self) -> bool:
        """Whether the user imported these weights under a name of their own."""
        return self.source == LOCAL

    @property
    def approx_bytes(self) -> int | None:
        """``size_bytes``, else the float32 size of ``config``'s parameters (a lower bound)."""
        if self.size_bytes is not None or not self.config:
            return self.size_bytes
        if model_family(self.model) != "dsen2cr":
            return None  # UnCRtainTS: its size is in its conf.json; the others: not recorded
        from cloudfree.models.dsen2cr import DSen2CRConfig

        return 4 * DSen2CRConfig(**self.config).num_parameters

    def path(self) -> Path:
        """The local safetensors file of these weights.

        Raises:
            DataError: a bundled file is missing (an incomplete installation), or downloadable
                weights are not in the cache yet (the message gives the fetch command).
        """
        if not self.bundled:
            from cloudfree.weights.cache import cached_path

            path = cached_path(self.name)
            if path is None and self.source == LOCAL:
                raise DataError(
                    None,
                    f"the weights {self.name!r} you imported are no longer in the cache; "
                    f"import them again: cloudfree weights import FILE --name {self.name}",
                )
            if path is None:
                by_hand = f"{self.filename} --name {self.name}"
                if self.format == "uncrtaints-pth":
                    by_hand = (f"{self.filename}/model.pth.tar --conf {self.filename}/conf.json "
                               f"--name {self.name}")  # fmt: skip
                raise DataError(
                    None,
                    f"the weights {self.name!r} are not downloaded yet; run: cloudfree weights "
                    f"fetch {self.name}  (on a machine without internet: download "
                    f"{self.source} in a browser, then run: cloudfree weights import "
                    f"{by_hand})",
                )
            return path
        path = BUNDLED_DIR / self.filename
        if not path.is_file():
            raise DataError(
                path,
                f"the bundled weights {self.name!r} are missing from this installation",
                "the file shipped with cloudfree (reinstall the package, or pass --checkpoint "
                "with your own weights / a training run folder)",
            )
        return path


_CITATION_UNCRTAINTS = (
    "Ebel, Garnot, Schmitt, Wegner, Zhu, 'UnCRtainTS: Uncertainty Quantification for Cloud "
    "Removal in Optical Satellite Time Series', CVPR Workshops (EarthVision) 2023"
)
#: The public pCloud folder of the UnCRtainTS checkpoints (linked from the upstream README).
UNCRTAINTS_PCLOUD: Final[str] = (
    "https://u.pcloud.link/publink/show?code=kZsdbk0Z5Y2Y2UEm48XLwOvwSVlL8R2L3daV"
)
LICENCE_UNCRTAINTS: Final[str] = (
    "MIT, the licence of the authors' repository PatrickTUM/UnCRtainTS (its code states it; no "
    "separate licence is given for the checkpoints). cloudfree does not redistribute them: "
    "'weights fetch' downloads them from the authors' pCloud folder. Trained on SEN12MS-CR "
    "(CC BY 4.0, cite Ebel et al. 2021)"
)

#: Every named checkpoint, in the order ``list_weights`` shows them. The bundled models share one
#: split and data (``scripts/train_bundled.sh``, fold A; ``bundled/MODEL_CARD.md``): the four
#: DSen2-CR/hybrid ones one recipe, the two UnCRtainTS ones UnCRtainTS's loss and optimiser.
WEIGHTS: Final[tuple[WeightsEntry, ...]] = (
    WeightsEntry(
        name="hybrid-sar",
        model="hybrid",
        input="cloudy S2 L1C (13 bands) + S1 (VV, VH dB); mask-fill inpainting inside",
        source="bundled",
        filename="hybrid_sar.safetensors",
        size_bytes=739996,
        sha256="9dc1772cae30caa9c214292c49387fed77c7bf02b3b4f0e8540ffc0e7fccb779",
        licence=_LICENCE_BUNDLED,
        citation=_CITATION_HYBRID,
        scaling="dsen2cr",
        description="demonstration hybrid (mask-fill inpainting, then DSen2-CR B4 F48 with SAR, "
        "CARL) trained on a few hundred real sample patches (model card): the default SAR model of predict; not for real use",
        nosar="hybrid-nosar",
    ),
    WeightsEntry(
        name="hybrid-nosar",
        model="hybrid-nosar",
        input="cloudy S2 L1C (13 bands); mask-fill inpainting inside",
        source="bundled",
        filename="hybrid_nosar.safetensors",
        size_bytes=736548,
        sha256="1f6987cee8ef172a491dd012c2ecc8730b8ac9f8d3e04b4c28ee2421a4391bb4",
        licence=_LICENCE_BUNDLED,
        citation=_CITATION_HYBRID,
        scaling="dsen2cr",
        description="demonstration hybrid (mask-fill inpainting, then DSen2-CR B4 F48 without "
        "SAR, CARL) trained on a few hundred real sample patches (model card): the default no-SAR model; not for real use",
    ),
    WeightsEntry(
        name="dsen2cr-demo-sar",
        model="dsen2cr",
        input="cloudy S2 L1C (13 bands) + S1 (VV, VH dB)",
        source="bundled",
        filename="dsen2cr_demo_sar.safetensors",
        size_bytes=715708,
        sha256="61a4891d10a11b06c34700ff463bf86a866d9cf5f8126553e27924cf1cc594f3",
        licence=_LICENCE_BUNDLED,
        citation=_CITATION_DSEN2CR,
        scaling="dsen2cr",
        description="demonstration DSen2-CR (B4 F48, SAR + CARL), the hybrid's recipe without "
        "the inpainting, trained on a few hundred real sample patches (model card): not for real use",
        nosar="dsen2cr-demo-nosar",
    ),
    WeightsEntry(
        name="dsen2cr-demo-nosar",
        model="dsen2cr-nosar",
        input="cloudy S2 L1C (13 bands)",
        source="bundled",
        filename="dsen2cr_demo_nosar.safetensors",
        size_bytes=712260,
        sha256="4dea9a09000e3f10ab4246d2ae5f645dae98bf8b6422c987cd6c622ca2d9e5a0",
        licence=_LICENCE_BUNDLED,
        citation=_CITATION_DSEN2CR,
        scaling="dsen2cr",
        description="demonstration DSen2-CR (B4 F48, no SAR, CARL), the hybrid's recipe without "
        "the inpainting, trained on a few hundred real sample patches (model card): not for real use",
    ),
    WeightsEntry(
        name="uncrtaints-demo-sar",
        model="uncrtaints",
        input="cloudy S2 L1C (13 bands) + S1 (VV, VH dB)",
        source="bundled",
        filename="uncrtaints_demo_sar.safetensors",
        size_bytes=116928,
        sha256="c4d283f65888813590cae1967063e224f47e8f69925c8381b7b2cc4af16fef49",
        licence=_LICENCE_BUNDLED,
        citation=_CITATION_UNCRTAINTS,
        scaling="reflectance",
        description="demonstration UnCRtainTS (W 32, 1 + 3 MBConv blocks, SAR, Gaussian NLL: "
        "mean and per-band variance) trained on a few hundred real sample patches (model card): predict --uncertainty-out out "
        "of the box; not for real use",
        nosar="uncrtaints-demo-nosar",
    ),
    WeightsEntry(
        name="uncrtaints-demo-nosar",
        model="uncrtaints-nosar",
        input="cloudy S2 L1C (13 bands)",
        source="bundled",
        filename="uncrtaints_demo_nosar.safetensors",
        size_bytes=116680,
        sha256="56c0b7ba818d3128a83e8bafca63e5a8e43efc3505e725b9e63fde9d636f5d4c",
        licence=_LICENCE_BUNDLED,
        citation=_CITATION_UNCRTAINTS,
        scaling="reflectance",
        description="demonstration UnCRtainTS (W 32, 1 + 3 MBConv blocks, no SAR, Gaussian NLL: "
        "mean and per-band variance) trained on a few hundred real sample patches (model card): not for real use",
    ),
    *(
        WeightsEntry(
            name=name,
            model="dsen2cr" if sar else "dsen2cr-nosar",
            input="cloudy S2 L1C (13 bands) + S1 (VV, VH dB)"
            if sar
            else "cloudy S2 L1C (13 bands)",
            source=f"https://drive.google.com/uc?id={drive_id}",
            filename=filename,
            # Unknown: the authors publish neither; every fetch checks the format and the
            # exact layer shapes of the paper's network instead, and records the SHA-256.
            size_bytes=None,
            sha256=None,
            licence=LICENCE_PUBLISHED,
            citation=_CITATION_PUBLISHED,
            scaling="dsen2cr",
            description=description,
            format="keras-hdf5",
            config=_PAPER_SAR if sar else _PAPER_NOSAR,
            homepage=_HOMEPAGE,
            nosar=name.replace("-sar-", "-nosar-") if sar else None,
        )
        for name, sar, drive_id, filename, description in (
            (
                "dsen2cr-sar-carl",
                True,
                "1L3YUVOnlg67H5VwlgYO9uC9iuNlq7VMg",
                "model_SARcarl.hdf5",
                "the paper's model (Table 1, SAR + CARL: MAE .0290, PSNR 28.7 dB, SSIM .875): "
                "DSen2-CR B16 F256 trained on SEN12MS-CR with the cloud-adaptive loss; the one "
                "to use",
            ),
            (
                "dsen2cr-sar-l1",
                True,
                "1zv4_91Yr2IYyYDoqhZw8KpnfvfLhkuBB",
                "model_SARplain.hdf5",
                "the paper's SAR model trained on a plain L1 loss (Table 1, SAR + L1): the loss "
                "ablation",
            ),
            (
                "dsen2cr-nosar-carl",
                False,
                "1VHZa5-lX68mA2FbHeCiQsUq13oECw9DA",
                "model_noSARcarl.hdf5",
                "the paper's optical-only model with the cloud-adaptive loss (Table 1, no SAR + "
                "CARL): for scenes without a Sentinel-1 acquisition",
            ),
            (
                "dsen2cr-nosar-l1",
                False,
                "11Th6UwKMXla7LGxsFJXwj-Jx9bSKlWUH",
                "model_noSARplain.hdf5",
                "the paper's optical-only model on a plain L1 loss (Table 1, no SAR + L1): the "
                "SAR and loss ablation",
            ),
        )
    ),
    WeightsEntry(
        name="uncrtaints-l2",
        model="uncrtaints",
        input="cloudy S2 L1C (13 bands) + S1 (VV, VH dB), as its conf.json says",
        source=UNCRTAINTS_PCLOUD,
        # The experiment folder in the pCloud folder: model.pth.tar and its conf.json.
        filename="monotemporalL2",
        size_bytes=None,
        sha256=None,
        licence=LICENCE_UNCRTAINTS,
        citation=_CITATION_UNCRTAINTS,
        scaling="reflectance",
        description="UnCRtainTS mono-temporal (t = 1), L2 loss, on SEN12MS-CR: the leaderboard's "
        "'UnCRtainTS L2, t=1' (MAE .027, SAM 8.32, PSNR 28.90, SSIM .880); mean only, no "
        "variance; 0.52 M parameters",
        format="uncrtaints-pth",
        # An L2 model has no variance head; the rest is read from its conf.json and checked.
        config={"covmode": None},
        homepage="https://github.com/PatrickTUM/UnCRtainTS",
    ),
    *(
        WeightsEntry(
            name=name,
            model="uncrtaints-mt",
            input="3 dates of cloudy S2 L1C (13 bands) + S1 (VV, VH dB) and their days, as its "
            "conf.json says",
            source=UNCRTAINTS_PCLOUD,
            filename=folder,
            size_bytes=None,
            sha256=None,
            licence=LICENCE_UNCRTAINTS.replace("SEN12MS-CR (", "SEN12MS-CR-TS and SEN12MS-CR ("),
            citation=_CITATION_UNCRTAINTS,
            scaling="reflectance",
            description=description,
            format="uncrtaints-pth",
            config=config,
            homepage="https://github.com/PatrickTUM/UnCRtainTS",
        )
        for name, folder, config, description in (
            (
                "uncrtaints-mt-nll",
                # The first of the five ensemble members upstream's ensemble_reconstruct.py reads
                # (diagonal_1 ... diagonal_5); the folder name is not verified from here.
                "diagonal_1",
                {"covmode": "diag"},
                "UnCRtainTS multi-temporal (t = 3), diagonal Gaussian NLL, on SEN12MS-CR-TS: the "
                "benchmark's 'UnCRtainTS sigma' (RMSE .051, SAM 10.16, PSNR 27.84, SSIM .866); "
                "mean and per-band variance; 0.57 M parameters. If the fetch says the folder is "
                "not there, it lists the folders that are: import one with 'weights import'",
            ),
            (
                "uncrtaints-mt-l2",
                "multitemporalL2",
                {"covmode": None},
                "UnCRtainTS multi-temporal (t = 3), L2 loss, on SEN12MS-CR-TS: the benchmark's "
                "'UnCRtainTS L2' (RMSE .049, SAM 10.17, PSNR 27.23, SSIM .859); mean only; "
                "folder name by analogy with the mono-temporal one (not verified from here)",
            ),
        )
    ),
)


#: ``source`` of the entries a user added with ``cloudfree weights import`` under a new name.
LOCAL: Final[str] = "local"


def _input_of(model: str, config: Mapping[str, Any]) -> str:
    sar = bool(config.get("include_sar", "nosar" not in model))
    text = "cloudy S2 L1C (13 bands)" + (" + S1 (VV, VH dB)" if sar else "")
    return text + ("; inpainting inside" if model_family(model) == "hybrid" else "")


def _local_entry(name: str, record: Mapping[str, Any]) -> WeightsEntry:
    """The entry of weights imported under a name of the user's (from their cache record)."""
    model = str(record.get("model", "?"))
    config = record.get("config") or {}
    return WeightsEntry(
        name=name,
        model=model,
        input=_input_of(model, config),
        source=LOCAL,
        filename=Path(str(record.get("source", ""))).name,
        size_bytes=record.get("size_bytes"),
        sha256=record.get("sha256"),
        licence="whatever the weights' authors gave (imported by you; cloudfree cannot tell)",
        citation="",
        scaling=str(record.get("scaling", "dsen2cr")),
        description=f"imported from {record.get('source')} on {record.get('fetched_at', '?')}",
        config=config,
    )


def list_weights() -> tuple[WeightsEntry, ...]:
    """Every entry of :data:`WEIGHTS`, then the user's own imports (``weights import``)."""
    from cloudfree.weights.cache import cached_records

    registered = {w.name for w in WEIGHTS}
    local = tuple(
        _local_entry(name, record)
        for name, record in cached_records().items()
        if record.get("local") and name not in registered
    )
    return WEIGHTS + local


def get_weights(name: str) -> WeightsEntry:
    """The entry called ``name`` (of :data:`WEIGHTS`, or imported by the user).

    Raises:
        KeyError: no such entry (the message suggests the closest names).
    """
    entries = list_weights()
    for entry in entries:
        if entry.name == name:
            return entry
    import difflib

    names = [w.name for w in entries]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise KeyError(f"no weights named {name!r}{hint} (known: {', '.join(names)})")


def find_weights(name: str) -> Path | None:
    """The local file of the weights called ``name``, or None if ``name`` is no entry.

    Raises:
        DataError: ``name`` is an entry whose file is not there (not fetched yet: the message
            gives the command that fetches it).
    """
    for entry in list_weights():
        if entry.name == name:
            return entry.path()
    return None
