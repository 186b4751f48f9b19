"""A STAC API on 127.0.0.1 for the fetch tests: ``/``, ``/conformance``, ``/collections``,
``/search`` (GET and POST: bbox, datetime, collections, limit) and the asset files with HTTP
Range, served from a folder; hits are counted per path and failures injected per file.

The catalogue (:func:`build`) is made from a real SEN12MS-CR patch (13 bands, the first
240 x 240 px), placed on a 60 m lattice of EPSG:32633: per-band single-file assets at the bands'
native sizes (10 m as they are, 20 m and 60 m block means), with the quirks ``fetch`` must
handle: two tiles of one day (one baseline 05.09 carrying the +1000 offset, one 03.01 without),
Planetary Computer asset keys on that day and Earth Search common-name keys on the next, a
cloudy day above the usual ``--max-cloud``, and an area larger than the data. Beside them:
Earth Search Collection 1 L2A items (12 bands, ``raster:bands`` scale and offset, the
``earthsearch:boa_offset_applied`` flag saying the opposite of the DN; one whose ``raster:bands``
offset disagrees with its baseline), a Copernicus Data Space Ecosystem L2A item (JP2 on "S3"
``s3://eodata/...``: served by this server as an S3 endpoint, one asset per band and resolution
``B02_10m`` ... with a coarser one listed first, the baseline in ``processing:version`` only),
and Sentinel-1 RTC items (one with an ellipsoid incidence-angle asset).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

ORIGIN = (600000.0, 5000040.0)  # upper-left corner, on the 60 m lattice of zone 33N
CRS = "EPSG:32633"
SIDE = 240  # px at 10 m
RES = {"B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20, "B8": 10,
       "B8A": 20, "B9": 60, "B10": 60, "B11": 20, "B12": 20}  # fmt: skip
PC_KEYS = {b: ("B" + b[1:].zfill(2) if b != "B8A" else "B8A") for b in RES}
ES_KEYS = {"B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "rededge1",
           "B6": "rededge2", "B7": "rededge3", "B8": "nir", "B8A": "nir08", "B9": "nir09",
           "B10": "cirrus", "B11": "swir16", "B12": "swir22"}  # fmt: skip
COMMON = {"B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "rededge",
          "B6": "rededge", "B7": "rededge", "B8": "nir", "B8A": "nir08", "B9": "nir09",
          "B10": "cirrus", "B11": "swir16", "B12": "swir22"}  # fmt: skip
COLLECTION = "sentinel-2-l1c"


def scene(shared: Path, side: int = SIDE) -> np.ndarray:
    """(13, side, side) uint16 DN: the truth every test compares with (the patch's first
    240 x 240 px, mirrored to fill a larger side, a multiple of 60 px)."""
    import rasterio

    path = next((shared / "sen12mscr").rglob("ROIs1970_fall_s2_136_p100.tif"))
    with rasterio.open(path) as ds:
        base = ds.read()[:, :SIDE, :SIDE]
    reps = -(-side // SIDE)
    return np.pad(base, ((0, 0), (0, reps * SIDE - SIDE), (0, reps * SIDE - SIDE)),
                  mode="symmetric")[:, :side, :side]  # fmt: skip


def _write(path: Path, arr: np.ndarray, res: int, col0: int) -> None:
    import rasterio
    from rasterio.transform import from_origin

    prof: dict[str, Any] = {
        "driver": "GTiff", "width": arr.shape[1], "height": arr.shape[0], "count": 1,
        "dtype": "uint16", "nodata": 0, "crs": CRS, "tiled": True, "blockxsize": 256,
        "blockysize": 256, "transform": from_origin(ORIGIN[0] + col0 * 10, ORIGIN[1], res, res),
    }  # fmt: skip
    if path.suffix == ".jp2":  # the SAFE's JPEG 2000, lossless as ESA's
        prof = {k: v for k, v in prof.items() if k not in ("tiled", "blockxsize", "blockysize")}
        prof.update(driver="JP2OpenJPEG", QUALITY=100, REVERSIBLE="YES")
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(arr[None])


def _native(band: np.ndarray, res: int) -> np.ndarray:
    f = res // 10
    h, w = band.shape
    return band.reshape(h // f, f, w // f, f).astype(np.float64).mean(axis=(1, 3)).round()


def _item(root: Path, item_id: str, day: str, cols: tuple[int, int], truth: np.ndarray,
          keys: dict[str, str], baseline: str, cloud: float, *, collection: str = COLLECTION,
          offset: int | None = None, props: dict[str, Any] | None = None,
          style: str = "pc-es") -> dict[str, Any]:  # fmt: skip
    """An item of ``truth[:, :, cols]``; ``offset``: the DN added (default: the baseline's);
    ``style``: ``"pc-es"`` (GeoTIFF, ``eo:bands``), ``"es-c1"`` (with ``raster:bands`` scale
    and offset), ``"cdse"`` (JP2 at ``s3://eodata/``, STAC 1.1 ``bands``, ``gsd``, one asset
    per band and resolution, a coarser one first for B2 and B5)."""
    from pyproj import Transformer

    c0, c1 = cols
    offset = (1000 if baseline >= "04.00" else 0) if offset is None else offset
    assets: dict[str, Any] = {}
    for i, (band, res) in enumerate(RES.items()):
        if band not in keys:
            continue
        for r in (60, res) if style == "cdse" and band in ("B2", "B5") else (res,):
            native = _native(truth[i, :, c0:c1].astype(np.float64), r) + offset
            key = f"{keys[band]}_{r}m" if style == "cdse" else keys[band]
            name = f"{item_id}_{band}_{r}m.jp2" if style == "cdse" else f"{item_id}_{band}.tif"
            _write(root / "files" / name, native.astype(np.uint16), r, c0)
            asset: dict[str, Any] = {
                "href": f"/files/{name}", "type": "image/tiff; application=geotiff",
                "roles": ["data"], "eo:bands": [{"name": keys[band], "common_name": COMMON[band]}],
                "proj:shape": list(native.shape),
                "proj:transform": [r, 0, ORIGIN[0] + c0 * 10, 0, -r, ORIGIN[1], 0, 0, 1],
            }  # fmt: skip
            if style == "es-c1":
                asset["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001,
                                          "offset": -0.1, "spatial_resolution": r}]  # fmt: skip
            if style == "cdse":
                asset = {"href": f"s3://eodata/files/{name}", "type": "image/jp2",
                         "roles": ["data"], "gsd": r, "proj:shape": asset["proj:shape"],
                         "proj:transform": asset["proj:transform"],
                         "bands": [{"name": keys[band], "eo:common_name": COMMON[band]}]}  # fmt: skip
            assets[key] = asset
    assets["visual"] = {"href": f"/files/{item_id}_B2.tif", "roles": ["visual"],
                        "eo:bands": [{"name": "B4"}, {"name": "B3"}, {"name": "B2"}]}  # fmt: skip
    left, right = ORIGIN[0] + c0 * 10, ORIGIN[0] + c1 * 10
    top, bottom = ORIGIN[1], ORIGIN[1] - truth.shape[1] * 10
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    ring = [to_ll.transform(x, y) for x, y in ((left, bottom), (right, bottom), (right, top),
                                               (left, top), (left, bottom))]  # fmt: skip
    lons, lats = zip(*ring, strict=True)
    properties = {"datetime": f"{day}T10:00:31Z", "eo:cloud_cover": cloud,
                  "s2:processing_baseline": baseline, "proj:epsg": 32633, **(props or {})}  # fmt: skip
    if style == "cdse":  # its baseline is in the processing extension only
        properties["processing:version"] = properties.pop("s2:processing_baseline")
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": collection,
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
        "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": properties, "assets": assets, "links": [],
    }  # fmt: skip


def build(root: Path, shared: Path, side: int = SIDE) -> dict[str, Any]:
    """Write the catalogue's files under ``root/files`` and return its items and truth
    (``side`` px of 10 m; the tiles of the first day split it at 60 % and 40 %)."""
    truth = scene(shared, side)
    a, b = (side * 3 // 5) // 6 * 6, (side * 2 // 5) // 6 * 6
    (root / "files").mkdir(parents=True, exist_ok=True)
    items = [
        _item(root, "T33_A_20210601", "2021-06-01", (0, a), truth, PC_KEYS, "05.09", 12.0),
        _item(root, "T33_B_20210601", "2021-06-01", (b, side), truth, PC_KEYS, "03.01", 30.0),
        _item(root, "T33_20210606", "2021-06-06", (0, side), truth, ES_KEYS, "05.10", 5.0),
        _item(root, "T33_20210611", "2021-06-11", (0, side), truth, PC_KEYS, "05.10", 90.0),
        # Earth Search Collection 1 L2A: the flag says the offset is applied, the DN carry it
        _item(root, "S2B_33TUL_20210616_0_L2A", "2021-06-16", (0, side), truth, L2A_ES_KEYS,
              "05.10", 3.0, collection=ES_L2A, style="es-c1",
              props={"earthsearch:boa_offset_applied": True}),
        # raster:bands says -0.1 (1000 DN), the baseline 03.01 none, the DN none
        _item(root, "S2A_33TUL_20210621_0_L2A", "2021-06-21", (0, side), truth, L2A_ES_KEYS,
              "03.01", 4.0, collection=ES_L2A, style="es-c1"),
        _item(root, "S2A_MSIL2A_20210626T100031_N0500_R122_T33TUL_20210626T120000", "2021-06-26",
              (0, side), truth, L2A_PC_KEYS, "05.00", 2.0, collection=CDSE_L2A, style="cdse"),
    ]  # fmt: skip
    s1_truth: dict[str, np.ndarray] = {}
    for k, day in enumerate(("2021-06-02", "2021-06-05", "2021-06-09")):
        items.append(_s1_item(root, f"S1A_IW_{day}", day, truth.shape[1], k, s1_truth,
                              with_incidence=day == "2021-06-09"))  # fmt: skip
    return {"items": items, "truth": truth, "s1_truth": s1_truth}


ES_L2A = "sentinel-2-c1-l2a"
CDSE_L2A = "sentinel-2-l2a"
L2A_ES_KEYS = {b: k for b, k in ES_KEYS.items() if b != "B10"}
L2A_PC_KEYS = {b: k for b, k in PC_KEYS.items() if b != "B10"}


def incidence_angle(side: int) -> np.ndarray:
    """(side, side) ellipsoid incidence angle, degrees: 30 at the left, 46 at the right."""
    return np.broadcast_to(30 + 16 * np.arange(side) / (side - 1), (side, side)).astype(np.float32)


S1_COLLECTION = "sentinel-1-rtc"


def _s1_item(root: Path, item_id: str, day: str, side: int, seed: int,
             s1_truth: dict[str, np.ndarray], with_incidence: bool = False) -> dict[str, Any]:  # fmt: skip
    """A Sentinel-1 RTC item as Planetary Computer's: ``vv`` and ``vh`` assets of linear
    gamma0, float32, nodata -32768 (its top-left 20 x 20 px), on the scene's 10 m lattice;
    ``with_incidence``: also an ``incidence_angle`` asset (degrees, :func:`incidence_angle`), as
    OPERA's RTC-S1 has."""
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side]
    vv = -12 + 4 * np.sin(x / 13.0) * np.cos(y / 17.0) + rng.normal(0, 0.5, (side, side))
    db = np.stack([vv, vv - 7]).astype(np.float32)
    db[:, :20, :20] = np.nan
    s1_truth[day] = db
    assets = {}
    layers = {"vv": db[0], "vh": db[1]}
    if with_incidence:
        layers["incidence_angle"] = incidence_angle(side)
    for pol, layer in layers.items():
        lin = layer if pol == "incidence_angle" else np.where(
            np.isnan(layer), -32768, 10 ** (layer / 10)).astype(np.float32)  # fmt: skip
        name = f"{item_id}_{pol}.tif"
        prof = {"driver": "GTiff", "width": side, "height": side, "count": 1, "dtype": "float32",
                "nodata": -32768, "crs": CRS, "tiled": True, "blockxsize": 256,
                "blockysize": 256, "transform": from_origin(*ORIGIN, 10, 10)}  # fmt: skip
        with rasterio.open(root / "files" / name, "w", **prof) as ds:
            ds.write(lin[None])
        assets[pol] = {"href": f"/files/{name}", "type": "image/tiff; application=geotiff",
                       "roles": ["data"], "proj:shape": [side, side],
                       "proj:transform": [10, 0, ORIGIN[0], 0, -10, ORIGIN[1], 0, 0, 1]}  # fmt: skip
    left, top = ORIGIN
    right, bottom = left + side * 10, top - side * 10
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    ring = [to_ll.transform(a, b) for a, b in ((left, bottom), (right, bottom), (right, top),
                                               (left, top), (left, bottom))]  # fmt: skip
    lons, lats = zip(*ring, strict=True)
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": S1_COLLECTION,
        "stac_extensions": [], "geometry": {"type": "Polygon",
                                            "coordinates": [[list(q) for q in ring]]},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": {"datetime": f"{day}T05:12:00Z", "sar:polarizations": ["VV", "VH"],
                       "proj:epsg": 32633},
        "assets": assets, "links": [],
    }  # fmt: skip


def _in_period(item: dict[str, Any], period: str | None) -> bool:
    if not period:
        return True
    when = datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
    lo, _, hi = period.partition("/")

    def parse(text: str, end: bool) -> datetime | None:
        if text in ("", ".."):
            return None
        if len(text) == 10:
            text += "T23:59:59+00:00" if end else "T00:00:00+00:00"
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    a, b = parse(lo, False), parse(hi or lo, True)
    return (a is None or when >= a) and (b is None or when <= b)


def _overlaps(item: dict[str, Any], bbox: list[float] | None) -> bool:
    if not bbox:
        return True
    w, s, e, n = item["bbox"]
    return not (bbox[2] < w or bbox[0] > e or bbox[3] < s or bbox[1] > n)


class Server(ThreadingHTTPServer):
    items: list[dict[str, Any]]
    root: Path
    hits: Counter[str]
    fail_once: set[str]
    fail_always: set[str]


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"  # keep-alive: GDAL reads an asset in many ranges

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, obj: Any, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _absolute(self, item: dict[str, Any]) -> dict[str, Any]:
        out = json.loads(json.dumps(item))
        for a in out["assets"].values():
            if a["href"].startswith("/"):  # s3:// hrefs stay: this server is their endpoint
                a["href"] = self._base() + a["href"]
        return out

    def _search(self, q: dict[str, Any]) -> None:
        colls = q.get("collections")
        bbox = q.get("bbox")
        found = [self._absolute(i) for i in self.server.items
                 if (not colls or i["collection"] in colls) and _overlaps(i, bbox)
                 and _in_period(i, q.get("datetime"))]  # fmt: skip
        if q.get("limit"):
            found = found[: int(q["limit"])]
        self._json({"type": "FeatureCollection", "features": found, "links": []})

    def do_POST(self) -> None:  # noqa: N802
        path = urlparse(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)) or 0)
        if path == "/_fail":
            spec = json.loads(body)
            self.server.fail_once, self.server.fail_always = set(spec["once"]), set(spec["always"])
            self.server.hits.clear()
            self._json({})
        elif path == "/search":
            self._search(json.loads(body or b"{}"))
        else:
            self.send_error(404)

    def do_HEAD(self) -> None:  # noqa: N802
        self._file(head=True)

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        base = self._base()
        if url.path in ("/", ""):
            self._json({"type": "Catalog", "stac_version": "1.0.0", "id": "test",
                        "description": "cloudfree test catalogue",
                        "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                                       "https://api.stacspec.org/v1.0.0/item-search"],
                        "links": [{"rel": "self", "href": base + "/"},
                                  {"rel": "root", "href": base + "/"},
                                  {"rel": "search", "href": base + "/search",
                                   "method": "GET", "type": "application/geo+json"},
                                  {"rel": "search", "href": base + "/search",
                                   "method": "POST", "type": "application/geo+json"},
                                  {"rel": "conformance", "href": base + "/conformance"},
                                  {"rel": "data", "href": base + "/collections"}]})  # fmt: skip
        elif url.path == "/conformance":
            self._json({"conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                                       "https://api.stacspec.org/v1.0.0/item-search"]})  # fmt: skip
        elif url.path == "/collections":
            self._json({"collections": [{"id": COLLECTION, "type": "Collection"}], "links": []})
        elif url.path == "/_hits":
            self._json(dict(self.server.hits))
        elif url.path == "/search":
            q: dict[str, Any] = {k: v[0] for k, v in parse_qs(url.query).items()}
            if "bbox" in q:
                q["bbox"] = [float(x) for x in q["bbox"].split(",")]
            if "collections" in q:
                q["collections"] = q["collections"].split(",")
            self._search(q)
        else:
            self._file(head=False)

    def _file(self, head: bool) -> None:
        # path-style S3 requests (GDAL's /vsis3/ with AWS_S3_ENDPOINT at this server) name the
        # bucket first
        url = urlparse(self.path.removeprefix("/eodata"))
        name = url.path.removeprefix("/files/")
        self.server.hits[name] += 1
        path = self.server.root / "files" / name
        if name in self.server.fail_always or (name in self.server.fail_once
                                               and self.server.hits[name] == 1):  # fmt: skip
            self.send_error(404 if name in self.server.fail_once else 500)
            return
        if not url.path.startswith("/files/") or not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        rng = self.headers.get("Range")
        a, b, status = 0, size - 1, 200
        if rng and rng.startswith("bytes="):
            lo, _, hi = rng[6:].partition("-")
            a, b, status = int(lo), min(int(hi) if hi else size - 1, size - 1), 206
        self.send_response(status)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(b - a + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {a}-{b}/{size}")
        self.end_headers()
        if not head:
            with open(path, "rb") as fh:  # only the range asked: assets may be large
                fh.seek(a)
                self.wfile.write(fh.read(b - a + 1))


class Remote:
    """The server running in its own process (GDAL holds the GIL while it opens a file, so a
    server thread of the test process could never answer it): its URL, its hit counts and its
    failures, through two control paths."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def hits(self) -> dict[str, int]:
        """Requests per file name so far."""
        from urllib.request import urlopen

        with urlopen(self.url + "/_hits", timeout=10) as r:  # noqa: S310 - 127.0.0.1
            return dict(json.loads(r.read()))

    def fail(self, once: tuple[str, ...] = (), always: tuple[str, ...] = ()) -> None:
        """Files that answer 404 to their first request (``once``) or 500 to every one."""
        from urllib.request import Request, urlopen

        body = json.dumps({"once": list(once), "always": list(always)}).encode()
        req = Request(self.url + "/_fail", data=body, method="POST")
        with urlopen(req, timeout=10):  # noqa: S310 - 127.0.0.1
            pass


def _run(root: Path, items: list[dict[str, Any]], ports: Any) -> None:
    srv = Server(("127.0.0.1", 0), _Handler)
    srv.items, srv.root, srv.hits = items, root, Counter()
    srv.fail_once, srv.fail_always = set(), set()
    ports.put(srv.server_address[1])
    srv.serve_forever()


@contextmanager
def serve(root: Path, items: list[dict[str, Any]]) -> Iterator[Remote]:
    """The server on a free port of 127.0.0.1, in a child process, until the block ends."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    ports = ctx.Queue()
    proc = ctx.Process(target=_run, args=(root, items, ports), daemon=True)
    proc.start()
    try:
        yield Remote(ports.get(timeout=30))
    finally:
        proc.terminate()
        proc.join(10)
