"""A Sentinel-1 GRD product: where its annotation, calibration, noise and measurement of each
polarisation are, and the few numbers of its geometry (ESA's product specification,
S1-RS-MDA-52-7441).

Three ways in, one :class:`GrdProduct` out:

- a ``.SAFE`` folder (or its ``manifest.safe``), files found by the SAFE's naming
  (``annotation/s1?-iw-grd-vv-*.xml``, ``annotation/calibration/{calibration,noise}-*.xml``,
  ``measurement/*.tiff``);
- a zipped SAFE (the XML members are extracted to a temporary folder, the measurement is read
  in place through GDAL's ``/vsizip/``);
- a STAC item of a GRD (Planetary Computer's and CDSE's ``sentinel-1-grd``: the measurement
  COGs and the product's XML as assets): :func:`from_item` downloads the XML.

Only IW GRD (GRDH / GRDM) is taken: SEN12MS-CR's Sentinel-1 is Earth Engine's
``COPERNICUS/S1_GRD`` of IW products. SLC and EW products are refused by name.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.errors import DataError

#: The polarisations SEN12MS-CR's S1 holds, in its band order.
POLARISATIONS: Final[tuple[str, str]] = ("VV", "VH")


@dataclass(frozen=True)
class PolFiles:
    """One polarisation's files: XML as local paths, the measurement as a GDAL path or URL."""

    annotation: Path
    calibration: Path
    noise: Path
    measurement: str


@dataclass
class GrdProduct:
    """A GRD product's files and geometry.

    Attributes:
        name: the product name (``S1B_IW_GRDH_1SDV_...``).
        pols: ``{"VV": PolFiles, "VH": PolFiles}``, the polarisations present.
        mode, product_type, orbit_pass: ``"IW"``, ``"GRD"``, ``"Descending"``.
        first_line_time: UTC time of image line 0 (numpy datetime64[ns]).
        azimuth_time_interval: time between lines, s.
        range_pixel_spacing: ground-range spacing of the columns, m.
        lines, samples: the image size.
    """

    name: str
    pols: dict[str, PolFiles]
    mode: str
    product_type: str
    orbit_pass: str
    first_line_time: np.datetime64
    azimuth_time_interval: float
    range_pixel_spacing: float
    lines: int
    samples: int
    _tmp: Any = field(default=None, repr=False)  # a TemporaryDirectory kept alive

    @property
    def annotation(self) -> Path:
        """The annotation of the first polarisation (geometry is the same for both)."""
        return next(iter(self.pols.values())).annotation


def _text(root: ET.Element, path: str, where: Path) -> str:
    node = root.find(path)
    if node is None or node.text is None:
        raise DataError(where, f"no {path} in the annotation", "a Sentinel-1 product annotation")
    return node.text.strip()


def _from_files(name: str, pols: dict[str, PolFiles], tmp: Any = None) -> GrdProduct:
    """Check what the product is and read its geometry from the first annotation."""
    if not pols:
        raise DataError(None, f"{name}: no annotation found",
                        "a Sentinel-1 GRD product (.SAFE folder, its .zip, or a STAC item)")  # fmt: skip
    ann = next(iter(pols.values())).annotation
    root = ET.parse(ann).getroot()
    product_type = _text(root, "adsHeader/productType", ann)
    mode = _text(root, "adsHeader/mode", ann)
    if product_type != "GRD":
        raise DataError(
            ann, f"{name} is a {product_type} product",
            "a GRD product (GRDH or GRDM): Earth Engine's S1_GRD, hence SEN12MS-CR, is made "
            "from GRD; an SLC must first be made into GRD (e.g. ESA SNAP's S1 TOPS Deburst and "
            "Multilook), cloudfree does not do that",
        )  # fmt: skip
    if mode != "IW":
        raise DataError(
            ann, f"{name} is a {mode} product",
            "an IW (Interferometric Wide swath) product: SEN12MS-CR's S1 is IW, 10 m; EW and SM "
            "differ in resolution and noise and no model here saw them",
        )  # fmt: skip
    first = np.datetime64(_text(root, "imageAnnotation/imageInformation/productFirstLineUtcTime",
                                ann), "ns")  # fmt: skip
    return GrdProduct(
        name=name, pols=pols, mode=mode, product_type=product_type,
        orbit_pass=_text(root, "generalAnnotation/productInformation/pass", ann),
        first_line_time=first,
        azimuth_time_interval=float(_text(
            root, "imageAnnotation/imageInformation/azimuthTimeInterval", ann)),
        range_pixel_spacing=float(_text(
            root, "imageAnnotation/imageInformation/rangePixelSpacing", ann)),
        lines=int(_text(root, "imageAnnotation/imageInformation/numberOfLines", ann)),
        samples=int(_text(root, "imageAnnotation/imageInformation/numberOfSamples", ann)),
        _tmp=tmp,
    )  # fmt: skip


_ANN = re.compile(r"^s1[abcd]-(?P<swath>[a-z0-9]+)-(?P<type>[a-z]+)-(?P<pol>[hv][hv])-.*\.xml$")


def _safe_pols(names: list[str], locate: Any) -> dict[str, PolFiles]:
    """``{POL: PolFiles}`` from the member names of a SAFE (folder or zip); ``locate(member,
    kind)`` gives the path of a member (kind ``"xml"``: a local file; ``"tiff"``: GDAL's)."""
    pols: dict[str, PolFiles] = {}
    for n in sorted(names):
        parts = n.split("/")
        if len(parts) < 2 or parts[-2] != "annotation":
            continue
        m = _ANN.match(parts[-1])
        if m is None:
            continue
        stem = parts[-1][:-4]
        base = "/".join(parts[:-2])
        base = f"{base}/" if base else ""
        cal = f"{base}annotation/calibration/calibration-{stem}.xml"
        noise = f"{base}annotation/calibration/noise-{stem}.xml"
        meas = f"{base}measurement/{stem}.tiff"
        for need in (cal, noise, meas):
            if need not in names:
                raise DataError(None, f"the product has {n} but not {need}",
                                "a complete SAFE (annotation, calibration, noise, measurement)")  # fmt: skip
        pols[m.group("pol").upper()] = PolFiles(locate(n, "xml"), locate(cal, "xml"),
                                                locate(noise, "xml"), locate(meas, "tiff"))  # fmt: skip
    order = {p: i for i, p in enumerate(POLARISATIONS)}
    return {p: pols[p] for p in sorted(pols, key=lambda p: (order.get(p, len(order)), p))}


def open_grd(path: str | os.PathLike[str]) -> GrdProduct:
    """A GRD product from its ``.SAFE`` folder, its ``manifest.safe`` or its ``.zip``.

    Raises:
        DataError: not a Sentinel-1 product, an SLC or EW product, files missing.
    """
    p = Path(path)
    if p.name == "manifest.safe":
        p = p.parent
    if not p.exists():
        raise DataError(p, "does not exist", "a GRD product's .SAFE folder, its manifest.safe, "
                        "its .zip, or a STAC item (.json or URL)")  # fmt: skip
    if p.is_dir():
        names = [f.relative_to(p).as_posix() for f in p.rglob("*") if f.is_file()]
        return _from_files(p.name.removesuffix(".SAFE"),
                           _safe_pols(names, lambda n, kind: p / n if kind == "xml" else str(p / n)))  # fmt: skip
    if p.suffix.lower() == ".zip" and p.is_file():
        tmp = tempfile.TemporaryDirectory(prefix="cloudfree-s1-")
        with zipfile.ZipFile(p) as z:
            names = z.namelist()

            def locate(n: str, kind: str) -> Any:
                if kind == "tiff":
                    return f"/vsizip/{p.resolve()}/{n}"
                out = Path(tmp.name) / n
                out.parent.mkdir(parents=True, exist_ok=True)
                with z.open(n) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                return out

            pols = _safe_pols(names, locate)
        name = next((n.split("/")[0] for n in names if n.endswith(".SAFE/manifest.safe")), p.stem)
        return _from_files(name.removesuffix(".SAFE"), pols, tmp)
    raise DataError(p, "not a Sentinel-1 product",
                    "a GRD product's .SAFE folder, its manifest.safe, or its .zip")  # fmt: skip


#: Roles / key fragments of a GRD item's XML assets, per kind (Planetary Computer:
#: ``schema-product-vv``, ``schema-calibration-vv``, ``schema-noise-vv``; CDSE's SAFE-like
#: items: ``annotation-vv``, ``calibration-vv``, ``noise-vv``).
_ITEM_KINDS: Final[dict[str, tuple[str, ...]]] = {
    "annotation": ("schema-product", "annotation", "product"),
    "calibration": ("schema-calibration", "calibration"),
    "noise": ("schema-noise", "noise"),
}


def from_item(item: Mapping[str, Any], download: Any = None) -> GrdProduct:
    """A GRD product from a STAC item dict whose assets are the measurements (``vv``, ``vh``)
    and each polarisation's annotation, calibration and noise XML.

    Args:
        download: ``download(href, path)`` fetching an asset to a local file (default:
            ``urllib``; hrefs are expected signed where the catalogue needs it).
    """
    assets: Mapping[str, Mapping[str, Any]] = item.get("assets", {})
    tmp = tempfile.TemporaryDirectory(prefix="cloudfree-s1-")
    download = download or _download
    pols: dict[str, PolFiles] = {}
    for pol in POLARISATIONS:
        meas = next((a for k, a in assets.items() if k.lower() == pol.lower()), None)
        if meas is None:
            continue
        xml: dict[str, Path] = {}
        for kind, keys in _ITEM_KINDS.items():
            key = next((k for frag in keys for k in assets
                        if k.lower() == f"{frag}-{pol.lower()}"), None)  # fmt: skip
            if key is None:
                raise DataError(None, f"GRD item {item.get('id')} has a {pol} measurement but "
                                f"no {kind} XML asset", "assets like schema-product-vv, "
                                "schema-calibration-vv, schema-noise-vv")  # fmt: skip
            xml[kind] = Path(tmp.name) / f"{key}.xml"
            download(str(assets[key]["href"]), xml[kind])
        pols[pol] = PolFiles(xml["annotation"], xml["calibration"], xml["noise"],
                             str(meas["href"]))  # fmt: skip
    return _from_files(str(item.get("id")), pols, tmp)


def _download(href: str, path: Path) -> None:
    from urllib.request import urlopen

    from cloudfree.io import atomic_path

    try:
        with urlopen(href, timeout=60) as r, atomic_path(path) as tmp:  # noqa: S310 - item's
            Path(tmp).write_bytes(r.read())
    except OSError as e:
        raise DataError(None, f"cannot download {href}: {e}", "a reachable asset (signed where "
                        "the catalogue needs it)") from e  # fmt: skip
