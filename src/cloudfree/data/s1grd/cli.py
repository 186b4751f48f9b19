"""``cloudfree s1``: a Sentinel-1 GRD product -> VV, VH sigma0 dB on a Sentinel-2 grid
(:mod:`cloudfree.data.s1grd.terrain`).

Only light imports at module level: ``cloudfree --help`` builds every parser."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cloudfree.errors import CloudfreeError

#: The catalogues a DEM is fetched from when --dem is not given (Copernicus DEM GLO-30).
DEM_CATALOGS = ("earth-search", "planetary-computer")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``cloudfree s1``."""
    from cloudfree.data.s1grd.dem import HEIGHTS

    p = sub.add_parser(
        "s1",
        help="make Sentinel-1 as the SAR models saw it in training: a GRD product to VV, VH "
        "sigma0 dB on a Sentinel-2 image's grid",
        description=(
            "Thermal noise removal (range and azimuth noise tables), calibration to sigma0, "
            "range-Doppler terrain correction on a DEM (bilinear), dB: the steps of Earth "
            "Engine's COPERNICUS/S1_GRD, from which SEN12MS-CR's S1 comes. Only the part of "
            "the swath under --like is read. Extra: pip install 'cloudfree[s1]'."
        ),
    )
    p.add_argument("product", help="a GRD product: its .SAFE folder, its .zip, or a STAC item "
                   "(.json file or URL) of a sentinel-1-grd collection")  # fmt: skip
    p.add_argument("--like", required=True, help="the Sentinel-2 image whose grid to write on")
    p.add_argument("--out", required=True, help="output GeoTIFF (VV, VH dB, float32, NaN nodata)")
    p.add_argument("--dem", default=None,
                   help="a DEM covering --like (any GDAL-readable file); default: Copernicus "
                   "DEM GLO-30 fetched from --dem-catalog")  # fmt: skip
    p.add_argument("--dem-catalog", default="earth-search", metavar="NAME_OR_URL",
                   help="STAC catalogue of cop-dem-glo-30 when --dem is not given: earth-search "
                   "(default), planetary-computer, or a STAC API URL")  # fmt: skip
    p.add_argument("--dem-heights", default="auto", choices=HEIGHTS,
                   help="what the DEM's heights are over (auto: its CRS says, else ellipsoid "
                   "with a warning; Copernicus DEM: egm2008; SRTM: egm96)")  # fmt: skip
    p.add_argument("--speckle", action="store_true",
                   help="apply the refined Lee filter (off by default, as in Earth Engine's "
                   "S1_GRD, hence in SEN12MS-CR)")  # fmt: skip
    p.add_argument("--missing-pol", default="error", choices=("error", "nan"),
                   help="a product without VH (or VV): refuse (default) or write that band as "
                   "no data")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def open_product(source: str) -> Any:
    """A :class:`GrdProduct` from a SAFE folder / zip, a STAC item file or a STAC item URL
    (Planetary Computer's are signed)."""
    from cloudfree.data.s1grd.product import from_item, open_grd

    if source.startswith(("http://", "https://")) or source.endswith(".json"):
        if source.startswith(("http://", "https://")):
            from urllib.request import urlopen

            try:
                with urlopen(source, timeout=60) as r:  # noqa: S310 - the user's URL
                    item = json.loads(r.read())
            except (OSError, ValueError) as e:
                raise CloudfreeError(f"cannot read the STAC item {source}: {e}") from e
        else:
            item = json.loads(Path(source).read_text(encoding="utf-8"))
        if item.get("type") != "Feature":
            raise CloudfreeError(f"{source} is not a STAC item (type {item.get('type')!r})")
        if "planetarycomputer" in source or any(
            "blob.core.windows.net" in str(a.get("href", ""))
            for a in item.get("assets", {}).values()
        ):
            try:
                import planetary_computer
            except ImportError as e:
                raise CloudfreeError("Planetary Computer items are signed with "
                                     "planetary-computer: pip install 'cloudfree[stac]'") from e  # fmt: skip
            item = planetary_computer.sign(item)
        return from_item(item)
    return open_grd(source)


def run(args: argparse.Namespace) -> int:
    """Run ``cloudfree s1``."""
    try:
        import sarsen  # noqa: F401
        import xarray_sentinel  # noqa: F401
    except ImportError as e:
        raise CloudfreeError("s1 needs the s1 extra: pip install 'cloudfree[s1]'") from e
    import tempfile

    from cloudfree.data.s1grd.terrain import Grid, correct
    from cloudfree.outputs import check_outputs

    inputs = [args.like, args.dem] + ([args.product] if "://" not in args.product else [])
    check_outputs({"--out": args.out}, inputs=inputs)
    product = open_product(args.product)
    grid = Grid.like(args.like)
    with tempfile.TemporaryDirectory(prefix="cloudfree-dem-") as tmp:
        dem, heights = args.dem, args.dem_heights
        if dem is None:
            from cloudfree.data.s1grd.copdem import fetch_dem

            dem = fetch_dem(grid, Path(tmp) / "dem.tif", args.dem_catalog)
            if heights == "auto":
                heights = "egm2008"  # Copernicus DEM's heights
        info = correct(product, grid, args.out, dem, dem_heights=heights, speckle=args.speckle,
                       missing_pol=args.missing_pol, progress=not args.no_progress)  # fmt: skip
    print(f"{product.name} ({info['date']}): wrote {args.out} (VV, VH sigma0 dB; "
          f"{100 * info['valid_fraction']:.1f} % of the grid in the swath; read "
          f"{info['lines_read']} of {info['lines']} lines)")  # fmt: skip
    return 0
