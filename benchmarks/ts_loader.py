"""SEN12MS-CR-TS training input: samples/s from the release's GeoTIFFs against a pack
(``cloudfree pack ts.csv``), in one run, on the same series.

Data: a synthetic SEN12MS-CR-TS copy written to a temporary folder in the release layout
(``--patches`` patches of one training ROI, 30 dates each: S2 13-band uint16 and S1 2-band
float32 dB GeoTIFFs of 256 x 256, deflate-compressed as the release's). Each path is a
``SeriesDataset`` of the training split (3 input dates drawn at random, upstream's ``random``
sampler; S1 included; reflectance scaling), iterated by a ``DataLoader`` (batch 4, the
multi-temporal preset's) with ``--workers`` processes, over ``--epochs`` epochs; page cache
warm (the files were just written). Reported: samples/s (median over epochs after the first),
and the pack's one-off cost and size.

    .venv/bin/python benchmarks/ts_loader.py [--patches 16] [--epochs 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np


def _write(path: Path, values: np.ndarray) -> None:
    import rasterio
    from rasterio.transform import from_origin

    path.parent.mkdir(parents=True, exist_ok=True)
    prof = dict(driver="GTiff", width=values.shape[2], height=values.shape[1],
                count=values.shape[0], dtype=values.dtype.name, crs="EPSG:32633",
                transform=from_origin(500000, 5000000, 10, 10), compress="deflate",
                tiled=True, blockxsize=256, blockysize=256)  # fmt: skip
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(values)


def _copy(root: Path, patches: int) -> None:
    from cloudfree.data.timeseries.names import TSFile, relative_path

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:256, 0:256]
    base = (1500 + 600 * np.sin(x / 17.0) * np.cos(y / 23.0)).astype(np.float32)
    for p in range(patches):
        for t in range(30):
            day = date(2018, 1, 3) + timedelta(days=12 * t)
            s2 = base[None] * (1 + 0.04 * np.arange(13))[:, None, None]
            s2 = (s2 + rng.normal(0, 80, s2.shape)).clip(0, 10000).astype(np.uint16)
            s1 = (-15 + rng.normal(0, 2, (2, 256, 256))).astype(np.float32)
            _write(root / relative_path(TSFile("s2", "ROIs1970/21", t, day, p)), s2)
            _write(root / relative_path(TSFile("s1", "ROIs1970/21", t, day, p)), s1)


def _rate(ds, epochs: int, workers: int) -> list[float]:  # noqa: ANN001
    from torch.utils.data import DataLoader

    from cloudfree.data.collate import collate_skip_bad

    rates = []
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=workers,
                            collate_fn=collate_skip_bad)  # fmt: skip
        t0 = time.perf_counter()
        n = sum(len(b["id"]) for b in loader)
        rates.append(n / (time.perf_counter() - t0))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patches", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from cloudfree.data.timeseries.dataset import SeriesDataset
    from cloudfree.data.timeseries.index import build_ts_index, write_ts_index
    from cloudfree.data.timeseries.pack import PackedSeries, pack_series

    with tempfile.TemporaryDirectory() as tmp:
        root, index = Path(tmp) / "ts", Path(tmp) / "ts.csv"
        _copy(root, args.patches)
        write_ts_index(build_ts_index(root), index)
        rows = build_ts_index(root).rows()
        coverage = {r["s2"]: 0.5 for r in rows}  # every date a candidate input
        t0 = time.perf_counter()
        pack_series(index, Path(tmp) / "pack", progress=False)
        pack_s = time.perf_counter() - t0
        packed = PackedSeries(Path(tmp) / "pack")
        kw = dict(coverage=coverage, split="train", sampler="random", include_sar=True)
        paths = {
            "release GeoTIFFs (SeriesDataset on the index)": SeriesDataset(root, rows, **kw),  # type: ignore[arg-type]
            "pack (memory-mapped shards)": SeriesDataset(packed.root, packed.rows,
                                                          reader=packed.read, **kw),  # type: ignore[arg-type]
        }  # fmt: skip
        tif = sum(f.stat().st_size for f in root.rglob("*.tif"))
        npy = sum(f.stat().st_size for f in (Path(tmp) / "pack").rglob("*.npy"))
        print(f"{args.patches} series x 30 dates (256 px, S2 + S1), 3 random input dates + "
              f"target per sample, batch 4, {args.workers} workers, {args.epochs} epochs")  # fmt: skip
        print(f"{'path':<48} {'samples/s':>9} {'(first epoch)':>13}")
        for name, ds in paths.items():
            r = _rate(ds, args.epochs, args.workers)
            steady = statistics.median(r[1:]) if len(r) > 1 else r[0]
            print(f"{name:<48} {steady:>9.1f} {r[0]:>13.1f}")
        print(
            f"pack: {pack_s:.1f} s once ({args.patches * 30 * 2 / pack_s:.0f} files/s); disk "
            f"{tif / 2**20:.0f} MiB of GeoTIFF -> {npy / 2**20:.0f} MiB of shards"
        )


if __name__ == "__main__":
    main()
