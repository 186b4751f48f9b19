"""Named weights: one table of every model checkpoint cloudfree knows, addressable by name.

Every place that accepts a checkpoint (``predict``, ``evaluate``, ``compare``, the Python API
through :func:`cloudfree.evaluate.methods.load_method`) accepts the name of an entry of
:data:`WEIGHTS`, e.g. ``cloudfree predict --checkpoint hybrid-nosar``. This first version
holds the weights bundled with the package (``bundled/``, described in
``bundled/MODEL_CARD.md``); the published DSen2-CR checkpoints join the table with a source URL
(issue 12).

Each entry says what a user needs to judge the weights: the model and its input, where the
file comes from, its size and SHA-256 (checked by the test suite for the bundled files), the
licence, the citation, the scaling it expects and what it is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

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
    _CITATION_DSEN2CR + "; the hybrid (inpainting, then DSen2-CR SAR fusion): cloudfree, issue 11"
)
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
        source: ``"bundled"`` (a file of the package) or the URL it is downloaded from.
        filename: the file's name (in :data:`BUNDLED_DIR` for bundled weights).
        size_bytes: expected file size, or None if unknown.
        sha256: expected SHA-256 of the file, or None if unknown.
        licence: licence of the weights, and of what they were trained on.
        citation: what to cite when using them.
        scaling: the normalisation protocol of its inputs (``cloudfree.data.bands``).
        description: what it is for, in one line.
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

    @property
    def bundled(self) -> bool:
        """Whether the file ships with the package."""
        return self.source == "bundled"

    def path(self) -> Path:
        """The local file of these weights.

        Raises:
            DataError: a bundled file is missing (an incomplete installation).
        """
        path = BUNDLED_DIR / self.filename
        if not path.is_file():
            raise DataError(
                path,
                f"the bundled weights {self.name!r} are missing from this installation",
                "the file shipped with cloudfree (reinstall the package, or pass --checkpoint "
                "with your own weights / a training run folder)",
            )
        return path


#: Every named checkpoint, in the order ``list_weights`` shows them. The four bundled models
#: share one recipe and one split (``scripts/train_bundled.sh``, fold A; ``bundled/MODEL_CARD.md``).
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
        "CARL) trained on ../shared/data: the default SAR model of predict; not for real use",
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
        "SAR, CARL) trained on ../shared/data: the default no-SAR model; not for real use",
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
        "the inpainting, trained on ../shared/data: not for real use",
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
        "the inpainting, trained on ../shared/data: not for real use",
    ),
)


def list_weights() -> tuple[WeightsEntry, ...]:
    """Every entry of :data:`WEIGHTS`."""
    return WEIGHTS


def get_weights(name: str) -> WeightsEntry:
    """The entry called ``name``.

    Raises:
        KeyError: no such entry (the message suggests the closest names).
    """
    for entry in WEIGHTS:
        if entry.name == name:
            return entry
    import difflib

    names = [w.name for w in WEIGHTS]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise KeyError(f"no weights named {name!r}{hint} (known: {', '.join(names)})")


def find_weights(name: str) -> Path | None:
    """The local file of the weights called ``name``, or None if ``name`` is no entry."""
    for entry in WEIGHTS:
        if entry.name == name:
            return entry.path()
    return None
