"""Stack a Sentinel-2 ``.SAFE`` product's per-band JP2 files into one 10 m GeoTIFF.

What users download from the Copernicus Data Space is a ``.SAFE`` folder with one JPEG 2000
file per band at its native resolution (10, 20 or 60 m). cloudfree's models take one raster with
every band on the 10 m grid, in SEN12MS-CR order (``S2_BANDS``: B1..B12 with B8A after B8, uint16
DN = TOA reflectance x 10000), so :func:`stack_safe` builds exactly that:

- **L1C** (``GRANULE/<g>/IMG_DATA/T..._B01.jp2`` ... ``_B12.jp2``): 13 bands.
- **L2A** (``GRANULE/<g>/IMG_DATA/R10m|R20m|R60m/T..._B02_10m.jp2`` ...): sen2cor drops B10
  (cirrus), so the stack has the 12 bands of ``S2_L2A_BANDS`` and a warning says so;
  ``cloudfree predict`` then fills B10 as documented there. Each band is taken at its native
  resolution (``S2_NATIVE_GSD_M``; e.g. B05 from ``R20m``, not the upsampled copy in ``R10m``),
  or the finest one present. L2A is surface reflectance, not the TOA reflectance the published
  models were trained on: expect somewhat worse results than from L1C.

The 20 m and 60 m bands are resampled onto B02's grid (``resampling``, bilinear by default)
through a ``rasterio.vrt.WarpedVRT``, and the output is read and written window by window, so
memory stays flat whatever the scene size (10980 px for a full tile): with 1024 px windows,
~30 MB of arrays plus GDAL's block cache, capped at ``cloudfree.io.GDAL_CACHE_MB``.

No data: DN 0 is the product's no-data value in every band; wherever B02 is 0 every output band
is 0 (one footprint for all bands), and the output declares nodata 0.

Radiometric offset: from processing baseline 04.00 (January 2022) the DN carry an offset
(``RADIO_ADD_OFFSET`` in ``MTD_MSIL1C.xml``, ``BOA_ADD_OFFSET`` in ``MTD_MSIL2A.xml``, usually
-1000): reflectance = (DN + offset) / 10000. SEN12MS-CR (2018) has none, so by default
(``harmonize=True``) the offset is added to every valid pixel (clipped to >= 1 so that no valid
pixel becomes no-data) and the stack is comparable to the training data.
"""

from __future__ import annotations

import contextlib
import re
import time
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.bands import S2_BANDS, S2_DN_PER_REFLECTANCE, S2_L2A_BANDS, S2_NATIVE_GSD_M
from cloudfree.errors import DataError
from cloudfree.io import atomic_path, gdal_cache_env
from cloudfree.overviews import OverviewLevels
from cloudfree.windows import windows

#: Resampling methods accepted for the 20 m / 60 m bands (rasterio ``Resampling`` names).
RESAMPLINGS: tuple[str, ...] = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos")
#: Output block side (pixels) of the tiled GeoTIFF.
BLOCK = 512

_EXPECTED_SAFE = (
    "an unzipped Sentinel-2 .SAFE folder with GRANULE/<granule>/IMG_DATA/ holding one JP2 per "
    "band (L1C: T..._B01.jp2 ...; L2A: R10m/R20m/R60m/T..._B02_10m.jp2 ...)"
)
# T33UVP_20200101T100031_B8A.jp2 (L1C) or T33UVP_20200101T100031_B8A_20m.jp2 (L2A).
_BAND_RE = re.compile(r"_B(?P<band>\d{2}|8A)(?:_(?P<res>\d+)m)?\.(?:jp2|tiff?)$", re.IGNORECASE)
_OFFSET_TAGS = ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET")


@dataclass(frozen=True)
class BandFile:
    """One band's file in the product and its pixel size in metres (from the file)."""

    band: str  # S2_BANDS name, e.g. "B1", "B8A"
    path: Path
    resolution_m: float


@dataclass(frozen=True)
class SafeProduct:
    """What :func:`find_safe_bands` found: the level, the granule and each band's file."""

    safe_dir: Path
    level: str  # "L1C" or "L2A"
    granule: Path
    bands: dict[str, BandFile]  # in output order (S2_BANDS or S2_L2A_BANDS)
    metadata_xml: Path | None  # MTD_MSIL1C.xml / MTD_MSIL2A.xml, None when absent


def _band_name(token: str) -> str:
    """``"01"`` -> ``"B1"``, ``"8A"`` -> ``"B8A"``, ``"10"`` -> ``"B10"``."""
    return "B8A" if token.upper() == "8A" else f"B{int(token)}"


def _pick_granule(safe_dir: Path, granule: str | None) -> Path:
    if safe_dir.suffix.lower() == ".zip" and safe_dir.is_file():
        raise DataError(safe_dir, "is a zipped product", "it unzipped first: " + _EXPECTED_SAFE)
    if not safe_dir.is_dir():
        raise DataError(safe_dir, "is not a folder", _EXPECTED_SAFE)
    granules = sorted(p for p in (safe_dir / "GRANULE").glob("*") if (p / "IMG_DATA").is_dir())
    if not granules:
        raise DataError(
            safe_dir, "is not a Sentinel-2 SAFE folder (no GRANULE/*/IMG_DATA)", _EXPECTED_SAFE
        )
    if granule is not None:
        chosen = [g for g in granules if g.name == granule]
        if not chosen:
            raise DataError(
                safe_dir,
                f"has no granule {granule!r}",
                f"one of {[g.name for g in granules]}",
            )
        return chosen[0]
    if len(granules) > 1:
        # Products before 2016 packed several granules into one SAFE: each is its own grid.
        raise DataError(
            safe_dir,
            f"holds {len(granules)} granules ({', '.join(g.name for g in granules)})",
            "one granule per stack: choose it with granule=NAME (--granule NAME)",
        )
    return granules[0]


def find_safe_bands(safe_dir: str | Path, granule: str | None = None) -> SafeProduct:
    """Find the per-band image files of an L1C or L2A ``.SAFE`` product.

    Args:
        safe_dir: the unzipped ``.SAFE`` folder.
        granule: name of the granule folder to use when the product has several.

    Returns:
        The product: its level, granule, and one :class:`BandFile` per output band.

    Raises:
        DataError: not a SAFE folder, several granules and none chosen, a band missing (all
            missing bands are named) or present twice at the same resolution.
    """
    import rasterio

    safe_dir = Path(safe_dir)
    gdir = _pick_granule(safe_dir, granule)
    img = gdir / "IMG_DATA"
    level = "L2A" if any((img / f"R{r}m").is_dir() for r in (10, 20, 60)) else "L1C"
    wanted = S2_BANDS if level == "L1C" else S2_L2A_BANDS
    pattern = "R*m/*" if level == "L2A" else "*"
    candidates: dict[str, list[BandFile]] = {}
    for path in sorted(img.glob(pattern)):
        m = _BAND_RE.search(path.name)
        if m is None or not path.is_file():
            continue  # TCI, AOT, WVP, SCL, quicklooks: not inputs of the model
        band = _band_name(m["band"])
        try:
            with rasterio.open(path) as ds:
                res = float(abs(ds.transform.a))
        except rasterio.errors.RasterioError as e:
            raise DataError(path, f"cannot open band image: {e}", "a readable JPEG 2000") from e
        candidates.setdefault(band, []).append(BandFile(band, path, res))
    missing = [b for b in wanted if b not in candidates]
    if missing:
        raise DataError(
            img,
            f"{level} product lacks band(s) {', '.join(missing)}",
            f"one image per band {', '.join(wanted)} (is the download complete?)",
        )
    bands: dict[str, BandFile] = {}
    for band in wanted:
        # Native resolution first (resampling an already resampled copy loses detail), then
        # the finest available.
        native = S2_NATIVE_GSD_M[band]
        files = sorted(
            candidates[band], key=lambda f: (abs(f.resolution_m - native) > 1e-6, f.resolution_m)
        )
        if len(files) > 1 and files[0].resolution_m == files[1].resolution_m:
            raise DataError(
                img,
                f"band {band} is present twice at {files[0].resolution_m:g} m: "
                f"{files[0].path.name}, {files[1].path.name}",
                "one file per band and resolution",
            )
        bands[band] = files[0]
    if "B2" not in bands:  # pragma: no cover - B2 is in both band lists
        raise DataError(img, "has no B02", "a B02 image: it defines the 10 m output grid")
    xml = next(iter(sorted(safe_dir.glob("MTD_MSIL*.xml"))), None)
    return SafeProduct(safe_dir, level, gdir, bands, xml)


def read_offsets(metadata_xml: str | Path | None) -> dict[str, float]:
    """Radiometric offsets by band name from a product's ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``.

    ``RADIO_ADD_OFFSET`` (L1C) or ``BOA_ADD_OFFSET`` (L2A) elements carry ``band_id`` 0..12,
    the index of the band in ``S2_BANDS`` order (ESA's order is the same). Products before
    processing baseline 04.00 have none: the result is empty.

    Raises:
        DataError: the XML cannot be parsed or an offset is malformed.
    """
    if metadata_xml is None:
        return {}
    try:
        root = ET.parse(metadata_xml).getroot()
    except (ET.ParseError, OSError) as e:
        raise DataError(
            metadata_xml, f"cannot parse product metadata: {e}", "the product's XML"
        ) from e
    offsets: dict[str, float] = {}
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] not in _OFFSET_TAGS:
            continue
        try:
            band = S2_BANDS[int(el.attrib["band_id"])]
            offsets[band] = float((el.text or "").strip())
        except (KeyError, ValueError, IndexError) as e:
            raise DataError(
                metadata_xml,
                f"malformed {el.tag} element ({el.attrib}, {el.text!r}): {e}",
                "band_id 0..12 and a numeric offset",
            ) from e
    return offsets


def _check_grid(product: SafeProduct, datasets: dict[str, Any]) -> None:
    """Every band must cover B02's footprint in B02's CRS (resolutions may differ)."""
    ref = datasets["B2"]
    tol = 1e-3 * abs(ref.transform.a)
    for band, ds in datasets.items():
        f = product.bands[band]
        if ds.crs != ref.crs:
            raise DataError(
                f.path,
                f"band {band} is in {ds.crs}, B02 in {ref.crs}",
                "every band of a granule in one CRS (is this file from another product?)",
            )
        if any(abs(a - b) > tol for a, b in zip(ds.bounds, ref.bounds, strict=True)):
            raise DataError(
                f.path,
                f"band {band} covers {tuple(ds.bounds)}, B02 covers {tuple(ref.bounds)}",
                "every band of a granule on the same footprint (inconsistent grids)",
            )
        if ds.transform.b != 0 or ds.transform.d != 0:
            raise DataError(f.path, "has a rotated grid", "a north-up grid like every S2 band")


def stack_safe(
    safe_dir: str | Path,
    out: str | Path,
    resampling: str = "bilinear",
    *,
    window: int = 1024,
    granule: str | None = None,
    harmonize: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the 10 m band stack of a Sentinel-2 ``.SAFE`` product as one GeoTIFF.

    Args:
        safe_dir: unzipped ``.SAFE`` folder (L1C or L2A, see the module docstring).
        out: output GeoTIFF; written under a temporary name and renamed when complete, so an
            error leaves no partial file (and any earlier file stays intact).
        resampling: how 20 m and 60 m bands are brought onto the 10 m grid, one of
            ``RESAMPLINGS``.
        window: side in pixels of the blocks read and written (a multiple of 512 keeps the
            writes aligned to the output tiles); memory ~ 13 x 2 x window^2 bytes.
        granule: granule folder name, needed only for old multi-granule products.
        harmonize: add the product's radiometric offset (baseline >= 04.00) so that
            DN = reflectance x 10000 as in SEN12MS-CR; False keeps the raw DN.
        progress: show a progress bar over the windows.

    Returns:
        Summary: ``out``, ``level`` ("L1C"/"L2A"), ``bands`` (names in file order),
        ``width``, ``height``, ``crs`` (text), ``resampling``, ``offsets`` (applied, by band;
        empty when none), ``granule`` and ``seconds``.

    Output: uint16 (13 bands for L1C, 12 for L2A) in ``S2_BANDS`` / ``S2_L2A_BANDS`` order, band
    descriptions set, CRS / transform / size of B02, nodata 0; a COG (512-px blocks, deflate,
    overviews averaged while writing: :mod:`cloudfree.overviews`).

    Raises:
        DataError: not a SAFE folder, a band missing (named), inconsistent grids, unreadable
            files, a bad ``resampling`` or ``window``.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window

    if resampling not in RESAMPLINGS:
        raise DataError(None, f"unknown resampling {resampling!r}", f"one of {RESAMPLINGS}")
    if window < 16:
        raise DataError(None, f"window={window} px", "a window of at least 16 px (e.g. 1024)")
    start = time.perf_counter()
    product = find_safe_bands(safe_dir, granule)
    from cloudfree.outputs import check_outputs

    # Never over a file of the product (a band, its metadata), before any work.
    check_outputs({"--out": out}, [*(b.path for b in product.bands.values()), product.metadata_xml])
    names = list(product.bands)
    if product.level == "L2A":
        warnings.warn(
            f"{product.safe_dir}: L2A product: it has no B10 (cirrus), so the stack has the 12 "
            f"bands {', '.join(names)}; 'cloudfree predict' fills B10 as documented. L2A is "
            "surface reflectance, not the L1C TOA reflectance the models were trained on.",
            stacklevel=2,
        )
    offsets = read_offsets(product.metadata_xml) if harmonize else {}
    if harmonize and product.metadata_xml is None:
        warnings.warn(
            f"{product.safe_dir}: no MTD_MSIL1C.xml / MTD_MSIL2A.xml, so no radiometric offset "
            "is applied (right for processing baselines before 04.00, i.e. before 2022)",
            stacklevel=2,
        )
    offsets = {b: v for b, v in offsets.items() if b in product.bands and v != 0}
    method = Resampling[resampling]

    with contextlib.ExitStack() as stack:
        # GDAL's block cache defaults to 5 % of the RAM and fills up with the blocks of a large
        # scene; a fixed cap keeps the peak memory flat across scene sizes.
        stack.enter_context(rasterio.Env(**gdal_cache_env()))
        datasets: dict[str, Any] = {}
        for band, f in product.bands.items():
            try:
                datasets[band] = stack.enter_context(rasterio.open(f.path))
            except rasterio.errors.RasterioError as e:
                raise DataError(
                    f.path, f"cannot open band image: {e}", "a readable JPEG 2000"
                ) from e
        _check_grid(product, datasets)
        ref = datasets["B2"]
        width, height, crs = int(ref.width), int(ref.height), str(ref.crs)
        sources: dict[str, Any] = {}
        for band, ds in datasets.items():
            if band == "B2" or (
                ds.transform.almost_equals(ref.transform) and ds.shape == ref.shape
            ):
                sources[band] = ds
            else:
                # Warped on the fly, window by window: the source is read only where needed.
                # src_nodata=0 keeps no-data pixels out of the interpolation kernels.
                sources[band] = stack.enter_context(
                    WarpedVRT(
                        ds,
                        crs=ref.crs,
                        transform=ref.transform,
                        width=ref.width,
                        height=ref.height,
                        resampling=method,
                        src_nodata=0,
                        nodata=0,
                    )
                )
        profile = {
            "driver": "GTiff",
            "width": ref.width,
            "height": ref.height,
            "count": len(names),
            "dtype": "uint16",
            "crs": ref.crs,
            "transform": ref.transform,
            "nodata": 0,
            "tiled": True,
            "blockxsize": BLOCK,
            "blockysize": BLOCK,
            "compress": "deflate",
            "predictor": 2,
            "BIGTIFF": "IF_SAFER",
        }
        blocks = list(windows(ref.height, ref.width, window))
        if progress:
            from tqdm import tqdm

            blocks = tqdm(blocks, desc=f"stack {Path(out).name}", unit="window")
        with (
            OverviewLevels(out, profile, window) as levels,
            atomic_path(out, finish=levels.to_cog) as tmp,
            rasterio.open(tmp, "w", **profile) as dst,
        ):
            for i, band in enumerate(names, start=1):
                dst.set_band_description(i, band)
            dst.update_tags(
                source=product.safe_dir.name,
                granule=product.granule.name,
                processing_level=product.level,
                resampling=resampling,
                radiometric_offsets_applied=str(offsets or "none"),
                dn_scale=f"reflectance x {S2_DN_PER_REFLECTANCE:g}",
            )
            for r, c, h, w in blocks:
                win = Window(c, r, w, h)
                cube = np.empty((len(names), h, w), dtype=np.uint16)
                for i, band in enumerate(names):
                    f = product.bands[band]
                    try:
                        arr = sources[band].read(1, window=win)
                    except rasterio.errors.RasterioError as e:
                        raise DataError(
                            f.path,
                            f"cannot read band image (corrupt or truncated?): {e}",
                            "a readable JPEG 2000",
                        ) from e
                    if band in offsets:
                        shifted = arr.astype(np.int32) + int(round(offsets[band]))
                        arr = np.where(arr == 0, 0, np.clip(shifted, 1, 65535))
                    cube[i] = arr
                cube[:, cube[names.index("B2")] == 0] = 0  # one footprint for every band
                dst.write(cube, window=win)
                levels.add(cube, (r, c, h, w))
    return {
        "out": str(out),
        "level": product.level,
        "bands": names,
        "width": width,
        "height": height,
        "crs": crs,
        "resampling": resampling,
        "offsets": offsets,
        "granule": product.granule.name,
        "seconds": round(time.perf_counter() - start, 3),
    }
