"""Tests of the synthetic SEN12MS-CR generator: layout, georeferencing, determinism, physics."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from cloudfree.bands import S1_BANDS, S2_BANDS, SEASONS
from cloudfree.cli import main
from cloudfree.data.synthetic.release import (
    LandCover,
    clear_s2,
    cover_from_s2,
    land_cover,
    s1_from_cover,
    synthesize,
)
from cloudfree.data.synthetic.release import (
    truth_path as synth_truth_path,
)
from cloudfree.errors import DataError
from cloudfree.io import RasterMeta, read_meta, read_raster, write_raster

NAME = re.compile(r"^(ROIs\d+_[a-z]+)_(s1|s2|s2_cloudy)_(\d+)_p(\d+)\.tif$")
# The official SEN12MS-CR split (spec section 1), written out here independently of synth.py.
TEST_SCENES = {("spring", s) for s in (106, 123, 140, 31, 44)} | {("summer", 119), ("summer", 73)}
TEST_SCENES |= {("fall", 139), ("winter", 108), ("winter", 63)}
VAL_SCENES = {("winter", s) for s in (22, 107, 130, 84)} | {
    ("summer", s) for s in (19, 80, 127, 17)
}
VAL_SCENES |= {("fall", 65), ("spring", 17)}
SEASON_OF = {roi: season for season, roi in SEASONS.items()}


def triplets(root: Path) -> dict[tuple[str, int, int], dict[str, Path]]:
    """{(roi_season, scene, patch): {kind: path}} for every release file under root."""
    found: dict[tuple[str, int, int], dict[str, Path]] = {}
    for path in sorted(root.glob("ROIs*_*/*_*/*.tif")):
        m = NAME.match(path.name)
        assert m, path
        roi, kind, scene, patch = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        assert path.parent.name == f"{kind}_{scene}" and path.parent.parent.name == f"{roi}_{kind}"
        found.setdefault((roi, scene, patch), {})[kind] = path
    return found


def truth_path(root: Path, key: tuple[str, int, int]) -> Path:
    return synth_truth_path(root, f"{key[0]}_{key[1]}_p{key[2]}")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert synthesize(out, n=8, seed=0, size=64) == 8
    return out


def test_layout_dtypes_and_georeferencing(dataset: Path) -> None:
    found = triplets(dataset)
    assert len(found) == 8
    for key, files in found.items():
        assert set(files) == {"s1", "s2", "s2_cloudy"}
        metas = {k: read_meta(p) for k, p in files.items()}
        truth = read_meta(truth_path(dataset, key))
        assert (metas["s1"].count, metas["s1"].dtype) == (2, "float32")
        assert metas["s1"].descriptions == S1_BANDS
        for kind in ("s2", "s2_cloudy"):
            assert (metas[kind].count, metas[kind].dtype) == (13, "uint16")
            assert metas[kind].descriptions == S2_BANDS
        assert (truth.count, truth.dtype) == (1, "uint8")
        m = metas["s2"]
        assert (m.width, m.height) == (64, 64)
        assert 32601 <= m.crs.to_epsg() <= 32760  # UTM
        assert (m.transform.a, m.transform.e, m.transform.b, m.transform.d) == (10, -10, 0, 0)
        assert all(m.same_grid(other) for other in (*metas.values(), truth))


def test_splits_get_official_val_and_test_scenes(dataset: Path) -> None:
    scenes = [(SEASON_OF[roi], scene) for roi, scene, _ in triplets(dataset)]
    n_test = sum(s in TEST_SCENES for s in scenes)
    n_val = sum(s in VAL_SCENES for s in scenes)
    assert n_test >= 1 and n_val >= 1
    assert len(scenes) - n_test - n_val >= 5  # ~70 % train
    assert len({season for season, _ in scenes}) == 4


def test_patches_of_a_scene_are_adjacent_and_continuous(tmp_path: Path) -> None:
    synthesize(tmp_path, n=20, seed=2, size=32)  # 14 train patches over 4 scenes
    found = triplets(tmp_path)
    by_scene: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
    for roi, scene, patch in found:
        by_scene.setdefault((roi, scene), []).append((roi, scene, patch))
    multi = [keys for keys in by_scene.values() if len(keys) > 1]
    assert multi, "expected a scene with several patches"
    for keys in multi:
        origins = {k: read_meta(found[k]["s2"]).transform for k in keys}
        for k, t in origins.items():
            steps = {(round(o.c - t.c), round(o.f - t.f)) for kk, o in origins.items() if kk != k}
            assert steps & {(320, 0), (-320, 0), (0, 320), (0, -320)}, f"{k} has no neighbour"
    # The landscape runs on across a shared edge: the step across it is like a step inside.
    pairs = [
        (found[k1]["s2"], found[k2]["s2"])
        for keys in multi
        for k1 in keys
        for k2 in keys
        if read_meta(found[k2]["s2"]).transform.c - read_meta(found[k1]["s2"]).transform.c == 320
        and read_meta(found[k2]["s2"]).transform.f == read_meta(found[k1]["s2"]).transform.f
    ]
    assert pairs
    across, inside, apart = [], [], []
    for west, east in pairs:
        a, b = read_raster(west)[0][7].astype(float), read_raster(east)[0][7].astype(float)
        across.append(np.abs(b[:, 0] - a[:, -1]).mean())  # neighbouring columns, 10 m apart
        inside.append(np.abs(np.diff(a, axis=1)).mean())
        apart.append(np.abs(b[:, 0] - a[:, 0]).mean())  # columns one patch apart
    assert np.mean(across) < 1.5 * np.mean(inside)
    assert np.mean(across) < 0.6 * np.mean(apart)


def test_same_seed_same_arrays_other_seed_differs(tmp_path: Path) -> None:
    def arrays(root: Path) -> dict[str, np.ndarray]:
        return {str(p.relative_to(root)): read_raster(p)[0] for p in sorted(root.rglob("*.tif"))}

    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        synthesize(tmp_path / name, n=4, seed=seed, size=32)
    a, b, c = (arrays(tmp_path / x) for x in "abc")
    assert a.keys() == b.keys() and len(a) == 16
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a if k in c)


def test_land_cover_is_coherent_not_salt_and_pepper() -> None:
    classes: set[int] = set()
    for seed in range(4):
        cover = land_cover((128, 160), np.random.default_rng(seed))
        assert cover.dtype == np.uint8 and cover.shape == (128, 160)
        same = np.mean(cover[:, 1:] == cover[:, :-1]), np.mean(cover[1:] == cover[:-1])
        assert min(same) > 0.85  # independent pixels over >= 3 classes would give < 0.5
        classes |= set(np.unique(cover).tolist())
    assert {LandCover.WATER, LandCover.FOREST, LandCover.CROPLAND} <= classes


def _striped_cover() -> np.ndarray:
    cover = np.empty((48, 6 * 32), dtype=np.uint8)
    for i, c in enumerate(LandCover):
        cover[:, i * 32 : (i + 1) * 32] = c
    return cover


def test_clear_s2_class_spectra_are_plausible() -> None:
    cover = _striped_cover()
    s2 = clear_s2(cover, np.random.default_rng(0))
    assert s2.dtype == np.uint16 and s2.shape == (13, 48, 192)
    b = s2.astype(float)

    def interior(c: LandCover) -> np.ndarray:  # away from mixed pixels at class edges
        return binary_erosion(cover == c, iterations=6)

    forest, water = interior(LandCover.FOREST), interior(LandCover.WATER)
    ndvi = (b[7] - b[3]) / (b[7] + b[3])
    ndwi = (b[2] - b[7]) / (b[2] + b[7])  # McFeeters, green vs NIR
    assert (ndvi[forest] > 0.4).all()
    assert (ndwi[water] > 0).all() and (b[7][water] < 300).all()
    assert 2500 < b[7][forest].mean() < 4500 and b[3][forest].mean() < 800
    assert (b[10] < 60).all()  # cirrus band: the surface is hidden by water vapour
    veg = interior(LandCover.FOREST) | interior(LandCover.CROPLAND)
    assert 1000 < b[0][veg].mean() < 1600  # B1 lifted by path radiance in L1C
    snow = interior(LandCover.SNOW)
    assert b[2][snow].mean() > 5000 and b[11][snow].mean() < 1500  # bright, dark in SWIR
    # Within-class texture: not a flat colour.
    assert b[7][forest].std() > 30


def test_s1_water_darker_than_urban_and_speckle_statistics() -> None:
    cover = _striped_cover()
    s1 = s1_from_cover(cover, np.random.default_rng(0))
    assert s1.dtype == np.float32 and s1.shape == (2, 48, 192)
    water, urban = cover == LandCover.WATER, cover == LandCover.URBAN
    for band in (0, 1):
        assert s1[band][water].mean() < s1[band][urban].mean() - 10
    assert -25 < s1[0][water].mean() < -19 and -12 < s1[0][cover == LandCover.FOREST].mean() < -6
    # 4-look speckle: linear power is Gamma(4, 1/4) x signal, coefficient of variation 1/sqrt(4).
    power = 10 ** (s1[0][cover == LandCover.FOREST] / 10)
    assert 0.4 < power.std() / power.mean() < 0.7


def test_dataset_physics(dataset: Path) -> None:
    before, after = [], []
    for key, files in triplets(dataset).items():
        clear = read_raster(files["s2"])[0].astype(float)
        cloudy = read_raster(files["s2_cloudy"])[0].astype(float)
        truth = read_raster(truth_path(dataset, key))[0][0]
        assert np.array_equal(clear[:, truth == 0], cloudy[:, truth == 0])
        # Clouds brighten everything but snow (as bright as a cloud in the visible); a patch of
        # thin haze only brightens by a few hundred DN, thick clouds by thousands.
        cloud = (truth == 1) & (clear[1:4].mean(0) < 3000)
        if cloud.sum() > 20:
            assert cloudy[1:4][:, cloud].mean() > clear[1:4][:, cloud].mean() + 100
            before.append(clear[1:4][:, cloud].ravel())
            after.append(cloudy[1:4][:, cloud].ravel())
        if (truth == 2).sum() > 20:
            assert cloudy[7][truth == 2].mean() < 0.9 * clear[7][truth == 2].mean()
    assert np.concatenate(after).mean() > np.concatenate(before).mean() + 1000


def _link(src: Path, dst_root: Path, root: Path) -> Path:
    dst = dst_root / src.relative_to(root)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)
    return dst


def test_clear_from_real_patches_keeps_arrays_and_grid(
    tmp_path: Path, sen12mscr_root: Path
) -> None:
    out = tmp_path / "out"
    assert synthesize(out, n=3, seed=0, size=256, clear_from=sen12mscr_root) == 3
    found = triplets(out)
    assert len(found) == 3
    for (roi, scene, patch), files in found.items():
        src = sen12mscr_root / f"{roi}_s2" / f"s2_{scene}" / f"{roi}_s2_{scene}_p{patch}.tif"
        assert src.exists(), "a whole release patch keeps its name"
        src_arr, src_meta = read_raster(src)
        arr, meta = read_raster(files["s2"])
        assert np.array_equal(arr, src_arr)
        assert meta.crs == src_meta.crs and meta.transform == src_meta.transform
        assert read_meta(files["s2_cloudy"]).same_grid(src_meta)
        assert read_meta(files["s1"]).count == 2  # synthesised: these scenes have no S1


def test_clear_from_uses_matching_s1_and_tiles(tmp_path: Path, sen12mscr_root: Path) -> None:
    # The one complete triplet of the sample (winter 112 p797), linked, plus its cloudy file
    # (must be ignored) and a 1-band file (must be skipped with a warning).
    src = tmp_path / "src"
    name = "ROIs2017_winter_{k}/{k}_112/ROIs2017_winter_{k}_112_p797.tif"
    s2, s1 = (_link(sen12mscr_root / name.format(k=k), src, sen12mscr_root) for k in ("s2", "s1"))
    _link(sen12mscr_root / name.format(k="s2_cloudy"), src, sen12mscr_root)
    other = RasterMeta(16, 16, 1, "uint8", read_meta(s2).crs, read_meta(s2).transform)
    write_raster(src / "other.tif", np.zeros((1, 16, 16), np.uint8), other)
    with pytest.warns(UserWarning, match="skipped 1 files"):
        assert synthesize(tmp_path / "whole", n=5, seed=0, size=256, clear_from=src) == 1
    out = triplets(tmp_path / "whole")[("ROIs2017_winter", 112, 797)]
    assert np.array_equal(read_raster(out["s1"])[0], read_raster(s1)[0])

    with pytest.warns(UserWarning):
        assert synthesize(tmp_path / "tiles", n=10, seed=0, size=128, clear_from=src) == 4
    src_arr, src_meta = read_raster(s2)
    s1_arr = read_raster(s1)[0]
    found = triplets(tmp_path / "tiles")
    assert {k[:2] for k in found} == {("ROIs2017_winter", 112)} and len(found) == 4
    for files in found.values():
        arr, m = read_raster(files["s2"])
        col, row = ~src_meta.transform * (m.transform.c, m.transform.f)
        r, c = round(row), round(col)
        assert np.array_equal(arr, src_arr[:, r : r + 128, c : c + 128])
        assert np.array_equal(read_raster(files["s1"])[0], s1_arr[:, r : r + 128, c : c + 128])
        assert m.crs == src_meta.crs


def test_clear_from_sen1floods11_takes_its_real_s1(tmp_path: Path, shared_data: Path) -> None:
    # Sen1Floods11 names its S1 beside its S2: <chip>_S1Hand.tif next to <chip>_S2Hand.tif.
    src = tmp_path / "src"
    src.mkdir()
    for kind in ("S2Hand", "S1Hand"):
        (src / f"Spain_7370579_{kind}.tif").symlink_to(
            shared_data / "sen1floods11" / f"Spain_7370579_{kind}.tif"
        )
    with pytest.warns(UserWarning, match="skipped 1 files"):  # the 2-band S1 is no S2 source
        assert synthesize(tmp_path / "out", n=4, seed=0, size=256, clear_from=src) == 4
    s1_real = read_raster(src / "Spain_7370579_S1Hand.tif")[0]
    src_meta = read_meta(src / "Spain_7370579_S2Hand.tif")
    for files in triplets(tmp_path / "out").values():
        m = read_meta(files["s1"])
        col, row = ~src_meta.transform * (m.transform.c, m.transform.f)
        r, c = round(row), round(col)
        np.testing.assert_array_equal(
            read_raster(files["s1"])[0], s1_real[:, r : r + 256, c : c + 256]
        )


def test_clear_from_int16_non_release_file(tmp_path: Path) -> None:
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    arr = rng.integers(-50, 4000, size=(13, 40, 70)).astype(np.int16)
    meta = RasterMeta(
        70, 40, 13, "int16", CRS.from_epsg(4326), from_origin(-0.78, 38.1, 1e-4, 1e-4)
    )
    write_raster(tmp_path / "src" / "scene.tif", arr, meta)
    assert synthesize(tmp_path / "out", n=9, seed=0, size=32, clear_from=tmp_path / "src") == 2
    found = triplets(tmp_path / "out")
    assert len({k[:2] for k in found}) == 1  # one new scene of its own
    for files in found.values():
        out, m = read_raster(files["s2"])
        assert m.crs == meta.crs and m.transform.a == 1e-4
        c = round((m.transform.c - meta.transform.c) / 1e-4)
        assert np.array_equal(out, np.clip(arr[:, :32, c : c + 32], 0, None).astype(np.uint16))
        assert read_meta(files["s1"]).dtype == "float32"


def test_clear_from_without_usable_files_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*no usable clear Sentinel-2"):
        synthesize(tmp_path / "out", n=2, clear_from=tmp_path / "empty")
    with pytest.raises(DataError, match="not a folder"):
        synthesize(tmp_path / "out", n=2, clear_from=tmp_path / "missing")


def test_cover_from_s2_recognises_water_and_vegetation() -> None:
    cover = _striped_cover()
    s2 = clear_s2(cover, np.random.default_rng(3))
    guess = cover_from_s2(s2)
    for c in (LandCover.WATER, LandCover.FOREST, LandCover.SNOW):
        inner = binary_erosion(cover == c, iterations=3)
        assert (guess[inner] == c).mean() > 0.95


def test_cli(tmp_path: Path) -> None:
    assert main(["synth", str(tmp_path / "d"), "--n", "4", "--size", "64", "--seed", "1"]) == 0
    assert (
        len(triplets(tmp_path / "d")) == 4 and len(list((tmp_path / "d" / "truth").iterdir())) == 4
    )
    with pytest.raises(SystemExit) as usage:  # a count below 1: a usage error, exit 2
        main(["synth", str(tmp_path / "e"), "--n", "0"])
    assert usage.value.code == 2 and not (tmp_path / "e").exists()
    shutil.rmtree(tmp_path / "d")
