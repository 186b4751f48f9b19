"""Test GRD products made from sarsen's test product in ``../shared/data/s1grd`` (its real
annotation, calibration and noise tables; its measurement is zeros): a copy whose measurement
holds the DN a test writes (sparse tiled GeoTIFFs: only the written tiles take space), with a
VH made from the VV tables where a test needs both polarisations."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

NAME = "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"
LINES, SAMPLES = 16705, 26102


def source(shared: Path) -> Path:
    return shared / "s1grd" / NAME


def make(
    shared: Path, dst: Path, dn: Mapping[str, list[tuple[int, int, np.ndarray]]],
    pols: tuple[str, ...] = ("vv", "vh"),
) -> Path:  # fmt: skip
    """A SAFE copy under ``dst`` whose measurement of each of ``pols`` holds zeros but for the
    blocks ``dn[pol] = [(line0, pixel0, (h, w) uint16), ...]``; returns its folder."""
    import rasterio

    src = source(shared)
    safe = dst / NAME
    for f in src.rglob("*.xml"):
        rel = f.relative_to(src)
        for pol in pols:
            out = safe / str(rel).replace("-vv-", f"-{pol}-")
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, out)
    shutil.copyfile(src / "manifest.safe", safe / "manifest.safe")
    (safe / "measurement").mkdir(exist_ok=True)
    for pol in pols:
        stem = next((safe / "annotation").glob(f"s1b-iw-grd-{pol}-*.xml")).stem
        prof = {"driver": "GTiff", "width": SAMPLES, "height": LINES, "count": 1,
                "dtype": "uint16", "tiled": True, "blockxsize": 256, "blockysize": 256,
                "SPARSE_OK": True, "compress": "deflate"}  # fmt: skip
        with warnings.catch_warnings():  # a GRD measurement has no transform: its annotation
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(safe / "measurement" / f"{stem}.tiff", "w", **prof) as ds:
                for line0, pixel0, block in dn.get(pol, []):
                    ds.write(block[None], window=rasterio.windows.Window(
                        pixel0, line0, block.shape[1], block.shape[0]))  # fmt: skip
    return safe


def has_geoid_grid(name: str) -> bool:
    """Whether PROJ has the geoid grid ``name`` (e.g. ``us_nga_egm96_15.tif``) here."""
    import pyproj

    return any((Path(d) / name).is_file()
               for d in (pyproj.datadir.get_data_dir(), pyproj.datadir.get_user_data_dir()))  # fmt: skip
