"""``cloudfree fetch``: from an area and a period to a series folder that ``predict`` and
``composite`` read.

1. Search (pystac-client) the catalogue's collection over the area and period; items above
   ``max_cloud`` percent (``eo:cloud_cover``) are left out; ``limit`` caps the items.
2. Group the items by acquisition day (UTC). One file per day: ``s2/<YYYY-MM-DD>.tif``.
3. Load each day lazily with odc-stac onto the area's grid (:mod:`cloudfree.data.stac.grid`:
   the UTM zone at 10 m on Sentinel-2's 60 m lattice), each item separately: the 10 m bands by
   nearest neighbour (the lattice makes that a copy), the 20 m and 60 m bands bilinear (as
   ``cloudfree stack``); the processing-baseline offset removed per item
   (:mod:`cloudfree.data.stac.items`); then the day's items mosaicked, the least cloudy first
   (each pixel from the first item with data there: tiles of one day, or two orbits).
4. Write the day window by window (dask computes each window, on the local threaded scheduler
   or on a Dask cluster), under a temporary name renamed when complete; ``series.json`` records
   the items, their hrefs, baselines, offsets and cloud cover, the grid, after every day. A
   fetch run again skips the days already written.

Band order is SEN12MS-CR's (``cloudfree.bands.S2_BANDS``), without B10 for L2A (12 bands,
named); DN = reflectance x 10000, uint16, 0 = no data: a pixel with data whose offset removal
would reach 0 (reflectance 0 or below) is kept at 1, the smallest valid DN, not turned into
no data. Each file carries its date (``ACQUISITION_DATE``) for ``composite``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloudfree.bands import S2_BANDS, S2_L2A_BANDS
from cloudfree.data.stac.catalogs import (
    Catalog,
    check_credentials,
    gdal_env,
    get_catalog,
    signed,
)
from cloudfree.data.stac.grid import Grid, area_grid
from cloudfree.data.stac.items import (
    acquisition_day,
    band_assets,
    cloud_cover,
    offset_dn,
    raster_offset_dn,
    summary,
)
from cloudfree.errors import CloudfreeError, DataError

SERIES_JSON: Final[str] = "series.json"
#: Bands at 10 m (copied: nearest neighbour on the lattice); the others are resampled.
TEN_M: Final[frozenset[str]] = frozenset({"B2", "B3", "B4", "B8"})
#: Side of the windows a day is computed and written in, px.
WRITE_WINDOW: Final[int] = 1024
#: GDAL's retries of a failed HTTP read (a 5xx or a dropped connection), and the delay, s.
HTTP_RETRIES: Final[int] = 3
#: Pairing window of S1 with an S2 day (Sentinel-1's repeat is 6-12 days), days.
S1_MAX_DAYS: Final[int] = 6
#: What the Sentinel-1 RTC files hold, for their tags and series.json.
S1_RTC_NOTE: Final[str] = (
    "Sentinel-1 RTC: terrain-flattened gamma0 (Small 2011), 10 log10 of the linear value, dB; "
    "not the ellipsoid sigma0 of SEN12MS-CR (Earth Engine's COPERNICUS/S1_GRD): on flat ground "
    "sigma0 = gamma0 x cos(incidence), about 0.6 dB lower at the near range to 1.6 dB at the far "
    "range of the IW swath (30-46 degrees), and more on slopes; corrected by that flat-ground "
    "relation only for the items that carry an (ellipsoid) incidence-angle asset (see "
    "'incidence' per date), left as gamma0 otherwise (Planetary Computer's items carry none)"
)
#: What the Sentinel-1 files made from GRD items hold.
S1_GRD_NOTE: Final[str] = (
    "Sentinel-1 GRD made into sigma0 dB by cloudfree s1 (thermal noise removal, calibration, "
    "range-Doppler terrain correction on the DEM): the quantity of SEN12MS-CR (Earth Engine's "
    "COPERNICUS/S1_GRD)"
)
#: Asset keys of an ellipsoid incidence-angle layer, degrees (OPERA RTC-S1's name, and others);
#: never a local (terrain) incidence angle, which the flat-ground relation does not take.
INCIDENCE_KEYS: Final[tuple[str, ...]] = (
    "incidence_angle", "ellipsoid_incidence_angle", "incidenceangle", "incidence",
)  # fmt: skip


@dataclass(frozen=True)
class FetchRequest:
    """What to fetch (``cloudfree fetch``'s options)."""

    bbox: tuple[float, float, float, float]
    datetime: str
    catalog: str = "earth-search"
    collection: str | None = None
    max_cloud: float | None = None
    limit: int | None = None
    crs: str | None = None
    resolution: float = 10.0
    #: also fetch Sentinel-1 (RTC) for every Sentinel-2 day: the S1 collection (None: none)
    s1_collection: str | None = None
    #: the S1 acquisition paired with an S2 day is the nearest within this many days
    s1_max_days: int = S1_MAX_DAYS
    #: the DEM for GRD items' terrain correction (None: Copernicus DEM GLO-30 fetched onto the
    #: grid as OUT/dem.tif), and what its heights are over (cloudfree.data.s1grd.dem.HEIGHTS)
    s1_dem: str | None = None
    s1_dem_heights: str = "auto"


def search(
    req: FetchRequest, catalog: Catalog, collection: str | None = None,
    period: str | None = None,
) -> list[Any]:  # fmt: skip
    """The items of the search (``pystac.Item``, unsigned: :func:`signed`), the
    ones above ``max_cloud`` left out (``collection``, ``period``: another than the request's,
    e.g. Sentinel-1's).


    Raises:
        CloudfreeError: the catalogue cannot be reached or refuses the search.
    """
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    collection = collection or req.collection or catalog.s2
    try:
        # Unsigned: series.json records hrefs without tokens, and each day is signed just
        # before it is read (signed(): a SAS token lasts about an hour, a fetch may take longer)
        client = Client.open(catalog.url)
        found = client.search(collections=[collection], bbox=req.bbox,
                              datetime=period or req.datetime, max_items=req.limit)  # fmt: skip
        items = list(found.items())
    except (APIError, OSError, ValueError) as e:
        raise CloudfreeError(f"searching {catalog.url} ({collection}) failed: {e}") from e
    if req.max_cloud is not None and period is None:
        items = [i for i in items if (cloud_cover(i.to_dict()) or 0.0) <= req.max_cloud]
    return items


def by_day(items: Sequence[Any]) -> dict[dt.date, list[Any]]:
    """Items grouped by acquisition day, each day's least cloudy first, days in order."""
    days: dict[dt.date, list[Any]] = defaultdict(list)
    for item in items:
        days[acquisition_day(item.to_dict())].append(item)
    return {
        d: sorted(days[d], key=lambda i: (cloud_cover(i.to_dict()) or 0.0, i.id))
        for d in sorted(days)
    }


def fetch(
    req: FetchRequest,
    out: str | os.PathLike[str],
    dry_run: bool = False,
    scheduler: str | None = None,
    progress: bool = True,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Fetch ``req`` into the series folder ``out`` (module docstring); returns what
    ``series.json`` holds (with ``dry_run``: the items it would take, nothing written).

    Args:
        scheduler: address of a Dask scheduler (``tcp://host:8786``) to load and compute on;
            None: the local threaded scheduler.
        env: the environment the credentials are read from (default ``os.environ``).

    Raises:
        CloudfreeError: an empty search (saying what was searched), missing credentials (naming
            the variables), a read that keeps failing (naming the asset).
    """
    catalog = get_catalog(req.catalog)
    collection = req.collection or catalog.s2
    items = search(req, catalog)
    if not items:
        raise CloudfreeError(
            f"no item of {collection} on {catalog.url} over bbox {list(req.bbox)} in "
            f"{req.datetime}" + (f" at or below {req.max_cloud} % cloud" if req.max_cloud is not
            None else "") + ": widen the period, the area or --max-cloud",
        )  # fmt: skip
    days = by_day(items)
    grid = area_grid(req.bbox, req.crs, req.resolution)
    record: dict[str, Any] = {
        "catalog": catalog.name, "url": catalog.url, "collection": collection,
        "bbox": list(req.bbox), "datetime": req.datetime, "max_cloud": req.max_cloud,
        "grid": {"crs": grid.crs, "resolution": grid.resolution, "bounds": list(grid.bounds),
                 "width": grid.width, "height": grid.height},
        "dates": {str(d): {"items": [summary(i.to_dict()) for i in its]}
                  for d, its in days.items()},
    }  # fmt: skip
    if dry_run:
        return record
    check_credentials(catalog, collection, env)
    if req.s1_collection is not None:
        check_credentials(catalog, req.s1_collection, env)
    folder = Path(out)
    (folder / "s2").mkdir(parents=True, exist_ok=True)
    done = _read_record(folder)
    if done.get("grid") not in (None, record["grid"]) or done.get("collection") not in (
        None, collection,
    ):  # fmt: skip
        raise CloudfreeError(
            f"{folder} holds a series of another area or collection ({done.get('collection')} "
            f"on {done.get('grid', {}).get('crs')} {done.get('grid', {}).get('bounds')}): its "
            "dates would not share one grid; give another --out"
        )
    record["dates"] = {k: v for k, v in done.get("dates", {}).items()
                       if (folder / v.get("file", "-")).is_file()}  # fmt: skip
    client = _dask_client(scheduler)
    _configure_rio(catalog, client)
    try:
        for day, its in days.items():
            name = f"s2/{day}.tif"
            if str(day) in record["dates"] and (folder / name).is_file():
                continue  # written by an earlier run
            info = _fetch_day(signed(its, catalog), grid, folder / name, day, progress, its)
            record["dates"][str(day)] = {"file": name, **info}
            _write_record(folder, record)
        if req.s1_collection is not None:
            _fetch_s1(req, catalog, list(days), grid, folder, record, progress)
    finally:
        if client is not None:
            client.close()
    _write_record(folder, record)
    return record


def _dask_client(address: str | None) -> Any:
    """A ``distributed.Client`` on ``address`` (it becomes dask's scheduler), or None."""
    if address is None:
        return None
    try:
        from distributed import Client
    except ImportError as e:
        raise CloudfreeError("--dask-scheduler needs distributed: pip install "
                             "'cloudfree[stac]'") from e  # fmt: skip
    try:
        return Client(address, timeout="10s")
    except OSError as e:
        raise CloudfreeError(f"cannot reach the Dask scheduler {address}: {e}") from e


def _configure_rio(catalog: Catalog, client: Any) -> None:
    """GDAL's settings for reading the assets, here and on the Dask workers of ``client``:
    cloud-friendly defaults, retries (every HTTP code: a 404 may be a catalogue's transient
    error), the catalogue's own settings."""
    import odc.stac

    rio: dict[str, Any] = {"GDAL_HTTP_MAX_RETRY": str(HTTP_RETRIES), "GDAL_HTTP_RETRY_DELAY":
                           "0.2", "GDAL_HTTP_RETRY_CODES": "ALL", **gdal_env(catalog)}  # fmt: skip
    odc.stac.configure_rio(cloud_defaults=True, **rio)
    if client is not None:
        odc.stac.configure_rio(cloud_defaults=True, client=client, **rio)


def _fetch_day(
    items: Sequence[Any], grid: Grid, path: Path, day: dt.date, progress: bool,
    bare: Sequence[Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Load, correct, mosaic and write one day; returns its record (the hrefs of ``bare``,
    the items unsigned, where given)."""
    import odc.stac
    import rasterio
    from odc.geo.geobox import GeoBox
    from tqdm.auto import tqdm

    from cloudfree.io import atomic_path
    from cloudfree.windows import windows

    dicts = [i.to_dict() for i in items]
    keys = band_assets(dicts[0])
    bands = [b for b in S2_BANDS if b in keys]
    if bands not in (list(S2_BANDS), list(S2_L2A_BANDS)):
        missing = [b for b in S2_BANDS if b not in keys and b != "B10"]
        raise DataError(None, f"item {items[0].id} has no asset for {missing}",
                        "Sentinel-2 items with every band (B10 may be missing: L2A)")  # fmt: skip
    for d in dicts[1:]:
        if band_assets(d) != keys:
            raise DataError(None, f"items {items[0].id} and {d['id']} name their bands "
                            "differently", "items of one collection")  # fmt: skip
    for d in dicts:
        declared = raster_offset_dn(d, keys[bands[1]])
        if declared is not None and declared != offset_dn(d):
            warnings.warn(
                f"item {d['id']}: its raster:bands offset says {declared} DN, its processing "
                f"baseline {summary(d)['processing_baseline']} says {offset_dn(d)}: the baseline "
                "is followed (series.json records both)", stacklevel=2,
            )  # fmt: skip
    geobox = GeoBox((grid.height, grid.width), grid.transform(), grid.crs)
    resampling = {keys[b]: "nearest" if b in TEN_M else "bilinear" for b in bands}
    layers = []
    for item, d in zip(items, dicts, strict=True):
        ds = odc.stac.load([item], bands=[keys[b] for b in bands], geobox=geobox,
                           resampling=resampling, groupby="id", chunks={"x": WRITE_WINDOW,
                           "y": WRITE_WINDOW}, dtype="uint16")  # fmt: skip
        arr = ds.to_array("band").isel(time=0).data  # (bands, H, W) dask, uint16
        layers.append((arr, offset_dn(d)))
    profile = {"driver": "GTiff", "width": grid.width, "height": grid.height,
               "count": len(bands), "dtype": "uint16", "nodata": 0, "crs": grid.crs,
               "transform": grid.transform(), "tiled": True, "blockxsize": 512,
               "blockysize": 512, "compress": "deflate", "predictor": 2, "interleave": "pixel",
               "BIGTIFF": "IF_SAFER"}  # fmt: skip
    wins = list(windows(grid.height, grid.width, WRITE_WINDOW))
    bar = tqdm(wins, desc=f"{day}", unit="win", disable=not progress)
    valid = 0
    try:
        with (
            warnings.catch_warnings(),
            atomic_path(path) as tmp,
            rasterio.open(tmp, "w", **profile) as dst,
        ):
            # odc-loader warps into in-memory datasets that have no transform of their own
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            for r, c, h, w in bar:
                block = _mosaic([(a[:, r : r + h, c : c + w], off) for a, off in layers])
                dst.write(block, window=rasterio.windows.Window(c, r, w, h))
                valid += int((block != 0).any(axis=0).sum())
            for i, b in enumerate(bands, start=1):
                dst.set_band_description(i, b)
            dst.update_tags(ACQUISITION_DATE=str(day), software="cloudfree fetch",
                            items=",".join(i.id for i in items),
                            level="L1C" if len(bands) == 13 else "L2A")  # fmt: skip
    except Exception as e:  # odc-stac / GDAL do not say which asset: find it
        if isinstance(e, CloudfreeError):
            raise
        bad = _unreadable([d["assets"][keys[b]]["href"] for d in dicts for b in bands])
        what = f"{', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}: " if bad else ""
        raise CloudfreeError(f"reading the items of {day} failed after {HTTP_RETRIES} "
                             f"retries: {what}{e}; nothing was written for that day, run the "
                             "same command again to resume") from e  # fmt: skip
    return {
        "items": [summary(b.to_dict()) | {"offset_removed": offset_dn(d)}
                  for b, d in zip(bare or items, dicts, strict=True)],
        "bands": bands, "level": "L1C" if len(bands) == 13 else "L2A (no B10)",
        "valid_fraction": valid / max(1, grid.width * grid.height),
    }  # fmt: skip


def _fetch_s1(
    req: FetchRequest, catalog: Catalog, days: Sequence[dt.date], grid: Grid, folder: Path,
    record: dict[str, Any], progress: bool,
) -> None:  # fmt: skip
    """``s1/<S2 day>.tif`` for every S2 day: the S1 acquisition nearest in time within
    ``s1_max_days`` (its frames of that day mosaicked), VV and VH in dB (:data:`S1_RTC_NOTE`),
    float32, NaN where no S1; recorded under ``s1`` in ``series.json``."""
    import odc.stac
    import rasterio
    from odc.geo.geobox import GeoBox

    from cloudfree.io import atomic_path
    from cloudfree.windows import windows

    assert req.s1_collection is not None
    pad = dt.timedelta(days=req.s1_max_days)
    period = f"{min(days) - pad}/{max(days) + pad}"
    s1_days = by_day(search(req, catalog, req.s1_collection, period))
    (folder / "s1").mkdir(exist_ok=True)
    grd = any(_is_grd(i.to_dict()) for its in s1_days.values() for i in its)
    s1_record: dict[str, Any] = record.setdefault("s1", {
        "collection": req.s1_collection, "product": S1_GRD_NOTE if grd else S1_RTC_NOTE,
        "dates": {}})  # fmt: skip
    dem: tuple[str, str] | None = None
    geobox = GeoBox((grid.height, grid.width), grid.transform(), grid.crs)
    for day in days:
        name = f"s1/{day}.tif"
        if str(day) in s1_record["dates"] and (folder / name).is_file():
            continue
        near = sorted(
            (abs((d - day).days), d) for d in s1_days if abs((d - day).days) <= req.s1_max_days
        )
        if not near:
            s1_record["dates"][str(day)] = {"file": None, "why": f"no S1 within "
                                            f"{req.s1_max_days} days"}  # fmt: skip
            continue
        s1_day = near[0][1]
        bare = s1_days[s1_day]
        items = signed(bare, catalog)
        if _is_grd(items[0].to_dict()):
            if dem is None:
                dem = _s1_dem(req, catalog, grid, folder)
                s1_record["dem"] = {"file": dem[0], "heights": dem[1]}
            info = _s1_from_grd(items, grid, folder / name, day, s1_day, dem, progress)
            s1_record["dates"][str(day)] = {"file": name, "s1_date": str(s1_day),
                                            "items": [i.id for i in items], **info}  # fmt: skip
            _write_record(folder, record)
            continue
        keys = [_polarisation(items[0].to_dict(), pol) for pol in ("vv", "vh")]
        layers = []
        corrected = []
        for item in items:  # frames of one pass: each pixel from the first with data
            inc = _incidence_key(item.to_dict())
            ds = odc.stac.load([item], bands=[*keys, *([inc] if inc else [])], geobox=geobox,
                               resampling="bilinear", groupby="id", dtype="float32",
                               chunks={"x": WRITE_WINDOW, "y": WRITE_WINDOW})  # fmt: skip
            layers.append((ds.to_array("band").isel(time=0).data,
                           [ds[k].attrs.get("nodata") for k in keys], inc is not None))  # fmt: skip
            if inc is not None:
                corrected.append(f"{item.id}: asset {inc}")
        valid = 0
        with (
            warnings.catch_warnings(),
            atomic_path(folder / name) as tmp,
            rasterio.open(tmp, "w", **_s1_profile(grid)) as dst,
        ):
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            for r, c, h, w in windows(grid.height, grid.width, WRITE_WINDOW):
                block = _s1_db([(a[:, r : r + h, c : c + w], nd, i) for a, nd, i in layers])
                dst.write(block, window=rasterio.windows.Window(c, r, w, h))
                valid += int(np.isfinite(block[0]).sum())
            dst.set_band_description(1, "VV")
            dst.set_band_description(2, "VH")
            quantity = ("sigma0 (flat ground: gamma0 x cos(incidence))"
                        if len(corrected) == len(items) else "gamma0" if not corrected
                        else "sigma0 where a frame had an incidence angle, else gamma0")  # fmt: skip
            dst.update_tags(ACQUISITION_DATE=str(s1_day), software="cloudfree fetch",
                            product=S1_RTC_NOTE, quantity=quantity, s2_date=str(day))  # fmt: skip
        s1_record["dates"][str(day)] = {
            "file": name, "s1_date": str(s1_day), "items": [i.id for i in items],
            "quantity": quantity, "incidence": corrected or None,
            "hrefs": [i.to_dict()["assets"][k]["href"] for i in bare for k in keys],
            "valid_fraction": valid / max(1, grid.width * grid.height),
        }  # fmt: skip
        _write_record(folder, record)


def _is_grd(item: Mapping[str, Any]) -> bool:
    """Whether an S1 item is a GRD product (its XML among the assets; ``sar:product_type``)."""
    props = item.get("properties", {})
    if str(props.get("sar:product_type", "")).upper() == "GRD":
        return True
    return any(k.lower().startswith("schema-product-") for k in item.get("assets", {}))


def _s1_dem(req: FetchRequest, catalog: Catalog, grid: Grid, folder: Path) -> tuple[str, str]:
    """The DEM for GRD terrain correction and its heights: ``req.s1_dem``, else Copernicus DEM
    GLO-30 from the catalogue (Earth Search where the catalogue has none) written once as
    ``OUT/dem.tif`` (kept: a resumed fetch reuses it), heights over EGM2008."""
    if req.s1_dem is not None:
        return req.s1_dem, req.s1_dem_heights
    from cloudfree.data.s1grd.copdem import fetch_dem

    path = folder / "dem.tif"
    if not path.is_file():
        # the catalogue's own copy (signed where it needs), else Earth Search's public one
        own = catalog.name in ("planetary-computer", "earth-search") or catalog.name.startswith(
            ("http://", "https://"))  # fmt: skip
        source = catalog.name if own else "earth-search"
        fetch_dem(_s1_grid(grid), path, source)
    return str(path), "egm2008" if req.s1_dem_heights == "auto" else req.s1_dem_heights


def _s1_from_grd(
    items: Sequence[Any], grid: Grid, path: Path, day: dt.date, s1_day: dt.date,
    dem: tuple[str, str], progress: bool,
) -> dict[str, Any]:  # fmt: skip
    """``cloudfree s1`` on each GRD frame of the pass onto the grid, the frames mosaicked (each
    pixel from the first with data), written as ``path``; returns its record."""
    import tempfile

    import rasterio

    try:
        import sarsen  # noqa: F401
        import xarray_sentinel  # noqa: F401
    except ImportError as e:
        raise CloudfreeError("Sentinel-1 GRD items are made into sigma0 with the s1 extra: pip "
                             "install 'cloudfree[s1]' (or --s1-collection sentinel-1-rtc)") from e  # fmt: skip
    from cloudfree.data.s1grd.product import from_item
    from cloudfree.data.s1grd.terrain import correct
    from cloudfree.io import atomic_path
    from cloudfree.windows import windows

    frames, used, skipped = [], [], []
    with tempfile.TemporaryDirectory(prefix="cloudfree-grd-") as tmp:
        for k, item in enumerate(items):
            frame = Path(tmp) / f"{k}.tif"
            try:
                correct(from_item(item.to_dict()), _s1_grid(grid), frame, dem[0],
                        dem_heights=dem[1], missing_pol="nan", progress=progress)  # fmt: skip
            except DataError as e:
                if "does not reach" not in str(e):
                    raise
                skipped.append(item.id)
                continue
            frames.append(frame)
            used.append(item.id)
        # the frames mosaicked window by window (each pixel from the first with data)
        valid = 0
        with atomic_path(path) as tmp_out, rasterio.open(tmp_out, "w", **_s1_profile(grid)) as dst:
            sources = [rasterio.open(f) for f in frames]
            try:
                for r, c, h, w in windows(grid.height, grid.width, WRITE_WINDOW):
                    win = rasterio.windows.Window(c, r, w, h)
                    block = np.full((2, h, w), np.nan, np.float32)
                    for src in sources:
                        a = src.read(window=win)
                        take = np.isnan(block) & np.isfinite(a)
                        block[take] = a[take]
                    dst.write(block, window=win)
                    valid += int(np.isfinite(block[0]).sum())
            finally:
                for src in sources:
                    src.close()
            dst.set_band_description(1, "VV")
            dst.set_band_description(2, "VH")
            dst.update_tags(ACQUISITION_DATE=str(s1_day), software="cloudfree fetch",
                            product=S1_GRD_NOTE, quantity="sigma0", s2_date=str(day))  # fmt: skip
    return {"quantity": "sigma0", "frames": used, "frames_not_over_the_area": skipped,
            "valid_fraction": valid / max(1, grid.width * grid.height)}  # fmt: skip


def _s1_grid(grid: Grid) -> Any:
    """The fetch grid as ``cloudfree s1``'s (:class:`cloudfree.data.s1grd.terrain.Grid`)."""
    from cloudfree.data.s1grd.terrain import Grid as S1Grid

    return S1Grid(grid.crs, grid.transform(), grid.width, grid.height)


def _s1_profile(grid: Grid) -> dict[str, Any]:
    """GeoTIFF profile of an ``s1/<day>.tif``: VV, VH dB, float32, NaN no data."""
    return {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": 2,
            "dtype": "float32", "nodata": float("nan"), "crs": grid.crs,
            "transform": grid.transform(), "tiled": True, "blockxsize": 512,
            "blockysize": 512, "compress": "deflate", "predictor": 3}  # fmt: skip


def _s1_db(layers: Sequence[tuple[Any, list[Any], bool]]) -> np.ndarray:
    """(2, h, w) dB of the first frame with data at each pixel; linear values <= 0, NaN and
    each band's nodata are no data (NaN). A frame whose third band is its incidence angle
    (degrees) is turned from gamma0 into flat-ground sigma0: + 10 log10(cos(incidence)); a
    pixel without a valid angle (0-90 degrees) is then no data."""
    import dask

    arrays = dask.compute(*[a for a, _, _ in layers])
    out = np.full((2, *arrays[0].shape[1:]), np.nan, np.float32)
    for lin, (_, nodata, has_incidence) in zip(arrays, layers, strict=True):
        gain = np.zeros(lin.shape[1:], np.float32)
        if has_incidence:
            theta = lin[2].astype(np.float64)
            ok = np.isfinite(theta) & (theta > 0) & (theta < 90)
            gain = np.where(ok, 10 * np.log10(np.cos(np.deg2rad(np.where(ok, theta, 0.0)))),
                            np.nan).astype(np.float32)  # fmt: skip
        for b in range(2):
            v = lin[b].astype(np.float32)
            bad = ~np.isfinite(v) | (v <= 0) | np.isnan(gain)
            if nodata[b] is not None:
                bad |= v == np.float32(nodata[b])
            take = np.isnan(out[b]) & ~bad
            out[b][take] = 10 * np.log10(v[take]) + gain[take]
    return out


def _incidence_key(item: Mapping[str, Any]) -> str | None:
    """The asset key of the item's ellipsoid incidence-angle layer (:data:`INCIDENCE_KEYS`), or
    None."""
    for key in item.get("assets", {}):
        if key.lower() in INCIDENCE_KEYS:
            return str(key)
    return None


def _polarisation(item: Mapping[str, Any], pol: str) -> str:
    """The asset key of polarisation ``pol`` (``vv``/``vh``) of an S1 item."""
    for key in item.get("assets", {}):
        if key.lower() == pol:
            return str(key)
    raise DataError(None, f"S1 item {item.get('id')} has no {pol.upper()} asset",
                    "dual-polarisation (VV + VH) Sentinel-1 items")  # fmt: skip


def _unreadable(hrefs: Sequence[str]) -> list[str]:
    """The assets among ``hrefs`` that cannot be opened now (after GDAL's retries)."""
    import rasterio

    bad = []
    for href in dict.fromkeys(hrefs):
        try:
            with rasterio.open(href):
                pass
        except rasterio.errors.RasterioError:
            bad.append(href)
    return bad


def _mosaic(layers: Sequence[tuple[Any, int]]) -> np.ndarray:
    """The first item with data at each pixel (0 = no data in every band), its offset removed
    (clipped at 0, and at 1 where that would turn a valid pixel into no data)."""
    import dask

    arrays = dask.compute(*[a for a, _ in layers])
    out = np.zeros(arrays[0].shape, np.uint16)
    filled = np.zeros(arrays[0].shape[1:], bool)
    for arr, (_, off) in zip(arrays, layers, strict=True):
        has = (arr != 0).any(axis=0) & ~filled
        if not has.any():
            continue
        vals = arr.astype(np.int32) - off
        # a pixel with data keeps data: 0 is Sentinel-2's no-data value
        vals = np.where(arr != 0, np.clip(vals, 1, None), 0).astype(np.uint16)
        out[:, has] = vals[:, has]
        filled |= has
    return out


def _read_record(folder: Path) -> dict[str, Any]:
    path = folder / SERIES_JSON
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_record(folder: Path, record: Mapping[str, Any]) -> None:
    from cloudfree.io import atomic_path

    with atomic_path(folder / SERIES_JSON) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
