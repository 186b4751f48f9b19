"""``cloudfree fetch``: an area and a period -> a series folder (:mod:`cloudfree.data.stac.fetch`).

Only light imports at module level: ``cloudfree --help`` builds every parser."""

from __future__ import annotations

import argparse

from cloudfree.argtypes import positive_int
from cloudfree.errors import CloudfreeError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``cloudfree fetch``."""
    p = sub.add_parser(
        "fetch",
        help="find Sentinel-2 of an area and a period in a STAC catalogue and write a series "
        "folder for composite and predict",
        description=(
            "Search a STAC catalogue (Earth Search, Planetary Computer, the Copernicus Data "
            "Space Ecosystem, or any STAC API by URL), and write OUT/s2/<YYYY-MM-DD>.tif: one "
            "file per acquisition day of the area, its tiles mosaicked, on the area's UTM grid "
            "at 10 m on Sentinel-2's own lattice (10 m bands copied, 20 m and 60 m bilinear), "
            "in SEN12MS-CR band order, DN = reflectance x 10000 (the +1000 offset of processing "
            "baseline 04.00 removed per item); OUT/series.json records the items and hrefs "
            "used. Run again, it resumes. Extra: pip install 'cloudfree[stac]'."
        ),
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--bbox", default=None, metavar="W,S,E,N",
                       help="area in WGS84 degrees: west,south,east,north")  # fmt: skip
    where.add_argument("--geojson", default=None, metavar="FILE",
                       help="area: the bounds of a GeoJSON file's geometries (WGS84)")  # fmt: skip
    p.add_argument("--datetime", required=True, metavar="START/END",
                   help="period, e.g. 2024-06-01/2024-08-31 (one day: 2024-06-01)")  # fmt: skip
    p.add_argument("--out", required=True, help="series folder to write (s2/, series.json)")
    p.add_argument("--catalog", default="earth-search", metavar="NAME_OR_URL",
                   help="earth-search (default), planetary-computer, cdse, or a STAC API URL")  # fmt: skip
    p.add_argument("--collection", default=None,
                   help="collection (default: the catalogue's L2A, or cdse's L1C; earth-search "
                   "sentinel-2-l1c needs AWS credentials, requester pays)")  # fmt: skip
    p.add_argument("--max-cloud", type=float, default=None, metavar="PERCENT",
                   help="leave out items above this eo:cloud_cover")  # fmt: skip
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many items")
    p.add_argument("--crs", default=None, help="output CRS (default: the area's UTM zone)")
    p.add_argument("--resolution", type=float, default=10.0, help="pixel size, m (default 10)")
    p.add_argument("--s1", action="store_true",
                   help="also Sentinel-1 for every S2 day: the acquisition nearest in time "
                   "(--s1-max-days), VV and VH in dB as OUT/s1/<S2 day>.tif; from GRD items "
                   "(planetary-computer: sentinel-1-grd, made into sigma0 as SEN12MS-CR's by "
                   "cloudfree s1; extra [s1]) or RTC items (--s1-collection sentinel-1-rtc: "
                   "terrain-flattened gamma0, needs PC_SDK_SUBSCRIPTION_KEY)")  # fmt: skip
    p.add_argument(
        "--s1-collection",
        default=None,
        help="the Sentinel-1 collection, GRD or RTC (default: the catalogue's GRD)",
    )
    p.add_argument("--s1-dem", default=None, metavar="DEM",
                   help="DEM for the GRD terrain correction (default: Copernicus DEM GLO-30 "
                   "fetched onto the grid as OUT/dem.tif)")  # fmt: skip
    p.add_argument("--s1-dem-heights", default="auto",
                   choices=("auto", "ellipsoid", "egm96", "egm2008"),
                   help="what --s1-dem's heights are over (see cloudfree s1 --dem-heights)")  # fmt: skip
    p.add_argument("--s1-max-days", type=positive_int, default=6,
                   help="pair S1 within this many days of each S2 day (default 6)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true",
                   help="list the items it would take (date, cloud cover, processing baseline) "
                   "and write nothing")  # fmt: skip
    p.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                   help="load and compute on this Dask scheduler (tcp://host:8786); default: "
                   "the local threaded scheduler")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _bbox(args: argparse.Namespace) -> tuple[float, float, float, float]:
    if args.bbox is not None:
        try:
            w, s, e, n = (float(v) for v in args.bbox.split(","))
        except ValueError:
            raise CloudfreeError(f"--bbox {args.bbox!r}: expected four numbers W,S,E,N "
                                 "(degrees, e.g. 11.3,46.4,11.4,46.5)") from None  # fmt: skip
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise CloudfreeError(f"--bbox {args.bbox}: expected west < east and south < north, "
                                 "in degrees")  # fmt: skip
        return w, s, e, n
    import json

    from cloudfree.errors import read_text_file

    try:
        data = json.loads(read_text_file(args.geojson, "a GeoJSON file"))
    except ValueError as e:
        raise CloudfreeError(f"--geojson {args.geojson}: not JSON ({e})") from None
    xs, ys = [], []

    def walk(c: object) -> None:
        if isinstance(c, list) and c and isinstance(c[0], int | float):
            xs.append(float(c[0]))
            ys.append(float(c[1]))
        elif isinstance(c, list):
            for x in c:
                walk(x)

    feats = data.get("features") or [data]
    for f in feats:
        geom = f.get("geometry", f) if isinstance(f, dict) else None
        if isinstance(geom, dict):
            walk(geom.get("coordinates"))
    if not xs:
        raise CloudfreeError(f"--geojson {args.geojson}: no coordinates in its geometries")
    return min(xs), min(ys), max(xs), max(ys)


def run(args: argparse.Namespace) -> int:
    """Run ``cloudfree fetch``."""
    try:
        import odc.stac  # noqa: F401
        import pystac_client  # noqa: F401
    except ImportError as e:
        raise CloudfreeError("fetch needs the stac extra: pip install 'cloudfree[stac]'") from e
    from cloudfree.data.stac.catalogs import get_catalog
    from cloudfree.data.stac.fetch import FetchRequest, fetch

    s1 = args.s1_collection
    if args.s1 and s1 is None:
        s1 = get_catalog(args.catalog).s1
        if s1 is None:
            raise CloudfreeError(
                f"--s1: {args.catalog} has no Sentinel-1 collection cloudfree reads; use "
                "--catalog planetary-computer, or name one with --s1-collection"
            )
    req = FetchRequest(
        bbox=_bbox(args), datetime=args.datetime, catalog=args.catalog,
        collection=args.collection, max_cloud=args.max_cloud, limit=args.limit, crs=args.crs,
        resolution=args.resolution, s1_collection=s1 if args.s1 or s1 else None,
        s1_max_days=args.s1_max_days, s1_dem=args.s1_dem, s1_dem_heights=args.s1_dem_heights,
    )  # fmt: skip
    rec = fetch(req, args.out, dry_run=args.dry_run, scheduler=args.dask_scheduler,
                progress=not args.no_progress)  # fmt: skip
    g = rec["grid"]
    print(f"{rec['collection']} on {rec['url']}: {len(rec['dates'])} days on {g['crs']} at "
          f"{g['resolution']:g} m ({g['width']} x {g['height']} px)")  # fmt: skip
    for day, info in rec["dates"].items():
        items = ", ".join(
            f"{i['id']} ({i['cloud_cover']} % cloud, baseline {i['processing_baseline']})"
            for i in info["items"]
        )
        print(f"  {day}: {items}")
    if not args.dry_run:
        print(f"wrote {args.out}/s2/<date>.tif and {args.out}/series.json")
    return 0
