"""Synthetic SEN12MS-CR-like triplets: land cover, 13-band L1C S2, speckled S1, clouds, shadows.

Everything here is *synthetic*: plausible enough to exercise the pipeline (loaders, cloud masks,
training, metrics, the demo), never a substitute for real data. The library functions work on
arrays of any size (whole scenes too) and are vectorised numpy; every random draw comes from the
``numpy.random.Generator`` passed in, so a seed fixes every byte.

``synthesize(out, n, seed)`` writes the release layout (spec section 1) plus the cloud truth::

    OUT/ROIs1158_spring_s1/s1_17/ROIs1158_spring_s1_17_p1.tif                2 x float32 (VV, VH dB)
    OUT/ROIs1158_spring_s2/s2_17/ROIs1158_spring_s2_17_p1.tif                13 x uint16 (clear)
    OUT/ROIs1158_spring_s2_cloudy/s2_cloudy_17/ROIs1158_spring_s2_cloudy_17_p1.tif   (cloudy)
    OUT/truth/cloud_truth_ROIs1158_spring_17_p1.tif  1 x uint8: 0 clear, 1 cloud, 2 cloud shadow

``truth/`` is outside the release layout and its names do not start with ``ROIs``, so indexers
ignore it; :func:`truth_path` gives the file of a patch id (``IndexRow.id``) and it lies on the
same grid as the patch. The clouds, their shadows and the truth come from
:func:`cloudfree.data.synthetic.clouds.simulate_clouds`: where truth is 0 the cloudy image is *exactly*
the clear one (no global haze: every cloud or haze pixel is labelled 1).
"""

from __future__ import annotations

import math
import re
import warnings
import zlib
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path

import numpy as np

from cloudfree.bands import GSD_M, NUM_S2_BANDS, S1_BANDS, S2_BANDS, S2_NATIVE_GSD_M, SEASONS
from cloudfree.data.release.splits import OFFICIAL_TEST_SCENES, OFFICIAL_VAL_SCENES
from cloudfree.data.synthetic.clouds import simulate_clouds
from cloudfree.data.synthetic.noise import fractal_noise, level_for_fraction
from cloudfree.errors import DataError
from cloudfree.io import RasterMeta, read_meta, read_raster, write_raster


class LandCover(IntEnum):
    """Classes of the synthetic land cover (values of the ``land_cover`` array)."""

    WATER = 0
    FOREST = 1
    CROPLAND = 2
    BARE_SOIL = 3
    URBAN = 4
    SNOW = 5


# Synthetic L1C TOA reflectance x 10000 per class, bands in S2_BANDS order (B1..B12 with B8A).
# Hand-set approximations of typical L1C signatures; forest, water, the dark-pixel floor and
# the B9/B10 levels were checked against medians of the real SEN12MS-CR patches in
# shared/data (e.g. NDVI > 0.6 pixels: 1148 858 733 465 813 2275 2910 2866 3221 819 10 1546 681).
# B1/B2 are high for every class because L1C includes the path radiance (``_PATH`` in
# cloudfree.data.synthetic.clouds).
#                   B1    B2    B3    B4    B5    B6    B7    B8   B8A   B9  B10   B11   B12
_SPECTRA = np.array([
    [1250,  950,  720,  420,  340,  260,  240,  200,  190,   70,   8,   60,   35],  # water
    [1150,  830,  700,  440,  820, 2250, 2850, 3000, 3200,  850,  12, 1500,  650],  # forest
    [1350, 1250, 1400, 1700, 1950, 2100, 2250, 2400, 2550,  850,  20, 3300, 2600],  # cropland*
    [1350, 1250, 1400, 1700, 1950, 2100, 2250, 2400, 2550,  850,  20, 3300, 2600],  # bare soil
    [1500, 1450, 1450, 1550, 1700, 1800, 1900, 1950, 2050,  700,  22, 2400, 2100],  # urban
    [8600, 8800, 8700, 8500, 8300, 8000, 7800, 7500, 7300, 3100,  40,  900,  650],  # snow
], dtype=np.float32)  # fmt: skip
# *cropland mixes bare soil with this green-crop spectrum by a per-parcel vigour in [0, 1].
_GREEN_CROP = np.array(
    [1200, 880, 850, 520, 1150, 2700, 3400, 3800, 4000, 1150, 14, 2100, 1000], dtype=np.float32
)
# S1 sigma0 (VV, VH) in dB per class: calm water specular, urban double bounce, volume
# scattering of canopies, rough bare soil; dry snow is mostly transparent (soil below).
_S1_DB = np.array(
    [[-22.0, -28.0], [-8.0, -14.0], [-10.0, -16.5], [-12.0, -19.0], [-3.0, -10.0], [-13.0, -21.0]],
    dtype=np.float32,
)
_S1_LOOKS = 4  # multi-look speckle: linear power ~ Gamma(L, 1/L)

_MAX_BLOCK = 16  # patches generated as one continuous landscape (4 x 4)
_SNOW_P = {"spring": 0.15, "summer": 0.0, "fall": 0.05, "winter": 0.5}
_RELEASE_RE = re.compile(
    r"^(?P<roi>ROIs\d+_[a-z]+)_(?P<kind>s1|s2_cloudy|s2)_(?P<scene>\d+)_p(?P<patch>\d+)\.tiff?$"
)


def _above(field: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the ``fraction`` of pixels where ``field`` is highest."""
    return field > level_for_fraction(field, fraction)


def land_cover(
    shape: tuple[int, int], rng: np.random.Generator, snow: bool | None = None
) -> np.ndarray:
    """Spatially coherent land cover (blobs, rivers, towns), values of ``LandCover``.

    Smooth 1/f fields are thresholded at random quantiles, so class fractions vary from call
    to call: land use (forest / cropland / bare soil), towns, lakes in the lowest relief, a
    river along a level set, and snow on the highest relief (``snow`` None: probability 0.25).
    Returns uint8 (H, W).
    """
    relief = fractal_noise(shape, rng, beta=3.6, scale_px=rng.uniform(80, 250))
    use = fractal_noise(shape, rng, beta=3.8, scale_px=rng.uniform(40, 120))
    town = fractal_noise(shape, rng, beta=3.6, scale_px=rng.uniform(15, 50))
    river = np.abs(fractal_noise(shape, rng, beta=4.0, scale_px=rng.uniform(100, 300)))
    cover = np.full(shape, LandCover.CROPLAND, dtype=np.uint8)
    cover[_above(-use, rng.uniform(0.15, 0.45))] = LandCover.FOREST
    cover[_above(use, rng.uniform(0.0, 0.2))] = LandCover.BARE_SOIL
    cover[_above(town, rng.uniform(0.0, 0.12))] = LandCover.URBAN
    with_snow = rng.random() < 0.25 if snow is None else snow
    if with_snow:
        cover[_above(relief, rng.uniform(0.1, 0.4))] = LandCover.SNOW
    water = _above(-relief, rng.uniform(0.0, 0.15))
    if rng.random() < 0.6:  # a meandering river: a thin band around a zero level-set
        water |= _above(-river, rng.uniform(0.01, 0.03))
    cover[water] = LandCover.WATER
    return cover


def _blur_native(cube: np.ndarray) -> np.ndarray:
    """Smooth each band by its native resolution (20/60 m bands were resampled to 10 m)."""
    from scipy.ndimage import gaussian_filter

    for b, name in enumerate(S2_BANDS):
        sigma = 0.4 * S2_NATIVE_GSD_M[name] / GSD_M  # 10 m: 0.4 px (PSF), 60 m: 2.4 px
        cube[b] = gaussian_filter(cube[b], sigma, mode="wrap")
    return cube


def clear_s2(cover: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cloud-free 13-band L1C TOA reflectance x 10000 for a land-cover map.

    Class spectra (``_SPECTRA``) with per-parcel crop vigour, smooth within-class brightness
    and NIR texture, per-band blur by native resolution and sensor noise (~0.4 % + 3 DN).

    Args:
        cover: uint8 (H, W) of ``LandCover`` values.
        rng: random generator.
    Returns:
        uint16 (13, H, W) in ``S2_BANDS`` order, typically 0..9000.
    """
    h, w = cover.shape
    cube = _SPECTRA.T[:, cover.astype(np.intp)]  # (13, H, W)
    # Cropland parcels: rectangles of one vigour each (green crop vs bare soil).
    p = int(rng.integers(10, 26))
    grid = rng.beta(3.0, 1.5, size=(h // p + 2, w // p + 2)).astype(np.float32)
    oy, ox = rng.integers(0, p, size=2)
    vigour = np.repeat(np.repeat(grid, p, 0), p, 1)[oy : oy + h, ox : ox + w]
    crop = cover == LandCover.CROPLAND
    mix = (
        vigour[None] * _GREEN_CROP[:, None, None] + (1 - vigour[None]) * _SPECTRA[3][:, None, None]
    )
    cube = np.where(crop[None], mix, cube)
    # Within-class texture: overall brightness, plus canopy density in red edge and NIR.
    cube *= 1.0 + 0.06 * fractal_noise(cover.shape, rng, beta=2.5, scale_px=30)
    veg = np.isin(cover, (LandCover.FOREST, LandCover.CROPLAND))
    cube[4:9] *= 1.0 + 0.07 * fractal_noise(cover.shape, rng, beta=2.0, scale_px=15) * veg
    cube = _blur_native(cube)
    cube += rng.standard_normal(cube.shape, dtype=np.float32) * (3.0 + 0.004 * cube)
    return np.clip(np.rint(cube), 0, 65535).astype(np.uint16)


def s1_from_cover(cover: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sentinel-1 VV, VH backscatter (dB) consistent with a land-cover map.

    Class means (``_S1_DB``) plus smooth texture (stronger in towns), then multiplicative
    4-look speckle (linear power times Gamma(4, 1/4)) and back to dB.
    Returns float32 (2, H, W), roughly -35..+5 dB.
    """
    db = _S1_DB.T[:, cover.astype(np.intp)]  # (2, H, W)
    spread = np.where(cover == LandCover.URBAN, 3.0, 1.0).astype(np.float32)
    db = db + spread * fractal_noise(cover.shape, rng, beta=2.5, scale_px=20)
    power = 10.0 ** (db / 10.0) * rng.gamma(_S1_LOOKS, 1.0 / _S1_LOOKS, size=db.shape)
    return (10.0 * np.log10(np.maximum(power, 1e-6))).astype(np.float32)


def cover_from_s2(s2_dn: np.ndarray) -> np.ndarray:
    """Rough land cover of a real clear S2 image (to synthesise a matching S1).

    Water: NDWI (B3, B8) > 0; snow: NDSI (B3, B11) > 0.4 and bright visible; forest NDVI > 0.55,
    cropland NDVI > 0.3, else bare soil (towns are not told apart from soil). Returns uint8.
    """
    b = s2_dn.astype(np.float32)
    green, red, nir, swir = b[2], b[3], b[7], b[11]
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = np.nan_to_num((nir - red) / (nir + red))
        ndwi = np.nan_to_num((green - nir) / (green + nir))
        ndsi = np.nan_to_num((green - swir) / (green + swir))
    cover = np.full(ndvi.shape, LandCover.BARE_SOIL, dtype=np.uint8)
    cover[ndvi > 0.3] = LandCover.CROPLAND
    cover[ndvi > 0.55] = LandCover.FOREST
    cover[ndwi > 0.0] = LandCover.WATER
    cover[(ndsi > 0.4) & (b[1:4].mean(0) > 3000)] = LandCover.SNOW
    return cover


def truth_path(out: str | Path, patch_id: str) -> Path:
    """The cloud-truth GeoTIFF of a synthetic patch: ``OUT/truth/cloud_truth_<id>.tif``."""
    return Path(out) / "truth" / f"cloud_truth_{patch_id}.tif"


@dataclass(frozen=True)
class _Patch:
    roi_season: str
    scene: int
    patch: int

    def path(self, out: Path, kind: str) -> Path:
        return (
            out
            / f"{self.roi_season}_{kind}"
            / f"{kind}_{self.scene}"
            / f"{self.roi_season}_{kind}_{self.scene}_p{self.patch}.tif"
        )

    def truth_path(self, out: Path) -> Path:
        return truth_path(out, f"{self.roi_season}_{self.scene}_p{self.patch}")

    def rng(self, seed: int, stream: int = 0) -> np.random.Generator:
        """Generator of this patch: independent of the order patches are written in."""
        return np.random.default_rng([seed, zlib.crc32(f"{self}".encode()), stream])


def _write_triplet(
    out: Path, p: _Patch, meta: RasterMeta, s1: np.ndarray, s2: np.ndarray, seed: int
) -> None:
    cloudy, truth = simulate_clouds(s2, p.rng(seed))
    plain = replace(meta, nodata=None)  # a source's S2 nodata means nothing for S1 or truth
    write_raster(p.path(out, "s1"), s1.astype(np.float32), plain, descriptions=S1_BANDS)
    write_raster(p.path(out, "s2"), s2, meta, descriptions=S2_BANDS)
    write_raster(p.path(out, "s2_cloudy"), cloudy, meta, descriptions=S2_BANDS)
    write_raster(p.truth_path(out), truth[None], plain, descriptions=("cloud_truth",))


def _one_per_season(by_season: dict[str, tuple[int, ...]]) -> list[tuple[str, int]]:
    """Scenes in the order spring, summer, fall, winter, spring, ... (each season's order)."""
    longest = max(map(len, by_season.values()))
    return [
        (season, by_season[season][i])
        for i in range(longest)
        for season in SEASONS
        if i < len(by_season.get(season, ()))
    ]


def _scene_plan(n: int) -> list[tuple[str, int, int]]:
    """``(season, scene, patches)`` for n patches: ~70/15/15 train/val/test.

    Val and test patches go to the official val/test scenes (spec section 1), one season after
    the other, so that the official split finds them; train patches to other scene numbers.
    """
    k = int(round(0.15 * n))
    val, test = _one_per_season(OFFICIAL_VAL_SCENES), _one_per_season(OFFICIAL_TEST_SCENES)
    official = set(val) | set(test)
    train = [
        (season, i) for i in range(1, 200) for season in SEASONS if (season, i) not in official
    ]
    plan: list[tuple[str, int, int]] = []
    for scenes, m in ((train, n - 2 * k), (val, k), (test, k)):
        count = min(len(scenes), max(math.ceil(m / _MAX_BLOCK), min(4, m)))
        for j in range(count):
            share = m // count + (j < m % count)
            plan.append((*scenes[j], share))
    return plan


def _synthesize_scenes(out: Path, n: int, seed: int, size: int) -> int:
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    written = 0
    for season, scene, m in _scene_plan(n):
        roi = SEASONS[season]
        rng = np.random.default_rng([seed, zlib.crc32(f"{roi}_{scene}".encode())])
        crs = CRS.from_epsg(int(rng.integers(32601, 32661)))  # UTM north
        x0, y0 = float(rng.integers(30, 70) * 10000), float(rng.integers(100, 700) * 10000)
        number = 1
        for start in range(0, m, _MAX_BLOCK):
            # One continuous landscape per block of up to 4 x 4 patches; blocks lie side by side.
            k = min(_MAX_BLOCK, m - start)
            cols = math.ceil(math.sqrt(k))
            rows = math.ceil(k / cols)
            cover = land_cover((rows * size, cols * size), rng, snow=rng.random() < _SNOW_P[season])
            s2, s1 = clear_s2(cover, rng), s1_from_cover(cover, rng)
            for i in range(k):
                r, c = divmod(i, cols)
                win = np.s_[..., r * size : (r + 1) * size, c * size : (c + 1) * size]
                transform = from_origin(x0 + c * size * GSD_M, y0 - r * size * GSD_M, GSD_M, GSD_M)
                meta = RasterMeta(size, size, 1, "uint16", crs=crs, transform=transform)
                _write_triplet(out, _Patch(roi, scene, number), meta, s1[win], s2[win], seed)
                number += 1
                written += 1
            x0 += cols * size * GSD_M
    return written


@dataclass(frozen=True)
class _Source:
    path: Path
    meta: RasterMeta
    release: _Patch | None


def _find_sources(root: Path, size: int) -> tuple[list[_Source], dict[_Patch, Path], list[str]]:
    """Clear S2 candidates under root, release S1 files by id, and the files skipped (why)."""
    sources: list[_Source] = []
    s1_files: dict[_Patch, Path] = {}
    skipped: list[str] = []
    files = sorted(p for p in root.rglob("*") if p.suffix in (".tif", ".tiff") and p.is_file())
    for path in files:
        m = _RELEASE_RE.match(path.name)
        rel = _Patch(m["roi"], int(m["scene"]), int(m["patch"])) if m else None
        if m and m["kind"] == "s2_cloudy":
            continue  # cloudy inputs are not clear targets
        if m and rel is not None and m["kind"] == "s1":
            s1_files[rel] = path
            continue
        try:
            meta = read_meta(path)
        except DataError as e:
            skipped.append(f"{path} ({e.problem})")
            continue
        if meta.count != NUM_S2_BANDS or meta.dtype not in ("uint16", "int16"):
            skipped.append(f"{path} ({meta.count} bands of {meta.dtype})")
        elif meta.width < size or meta.height < size:
            skipped.append(f"{path} ({meta.height}x{meta.width} px < {size}x{size})")
        else:
            sources.append(_Source(path, meta, rel))
    return sources, s1_files, skipped


def _sibling_s1(path: Path) -> Path | None:
    """The real S1 file that goes with a clear S2 file outside the release layout, if any:
    Sen1Floods11's ``<chip>_S2Hand.tif`` -> ``<chip>_S1Hand.tif`` (same grid)."""
    if "_S2Hand" not in path.name:
        return None
    s1 = path.with_name(path.name.replace("_S2Hand", "_S1Hand"))
    return s1 if s1.is_file() else None


def _synthesize_from(out: Path, n: int, seed: int, size: int, clear_from: Path) -> int:
    if not clear_from.is_dir():
        raise DataError(clear_from, "is not a folder", "a folder of clear 13-band S2 GeoTIFFs")
    sources, s1_files, skipped = _find_sources(clear_from, size)
    if skipped:
        warnings.warn(
            f"{clear_from}: skipped {len(skipped)} files that are not 13-band uint16/int16 S2 "
            f"images of at least {size}x{size} px: "
            + "; ".join(skipped[:5])
            + (f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""),
            stacklevel=3,
        )
    if not sources:
        raise DataError(
            clear_from,
            "holds no usable clear Sentinel-2 image",
            f"13-band uint16/int16 GeoTIFFs of at least {size}x{size} px, searched recursively "
            "(e.g. the s2_<scene>/ folders of the SEN12MS-CR release; s2_cloudy files are skipped)",
        )
    # Output ids: a release patch used whole keeps its id; tiles of a release file get fresh
    # patch numbers in its scene; other files get a scene of their own (1000, 1001, ...).
    rois = list(SEASONS.values())
    used: dict[tuple[str, int], int] = {}
    for s in sources:
        if s.release:
            key = (s.release.roi_season, s.release.scene)
            used[key] = max(used.get(key, 0), s.release.patch)
    tiles: list[list[tuple[_Source, int, int, _Patch]]] = []
    taken: set[_Patch] = set()
    extra = 0
    for s in sources:
        cells = [
            (r, c)
            for r in range(0, s.meta.height - size + 1, size)
            for c in range(0, s.meta.width - size + 1, size)
        ]
        whole = (s.meta.height, s.meta.width) == (size, size) and s.release not in taken
        if s.release is None:
            roi, scene = rois[extra % len(rois)], 1000 + extra
            extra += 1
        else:
            roi, scene = s.release.roi_season, s.release.scene
        ids = []
        for r, c in cells:
            if s.release is not None and whole:
                taken.add(s.release)
                ids.append((s, r, c, s.release))
                continue
            key = (roi, scene)
            used[key] = used.get(key, 0) + 1
            ids.append((s, r, c, _Patch(roi, scene, used[key])))
        tiles.append(ids)
    # Round-robin over files so that a small n still samples many of them.
    order = [t[i] for i in range(max(map(len, tiles))) for t in tiles if i < len(t)][:n]
    for s, r, c, pid in order:
        arr, meta = read_raster(s.path, window=(r, c, size, size))
        s2 = np.clip(arr, 0, 65535).astype(np.uint16)  # int16 sources: negatives -> 0
        s1 = None
        s1_path = s1_files.get(s.release) if s.release else _sibling_s1(s.path)
        if s1_path is not None:
            if read_meta(s1_path).same_grid(s.meta):
                s1 = read_raster(s1_path, window=(r, c, size, size), out_dtype="float32")[0]
            else:
                warnings.warn(
                    f"{s1_path} is not on the grid of {s.path}: S1 synthesised", stacklevel=3
                )
        if s1 is None:
            s1 = s1_from_cover(cover_from_s2(s2), pid.rng(seed, stream=1))
        _write_triplet(out, pid, meta, s1, s2, seed)
    return len(order)


#: The file that marks a folder as written by :func:`synthesize` (its arguments, as JSON):
#: synthetic patches never go into a folder of real ones, and never pass for real ones.
MARKER = "SYNTHETIC.json"


def _claim(out: Path, **args: object) -> None:
    """Refuse a folder that holds GeoTIFFs :func:`synthesize` did not write (a real release:
    its patches have the release names the synthetic ones take); else mark it as synthetic.

    Raises:
        DataError: ``out`` holds GeoTIFFs but no :data:`MARKER`.
    """
    import json

    from cloudfree.io import atomic_path

    if out.is_dir() and not (out / MARKER).is_file():
        found = next((p for p in out.rglob("*") if p.suffix.lower() in (".tif", ".tiff")), None)
        if found is not None:
            raise DataError(
                out,
                f"holds GeoTIFFs that synth did not write (e.g. {found}); synthetic patches "
                "would replace them or mix with them",
                "a new or empty folder (or one an earlier synth wrote) for the synthetic dataset",
            )
    with atomic_path(out / MARKER) as tmp:
        record = {
            "written_by": "cloudfree synth",
            **{k: str(v) if isinstance(v, Path) else v for k, v in args.items()},
        }
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def synthesize(
    out: str | Path, n: int, seed: int = 0, size: int = 256, clear_from: str | Path | None = None
) -> int:
    """Write n synthetic triplets (and their cloud truth) in the SEN12MS-CR release layout.

    Without ``clear_from`` everything is synthetic: patches are spread over scenes of all four
    seasons, ~70 % train scenes and ~15 % each in official val and test scenes (spec section 1;
    n >= 4 gets both), in blocks of up to 4 x 4 adjacent patches of one continuous landscape on
    a UTM grid at 10 m. Clouds are drawn per patch, so every patch gets its own cloud cover.

    With ``clear_from``, the clear S2 images are real: every 13-band uint16/int16 GeoTIFF found
    under it (recursively; ``s2_cloudy`` release files skipped, other files warned about and
    skipped) is cut into ``size`` x ``size`` tiles keeping its CRS and transform, taken
    round-robin over files, up to n. S1 is the matching real S1 file where there is one (the
    release S1 of the same scene and patch, or Sen1Floods11's ``*_S1Hand.tif`` beside an
    ``*_S2Hand.tif``; on the same grid); otherwise it is *synthesised* from a rough
    NDVI/NDWI/NDSI land cover of the S2 image (``cover_from_s2`` -> ``s1_from_cover``).

    Returns:
        The number of triplets written. The same arguments always write the same arrays.
    Raises:
        DataError: bad n or size, or ``clear_from`` holds no usable image.
    """
    if n < 1 or size < 8:
        raise DataError(None, f"n={n}, size={size}", "n >= 1 triplets and a size >= 8 pixels")
    from cloudfree.outputs import created_folder

    # A failure (a full disk) removes the folder if this call created it.
    with created_folder(out) as folder:
        _claim(folder, n=n, seed=seed, size=size, clear_from=clear_from)
        if clear_from is not None:
            return _synthesize_from(folder, n, seed, size, Path(clear_from))
        return _synthesize_scenes(folder, n, seed, size)
