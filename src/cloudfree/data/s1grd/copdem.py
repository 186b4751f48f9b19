"""Copernicus DEM GLO-30 for an output grid, from a STAC catalogue (``cop-dem-glo-30`` on Earth
Search, public, and on Planetary Computer, signed): its 1-degree tiles searched over the grid,
mosaicked and warped (bilinear) onto the grid by odc-stac. Heights are over EGM2008 (the DEM's
own definition): ``cloudfree s1`` converts them with PROJ's geoid grid
(:mod:`cloudfree.data.s1grd.dem`).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Final

import numpy as np

from cloudfree.errors import CloudfreeError

COLLECTION: Final[str] = "cop-dem-glo-30"


def fetch_dem(grid: Any, path: str | os.PathLike[str], catalog: str = "earth-search") -> str:
    """Write the DEM of ``grid`` (a :class:`~cloudfree.data.s1grd.terrain.Grid`) to ``path``
    (float32 GeoTIFF on the grid) and return its path.

    Raises:
        CloudfreeError: no extra [stac], the catalogue unreachable, no tile over the grid.
    """
    try:
        import odc.stac
        from odc.geo.geobox import GeoBox
        from pystac_client import Client
    except ImportError as e:
        raise CloudfreeError("a DEM is fetched with the stac extra (pip install "
                             "'cloudfree[stac]'), or give one with --dem") from e  # fmt: skip
    import rasterio
    from rasterio.warp import transform_bounds

    from cloudfree.data.s1grd.terrain import WINDOW
    from cloudfree.data.stac.catalogs import get_catalog, signed
    from cloudfree.io import atomic_path
    from cloudfree.windows import windows

    cat = get_catalog(catalog)
    t = grid.transform
    bounds = (t.c, t.f + grid.height * t.e, t.c + grid.width * t.a, t.f)
    bbox = transform_bounds(grid.crs, "EPSG:4326", *bounds, densify_pts=21)
    try:
        items = list(Client.open(cat.url).search(collections=[COLLECTION], bbox=bbox).items())
    except Exception as e:  # pystac-client's errors vary with the failure
        raise CloudfreeError(f"searching {cat.url} for {COLLECTION} failed: {e}; give a DEM "
                             "with --dem") from e  # fmt: skip
    if not items:
        raise CloudfreeError(f"no {COLLECTION} tile on {cat.url} over {[round(v, 4) for v in bbox]}"
                             ": give a DEM with --dem")  # fmt: skip
    items = signed(items, cat)
    key = "data" if "data" in items[0].assets else next(iter(items[0].assets))
    geobox = GeoBox((grid.height, grid.width), grid.transform, grid.crs)
    profile = {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": 1,
               "dtype": "float32", "nodata": float("nan"), "crs": grid.crs,
               "transform": grid.transform, "tiled": True, "blockxsize": 512,
               "blockysize": 512, "compress": "deflate"}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        # lazy and chunked: the grid is computed and written one window at a time
        dem = odc.stac.load(items, bands=[key], geobox=geobox, resampling="bilinear",
                            dtype="float32", nodata=float("nan"), groupby="time",
                            chunks={"x": WINDOW, "y": WINDOW})[key].isel(time=0).data  # fmt: skip
        with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            for r, c, h, w in windows(grid.height, grid.width, WINDOW):
                block = np.asarray(dem[r : r + h, c : c + w].compute(), np.float32)
                dst.write(block[None], window=rasterio.windows.Window(c, r, w, h))
            dst.update_tags(source=f"{COLLECTION} from {cat.url}: "
                            + ",".join(i.id for i in items), heights="EGM2008")  # fmt: skip
    return os.fspath(path)
