"""A synthetic georeferenced scene with known truth: cloudy S2, S1, clear S2 and the cloud truth.

For the demo and for tests of whole-scene prediction: a landscape (``synth.land_cover``) with
its clear Sentinel-2 L1C bands (``synth.clear_s2``), a matching Sentinel-1 VV/VH in dB
(``synth.s1_from_cover``) and simulated clouds and shadows (``clouds.simulate_clouds``), written
as GeoTIFFs on one 10 m UTM grid (EPSG:32633, an arbitrary place in Slovenia).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cloudfree.bands import GSD_M, S1_BANDS, S2_BANDS

#: Grid of the synthetic scene: UTM 33N, upper-left corner (metres), 10 m pixels.
SCENE_CRS = "EPSG:32633"
SCENE_ORIGIN = (460000.0, 5110000.0)


@dataclass(frozen=True)
class SceneFiles:
    """Paths of a synthetic scene written by :func:`synthesize_scene`."""

    s2_cloudy: Path  # 13-band uint16 L1C DN, the input
    s1: Path  # 2-band float32 dB (VV, VH)
    s2_clear: Path  # 13-band uint16, the cloud-free truth
    cloud_truth: Path  # uint8: 0 clear, 1 cloud, 2 shadow


def synthesize_scene(
    out: str | os.PathLike[str], size: int = 640, seed: int = 0, cloud_fraction: float = 0.35
) -> SceneFiles:
    """Write a ``size`` x ``size`` synthetic scene into folder ``out``.

    Args:
        out: output folder (created); files ``s2_cloudy.tif``, ``s1.tif``, ``s2_clear.tif``,
            ``cloud_truth.tif``, tiled and deflate-compressed, written atomically.
        size: side in pixels (10 m each).
        seed: random seed; the same seed gives the same files.
        cloud_fraction: approximate fraction of cloud pixels.

    Returns:
        The four paths.
    """
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from cloudfree.data.synthetic.clouds import simulate_clouds
    from cloudfree.data.synthetic.release import clear_s2, land_cover, s1_from_cover
    from cloudfree.io import RasterMeta, write_raster

    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    rng = np.random.default_rng(seed)
    cover = land_cover((size, size), rng, snow=False)
    clear = clear_s2(cover, rng)
    s1 = s1_from_cover(cover, rng)
    cloudy, truth = simulate_clouds(clear, rng, cover_fraction=cloud_fraction)

    out = Path(out)
    meta = RasterMeta(
        width=size,
        height=size,
        count=1,
        dtype="uint16",
        crs=CRS.from_string(SCENE_CRS),
        transform=from_origin(*SCENE_ORIGIN, GSD_M, GSD_M),
    )
    opts = {"tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    files = SceneFiles(
        s2_cloudy=out / "s2_cloudy.tif",
        s1=out / "s1.tif",
        s2_clear=out / "s2_clear.tif",
        cloud_truth=out / "cloud_truth.tif",
    )
    write_raster(files.s2_cloudy, cloudy, meta, descriptions=S2_BANDS, **opts)
    write_raster(files.s2_clear, clear, meta, descriptions=S2_BANDS, **opts)
    write_raster(files.s1, s1, meta, descriptions=S1_BANDS, **opts)
    write_raster(
        files.cloud_truth, truth, meta, descriptions=("0 clear, 1 cloud, 2 shadow",), **opts
    )
    return files
