"""Training-input throughput: per-file GeoTIFF reading (as DSen2-CR does it) vs packed shards.

Every path goes through a ``torch.utils.data.DataLoader`` with the same settings (2 workers,
batch 16, 128x128 training crops with flip/rot90) over the same patches:

- (a)  per-file, upstream work: what ``ameraner/dsen2-cr`` ``Code/tools/dataIO.py`` does per
       sample: open each of the three GeoTIFFs with rasterio, read the 128x128 crop window,
       ``image[np.isnan(image)] = np.nanmean(image)``, flip / rot90, per-channel clip and scale.
- (a2) per-file + CSM as upstream: (a) plus the cloud/cloud-shadow mask computed per sample
       with scipy on the augmented cloudy crop (spec section 3, ``feature_detectors.py``).
- (c)  cloudfree ``SEN12MSCR``: our per-file dataset (windowed ``read_raster``, grid checks).
- (b)  cloudfree ``PackedDataset``: the same samples from memory-mapped ``.npy`` shards.
- (b0) the same with ``num_workers=0``: read in the training process, no worker-to-main
       batch transfer (which caps any 2-worker DataLoader here; printed as its own line).

Data: ``synth`` = 200 synthetic triplets (``cloudfree.data.synthetic.release``) written to a temporary
folder; ``real`` = the real SEN12MS-CR patches in ``../shared/data/sen12mscr`` (26 cloudy/clear
pairs + 1 triplet: read without S1), iterated over several epochs. The page cache is warm (the
files were just written or read) unless ``--cold``, which evicts every data file from the page
cache (``posix_fadvise(DONTNEED)``) before each path is timed.

``--archives`` also times ``pack`` from release-style ``.tar.gz`` archives (each streamed
once) against per-file reads through GDAL's ``/vsitar/``.

Run: ``.venv/bin/python benchmarks/loader.py [--data synth|real|both] [--cold] [--archives]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cloudfree.bands import DSEN2CR, TRAIN_CROP_SIZE
from cloudfree.data.packed.dataset import PackedDataset
from cloudfree.data.packed.pack import pack
from cloudfree.data.release.dataset import SEN12MSCR
from cloudfree.data.release.index import IndexRow, read_index, write_index
from cloudfree.data.sample import SampleConfig

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sen12mscr"
BATCH, WORKERS = 16, 2
CLOUD_THRESHOLD = 0.2  # spec section 3
ROUNDS = 3  # each path is timed this many times, interleaved; the best rate is reported


# ------------------------------------------------ the upstream per-sample work (baseline only)


def _rescale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (x - lo) / (hi - lo)


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    s = a + b
    s[s == 0] = 0.001
    return (a - b) / s


def upstream_csm(dn: np.ndarray) -> np.ndarray:
    """DSen2-CR cloud/shadow mask of a (13, h, w) DN crop, plain scipy (spec section 3)."""
    import scipy.ndimage
    import scipy.signal

    x = dn / 10000.0
    score = np.ones(x.shape[1:], dtype=np.float32)
    score = np.minimum(score, _rescale(x[1], 0.1, 0.5))
    score = np.minimum(score, _rescale(x[0], 0.1, 0.3))
    score = np.minimum(score, _rescale(x[0] + x[10], 0.15, 0.2))
    score = np.minimum(score, _rescale(x[3] + x[2] + x[1], 0.2, 0.8))
    score = np.minimum(score, _rescale(_nd(x[2], x[11]), 0.8, 0.6))
    score = scipy.ndimage.grey_closing(score, size=(5, 5))
    score = scipy.signal.convolve2d(score, np.ones((7, 7)) / 49.0, mode="same")
    cloud = np.clip(score, 1e-5, 1.0) >= CLOUD_THRESHOLD
    csi = (x[7] + x[11]) / 2.0
    t3 = csi.min() + 0.75 * (csi.mean() - csi.min())
    t4 = x[1].min() + 5 / 6 * (x[1].mean() - x[1].min())
    shadow = np.zeros(x.shape[1:], dtype=np.float32)
    shadow[(csi < t3) & (x[1] < t4)] = -1
    shadow = scipy.signal.medfilt2d(shadow, 5)
    mask = np.zeros(x.shape[1:], dtype=np.float32)
    mask[shadow < 0] = -1
    mask[cloud] = 1
    return (mask != 0).astype(np.float32)


class UpstreamPerFile(Dataset):
    """Per-file reading with DSen2-CR's per-sample work (``dataIO.DataGenerator.get_batch``)."""

    def __init__(self, rows: Sequence[IndexRow], root: Path, sar: bool, csm: bool) -> None:
        self.rows, self.root, self.sar, self.csm = list(rows), root, sar, csm

    def __len__(self) -> int:
        return len(self.rows)

    def _read(self, rel: str, r: int, c: int) -> np.ndarray:
        import rasterio

        crop = TRAIN_CROP_SIZE
        with rasterio.open(self.root / rel) as src:  # a file open per file per sample
            image = src.read(window=((r, r + crop), (c, c + crop)))
        image[np.isnan(image)] = np.nanmean(image)
        return image.astype("float32")

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = np.random.default_rng([0, i])
        r, c = (int(v) for v in rng.integers(0, TRAIN_CROP_SIZE, 2))
        flip, k = int(rng.integers(0, 3)), int(rng.integers(0, 4))
        row, out = self.rows[i], {}
        kinds = ("s2_cloudy", "s2") + (("s1",) if self.sar else ())
        for kind in kinds:
            x = self._read(row.path(kind), r, c)
            if flip:
                x = np.flip(x, flip)
            if k:
                x = np.rot90(x, k, (1, 2))
            if kind == "s2_cloudy" and self.csm:
                out["mask"] = torch.from_numpy(upstream_csm(x))
            if kind == "s1":
                for ch, (lo, hi) in enumerate(DSEN2CR.s1_clip):
                    x[ch] = np.clip(x[ch], lo, hi) - lo
                    x[ch] = DSEN2CR.s1_max * (x[ch] / (hi - lo))
            else:
                for ch in range(len(x)):
                    x[ch] = np.clip(x[ch], *DSEN2CR.s2_clip)
                x /= DSEN2CR.s2_scale
            out[kind] = torch.from_numpy(np.ascontiguousarray(x))
        return out


class Repeat(Dataset):
    """``times`` passes over a dataset as one (virtual epochs)."""

    def __init__(self, base: Dataset, times: int) -> None:
        self.base, self.times = base, times

    def __len__(self) -> int:
        return len(self.base) * self.times  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        return self.base[i % len(self.base)]  # type: ignore[arg-type]


# --------------------------------------------------------------------------------- harness


def evict(paths: Sequence[Path]) -> None:
    """Drop these files from the page cache (only these: nothing else is touched)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def throughput(ds: Dataset, cold_files: Sequence[Path] | None, workers: int = WORKERS) -> float:
    """Triplets per second through a DataLoader (first batch, i.e. worker start, excluded)."""
    if cold_files:
        evict(cold_files)
    loader = DataLoader(ds, batch_size=BATCH, num_workers=workers, shuffle=True)
    it = iter(loader)
    first = len(next(it)["s2"])
    t0, n = time.perf_counter(), 0
    for batch in it:
        n += len(batch["s2"])
    dt = time.perf_counter() - t0
    del it
    assert n + first == len(ds)  # type: ignore[arg-type]
    return n / dt


def cpu_ms(ds: Dataset, n: int = 48) -> float:
    """Milliseconds of one item in this process (1 thread, no DataLoader), best of 3 runs."""
    size = len(ds)  # type: ignore[arg-type]
    for i in range(n):
        ds[i % size]  # warm: maps, caches
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(n):
            ds[i % size]
        best = min(best, (time.perf_counter() - t0) / n * 1000)
    return best


class Copies(Dataset):
    """The tensors of one real sample, returned as fresh copies: what a DataLoader costs alone."""

    def __init__(self, sample: dict[str, Any], n: int) -> None:
        self.sample, self.n = sample, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in self.sample.items()}


def disk_cost(paths: Sequence[Path], n: int) -> tuple[float, float]:
    """MB per triplet: apparent size and allocated size (holes of missing kinds are free)."""
    st = [p.stat() for p in paths]
    return sum(s.st_size for s in st) / n / 1e6, sum(s.st_blocks * 512 for s in st) / n / 1e6


def prepare(kind: str, work: Path) -> tuple[Path, Path, int]:
    """Write (synth) or find (real) the data, index it, pack it; returns index, pack, reps."""
    from cloudfree.data.release.discover import build_index

    if kind == "synth":
        from cloudfree.data.synthetic.release import synthesize

        root = work / "synth"
        t = time.perf_counter()
        synthesize(root, n=200, seed=0, size=256)
        print(f"  synthesised 200 triplets in {time.perf_counter() - t:.0f} s")
        reps = 1
    else:
        root = REAL.resolve()
        if not root.is_dir():
            raise SystemExit(f"real data not found at {root}")
        reps = 8
    index = work / f"{kind}.csv"
    write_index(build_index(root), index)
    t = time.perf_counter()
    m = pack(index, work / f"{kind}_packed", workers=WORKERS)
    dt = time.perf_counter() - t
    print(f"  packed {m['num_patches']} patches in {dt:.1f} s ({m['num_patches'] / dt:.0f}/s)")
    return index, work / f"{kind}_packed", reps


def run(kind: str, work: Path, cold: bool) -> None:
    print(f"\n== data: {kind} ==")
    index_csv, packed, reps = prepare(kind, work)
    index = read_index(index_csv)
    sar = kind == "synth"  # the real sample holds a single S1 triplet: read S2 pairs only
    cfg = SampleConfig(include_sar=sar)
    ours = SEN12MSCR(index_csv, config=cfg)
    rows = ours.rows
    tif = [index.resolve(r, k) for r in rows for k in ("s2", "s2_cloudy", "s1") if r.has(k)]
    npy = sorted(packed.glob("shard-*.npy"))
    n = len(rows)
    print(
        f"  {n} {'triplets' if sar else 'cloudy/clear pairs (no S1)'} x {reps} passes = "
        f"{n * reps} samples per path; batch {BATCH}, {TRAIN_CROP_SIZE}x{TRAIN_CROP_SIZE} crops, "
        f"flip/rot90, DataLoader num_workers={WORKERS}; page cache "
        f"{'cold (files evicted before each path)' if cold else 'warm'}"
    )
    paths: dict[str, Dataset] = {
        "(a)  per-file GeoTIFF, upstream work": UpstreamPerFile(rows, index.root, sar, False),
        "(a2) per-file + CSM as upstream": UpstreamPerFile(rows, index.root, sar, True),
        "(c)  cloudfree SEN12MSCR (per-file)": ours,
        "(b)  cloudfree PackedDataset": PackedDataset(packed, config=cfg),
        "(b0) PackedDataset, num_workers=0": PackedDataset(packed, config=cfg),
    }
    # Rounds interleave the paths, so that load from other processes hits them alike.
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(ROUNDS):
        for name, ds in paths.items():
            files = (npy if "(b" in name else tif) if cold else None
            workers = 0 if "(b0)" in name else WORKERS
            rates[name].append(throughput(Repeat(ds, 1 if cold else reps), files, workers))
    best = {name: max(r) for name, r in rates.items()}
    a, a2 = best[next(iter(paths))], best[list(paths)[1]]
    print(f"  {'path':<38}{'triplets/s':>11}{'(median)':>9}{'ms/trip.':>9}{'vs (a)':>7}"
          f"{'vs (a2)':>8}{'CPU ms':>8}")  # fmt: skip
    for name, ds in paths.items():
        r = best[name]
        print(
            f"  {name:<38}{r:>11.1f}{float(np.median(rates[name])):>9.1f}{1000 / r:>9.2f}"
            f"{r / a:>6.1f}x{r / a2:>7.1f}x{cpu_ms(ds):>8.2f}"
        )
    ceiling = max(
        throughput(Copies(paths["(b)  cloudfree PackedDataset"][0], n * reps), None)
        for _ in range(ROUNDS)
    )
    print(
        f"  DataLoader alone (a no-op dataset returning the same tensors): {ceiling:.0f} "
        "samples/s: the transfer ceiling of any dataset here"
    )
    t_app, t_alloc = disk_cost(tif, n)
    p_app, p_alloc = disk_cost(npy, n)
    print(
        f"  disk per {'triplet' if sar else 'pair'}: GeoTIFF {t_app:.2f} MB; packed {p_app:.2f} MB "
        f"apparent, {p_alloc:.2f} MB allocated (missing S1 stored as file holes)"
    )


def archives(work: Path, n: int = 60, sample: int = 12) -> None:
    """Packing from release-style .tar.gz archives: streaming vs per-file /vsitar/ reads."""
    import random
    import tarfile

    from cloudfree.data.release.discover import build_index
    from cloudfree.data.synthetic.release import synthesize
    from cloudfree.io import read_raster

    print(f"\n== archives: {n} synthetic triplets in 3 .tar.gz per season (gzip level 6) ==")
    src, root = work / "arch_src", work / "arch"
    synthesize(src, n=n, seed=1, size=256)
    root.mkdir()
    t = time.perf_counter()
    for folder in sorted(p for p in src.iterdir() if p.name.startswith("ROIs")):
        with tarfile.open(root / f"{folder.name}.tar.gz", "w:gz", compresslevel=6) as tf:
            tf.add(folder, arcname=folder.name)
    size = sum(p.stat().st_size for p in root.iterdir()) / 1e6
    print(f"  wrote {len(list(root.iterdir()))} archives, {size:.0f} MB, in "
          f"{time.perf_counter() - t:.0f} s")  # fmt: skip
    index = build_index(root)
    write_index(index, work / "arch.csv")
    t = time.perf_counter()
    m = pack(work / "arch.csv", work / "arch_packed", workers=WORKERS)
    dt = time.perf_counter() - t
    print(f"  pack, each archive streamed once: {m['num_patches'] / dt:6.1f} patches/s "
          f"({m['num_patches']} in {dt:.1f} s, {WORKERS} workers)")  # fmt: skip
    rows = random.Random(0).sample(index.rows, sample)
    t = time.perf_counter()
    for r in rows:
        for k in r.kinds:
            read_raster(index.resolve(r, k))  # GDAL /vsitar/: seeks inside the gzip stream
    dt = time.perf_counter() - t
    print(f"  per-file /vsitar/ reads, random order: {sample / dt:6.1f} patches/s "
          f"({sample} patches in {dt:.1f} s, 1 process, archive listing included)")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=("synth", "real", "both"), default="both")
    p.add_argument("--cold", action="store_true", help="evict the data from the page cache first")
    p.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    p.add_argument(
        "--archives", action="store_true", help="also time packing from .tar.gz archives"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # this process only collects batches (workers use 1 thread anyway)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__} (CUDA {'yes' if torch.cuda.is_available() else 'no'})"
    )
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        for kind in ("synth", "real") if args.data == "both" else (args.data,):
            run(kind, Path(work), args.cold)
        if args.archives:
            archives(Path(work))


if __name__ == "__main__":
    main()
