"""``cloudfree fetch`` throughput from a STAC API on 127.0.0.1, and its memory, against the
area's size: the local threaded scheduler (default), dask's synchronous scheduler (one thread)
and a Dask LocalCluster (2 workers x 1 thread), in one run on the same catalogue.

The catalogue is the tests' (``tests/data/stac/server.py``: a real SEN12MS-CR patch mirrored to
the size asked, per-band single-file GeoTIFF assets at their native 10/20/60 m sizes, two tiles
on the first day, one on the second), served from a child process; each run fetches the two
days into a fresh folder. Reported: seconds, MB of assets read per second (the files' sizes),
dates per minute, and the peak of this process's resident memory above its level before the
runs (``ru_maxrss``; workers of the LocalCluster are threads of this process).

    .venv/bin/python benchmarks/fetch.py [--sides 1200 2400 4800]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sides", type=int, nargs="+", default=[1200, 2400, 4800])
    args = ap.parse_args()

    import dask
    import distributed
    from rasterio.warp import transform_bounds
    from tests.data.stac import server

    from cloudfree.data.stac.fetch import FetchRequest, fetch

    shared = ROOT.parent / "shared" / "data"
    print(f"{'side':>6} {'scheduler':<26} {'s':>7} {'MB/s':>7} {'dates/min':>9} {'peak MiB':>9}")
    for side in args.sides:
        with tempfile.TemporaryDirectory() as tmp:
            cat = server.build(Path(tmp), shared, side=side)
            mb = sum(f.stat().st_size for f in (Path(tmp) / "files").iterdir()) / 1e6
            mb *= 3 / 4  # the cloudy third day (1 of 4 items) is left out
            x0, y1 = server.ORIGIN
            bbox = transform_bounds(server.CRS, "EPSG:4326", x0 + 25, y1 - side * 10 + 25,
                                    x0 + side * 10 - 25, y1 - 25)  # fmt: skip
            with server.serve(Path(tmp), cat["items"]) as srv:
                req = FetchRequest(bbox=bbox, datetime="2021-06-01/2021-06-10", catalog=srv.url,
                                   collection=server.COLLECTION, crs=server.CRS)  # fmt: skip
                runs = [("threads (default)", None, None), ("synchronous (1 thread)",
                        "synchronous", None), ("LocalCluster 2 x 1", None, "cluster")]  # fmt: skip
                for name, sched, cluster in runs:
                    base = _rss_mb()
                    out = Path(tmp) / f"out_{name.split()[0]}"
                    t0 = time.perf_counter()
                    if cluster:
                        with distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                                      processes=False, protocol="tcp",
                                                      host="127.0.0.1",
                                                      dashboard_address=None) as lc:  # fmt: skip
                            fetch(req, out, scheduler=lc.scheduler_address, progress=False)
                    else:
                        with dask.config.set(scheduler=sched) if sched else _null():
                            fetch(req, out, progress=False)
                    s = time.perf_counter() - t0
                    print(f"{side:>6} {name:<26} {s:>7.2f} {mb / s:>7.1f} {2 / s * 60:>9.1f} "
                          f"{max(0.0, _rss_mb() - base):>9.0f}")  # fmt: skip


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


if __name__ == "__main__":
    main()
