"""The sample pipeline (sample.py), the SEN12MS-CR dataset and bad-patch batching.

Fake patches are tiny GeoTIFFs written here; every pixel of a fake patch carries a unique code
``g = row * size + col`` in every band of every file, so a sample shows exactly which pixels it
holds and in which orientation. Real patches come through the ``sen12mscr_root`` fixture.
"""

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window
from rasterio.windows import transform as rio_window_transform
from torch.utils.data import DataLoader, default_collate

from cloudfree.bands import DSEN2CR, KINDS
from cloudfree.data.collate import collate_skip_bad
from cloudfree.data.release.dataset import SEN12MSCR
from cloudfree.data.release.index import IndexResult, IndexRow, write_index
from cloudfree.data.sample import (
    SampleConfig,
    SamplePlan,
    make_sample,
    plan_sample,
    sample_rng,
    window_transform,
)
from cloudfree.errors import DataError, DatasetNotFoundError
from cloudfree.io import RasterMeta, read_meta, write_raster

CRS_UTM = CRS.from_epsg(32631)
X0, Y0 = 700000.0, 5600000.0


# ----------------------------------------------------------------------------- fake patches
def _codes(size: int) -> np.ndarray:
    return np.arange(size * size, dtype=np.int64).reshape(size, size)


def _coded_arrays(size: int) -> dict[str, np.ndarray]:
    """Raw arrays whose every band encodes the pixel code g (size <= 64 keeps DN < 10000)."""
    g = _codes(size)
    bands = np.arange(13)[:, None, None]
    step = 20.0 / 4096.0  # dB per code: exact in float32, spans 20 dB for size 64
    return {
        "s2_cloudy": (100 + g[None] + 10 * bands).astype(np.uint16),
        "s2": (200 + g[None] + 10 * bands).astype(np.uint16),
        "s1": np.stack([-25.0 + g * step, -32.5 + g * step]).astype(np.float32),
        "mask": (g % 251).astype(np.uint8),
    }


def _decode(sample: dict) -> dict[str, np.ndarray]:
    """Recover g from every array of a DSEN2CR-scaled sample (one (h, w) array per band)."""
    out = {}
    bands = np.arange(13)[:, None, None]
    s2c = np.rint(sample["s2_cloudy"].numpy().astype(np.float64) * 2000).astype(np.int64)
    out["s2_cloudy"] = s2c - 100 - 10 * bands
    if "s2" in sample:
        s2 = np.rint(sample["s2"].numpy().astype(np.float64) * 2000).astype(np.int64)
        out["s2"] = s2 - 200 - 10 * bands
    if "s1" in sample:
        s1 = sample["s1"].numpy().astype(np.float64)
        step = 20.0 / 4096.0
        vv = np.rint(s1[0] / 2 * 25.0 / step).astype(np.int64)
        vh = np.rint(s1[1] / 2 * 32.5 / step).astype(np.int64)
        out["s1"] = np.stack([vv, vh])
    return out


def _rel(roi: str, kind: str, scene: int, patch: int) -> str:
    return f"{roi}_{kind}/{kind}_{scene}/{roi}_{kind}_{scene}_p{patch}.tif"


def write_patch(
    root: Path,
    scene: int = 1,
    patch: int = 1,
    size: int = 64,
    kinds: tuple[str, ...] = KINDS,
    arrays: dict[str, np.ndarray] | None = None,
    split: str = "train",
    roi: str = "ROIs1970_fall",
) -> IndexRow:
    """Write one patch in the release layout and return its index row."""
    arrays = arrays if arrays is not None else _coded_arrays(size)
    paths = {}
    for kind in kinds:
        arr = arrays[kind]
        rel = _rel(roi, kind, scene, patch)
        meta = RasterMeta(
            width=arr.shape[-1],
            height=arr.shape[-2],
            count=arr.shape[0],
            dtype=arr.dtype.name,
            crs=CRS_UTM,
            transform=from_origin(X0, Y0, 10.0, 10.0),
        )
        write_raster(root / rel, arr, meta)
        paths[kind] = rel
    return IndexRow(roi, scene, patch, split, **paths)


def _reference(code_crop: np.ndarray, flip: int, k: int) -> np.ndarray:
    """The augmented crop, computed with plain numpy independently of transforms.py."""
    out = code_crop
    if flip == 1:
        out = out[..., ::-1, :]
    elif flip == 2:
        out = out[..., :, ::-1]
    return np.rot90(out, k, axes=(-2, -1))


# ----------------------------------------------------------------------------- sample.py
def test_sample_config_validates():
    with pytest.raises(ValueError, match="mode"):
        SampleConfig(mode="test")
    with pytest.raises(ValueError, match="crop_size"):
        SampleConfig(crop_size=0)
    with pytest.raises(KeyError, match="reflectance"):
        SampleConfig(scaling="percent")
    with pytest.raises(ValueError, match="larger than"):
        plan_sample(SampleConfig(crop_size=300), np.random.default_rng(0), 256)


def test_plan_sample_modes():
    rng = np.random.default_rng(0)
    assert plan_sample(SampleConfig(mode="eval", crop_size=None), rng) == SamplePlan(0, 0, 256, 256)
    # upstream validation: fixed top-left 128 x 128 window
    assert plan_sample(SampleConfig(mode="eval"), rng) == SamplePlan(0, 0, 128, 128)
    plans = [plan_sample(SampleConfig(augment=False), sample_rng(1, 0, i)) for i in range(50)]
    assert all(p.aug == (0, 0) for p in plans)
    assert len({p.window for p in plans}) > 40


def test_plan_distribution_at_paper_sizes():
    cfg = SampleConfig()
    plans = [plan_sample(cfg, sample_rng(42, e, i), 256) for e in range(8) for i in range(500)]
    rows = {p.row for p in plans}
    cols = {p.col for p in plans}
    assert rows == set(range(128)) and cols == set(range(128))  # upstream randint(0, 128)
    assert all((p.height, p.width) == (128, 128) for p in plans)
    assert Counter(p.flip for p in plans).keys() == {0, 1, 2}
    assert Counter(p.k for p in plans).keys() == {0, 1, 2, 3}


def test_window_transform_matches_rasterio():
    for aff in (from_origin(X0, Y0, 10.0, 10.0), rasterio.Affine(10.0, 0.5, X0, -0.3, -10.0, Y0)):
        ours = window_transform(aff, (17, 40, 128, 128))
        ref = rio_window_transform(Window(40, 17, 128, 128), aff)
        np.testing.assert_allclose(ours, tuple(ref)[:6], rtol=0, atol=1e-6)


def test_make_sample_keeps_every_array_aligned():
    size, crop = 64, 32
    raw_full = _coded_arrays(size)
    g = _codes(size)
    cfg = SampleConfig(crop_size=crop)
    seen = Counter()
    for i in range(60):
        plan = plan_sample(cfg, sample_rng(5, 0, i), size)
        r, c, h, w = plan.window
        raw = {k: v[..., r : r + h, c : c + w] for k, v in raw_full.items()}
        s = make_sample(raw, plan, cfg, {"id": "x", "scene": 1, "patch": 2})
        expected = _reference(g[r : r + h, c : c + w], plan.flip, plan.k)
        decoded = _decode(s)
        for key in ("s2_cloudy", "s2", "s1"):
            for band in decoded[key]:
                np.testing.assert_array_equal(band, expected)
        np.testing.assert_array_equal(s["mask"].numpy(), expected % 251)
        # the marker: the window's original top-left pixel sits at the same place everywhere
        where = np.argwhere(decoded["s2_cloudy"][0] == g[r, c])
        assert len(where) == 1
        (i0, j0) = where[0]
        assert decoded["s1"][1][i0, j0] == g[r, c] and decoded["s2"][12][i0, j0] == g[r, c]
        assert s["mask"][i0, j0] == g[r, c] % 251
        assert s["aug"].tolist() == [plan.flip, plan.k] and s["window"].tolist() == [r, c, h, w]
        seen[plan.aug] += 1
    assert len(seen) == 12  # every flip x rotation combination was exercised


def test_make_sample_fills_nans_and_counts_them():
    raw = _coded_arrays(8)
    raw["s1"] = np.stack([np.full((8, 8), -10.0), np.full((8, 8), -20.0)]).astype(np.float32)
    raw["s1"][0, 0, :3] = np.nan
    plan = SamplePlan(0, 0, 8, 8)
    s = make_sample(raw, plan, SampleConfig(mode="eval", crop_size=None), {"id": "p"})
    assert s["nan_filled"].item() == 3 and s["nan_filled"].dtype == torch.int64
    # fill = mean of ALL non-NaN dB values of both bands: (61 * -10 + 64 * -20) / 125 = -15.12,
    # then normalised as VV: (-15.12 + 25) / 25 * 2 = 0.7904 (a per-band mean would give 1.2)
    np.testing.assert_allclose(s["s1"][0, 0, :3].numpy(), 0.7904, rtol=0, atol=1e-5)
    assert not torch.isnan(s["s1"]).any()


def test_make_sample_output_contract():
    raw = _coded_arrays(16)
    del raw["mask"]
    meta = {
        "id": "ROIs1970_fall_1_p2",
        "roi_season": "ROIs1970_fall",
        "scene": 1,
        "patch": 2,
        "crs": CRS_UTM,
        "transform": from_origin(X0, Y0, 10.0, 10.0),
    }
    s = make_sample(raw, SamplePlan(0, 0, 16, 16, 2, 1), SampleConfig(scaling="reflectance"), meta)
    assert set(s) == {
        "s2_cloudy", "s2", "s1", "nan_filled", "id", "roi_season", "scene", "patch",
        "crs", "transform", "window", "aug",
    }  # fmt: skip
    assert s["s2"].dtype == torch.float32 and s["s2"].shape == (13, 16, 16)
    assert s["s2_cloudy"].min() >= 0.0 and s["s2_cloudy"].max() <= 1.0  # reflectance
    assert s["s1"].min() >= 0.0 and s["s1"].max() <= 1.0
    assert s["transform"].dtype == torch.float64
    assert s["transform"].tolist() == [10.0, 0.0, X0, 0.0, -10.0, Y0]
    assert "UTM zone 31N" in s["crs"]
    assert s["scene"].item() == 1 and s["patch"].item() == 2
    # without SAR the S1 array is ignored; without a target none is returned
    no_sar = make_sample(
        {"s2_cloudy": raw["s2_cloudy"], "s1": raw["s1"]},
        SamplePlan(0, 0, 16, 16),
        SampleConfig(include_sar=False),
        meta,
    )
    assert "s1" not in no_sar and "s2" not in no_sar
    batch = default_collate([s, s])
    assert batch["s1"].shape == (2, 2, 16, 16) and batch["id"] == [meta["id"]] * 2


def test_make_sample_rejects_mismatched_or_missing_arrays():
    raw = _coded_arrays(16)
    with pytest.raises(DataError, match="shape"):
        make_sample(raw, SamplePlan(0, 0, 8, 8), SampleConfig(), {"id": "p"})
    del raw["s1"]
    with pytest.raises(DataError, match="include_sar=False"):
        make_sample(raw, SamplePlan(0, 0, 16, 16), SampleConfig(), {"id": "p"})


# ----------------------------------------------------------------------------- the dataset
@pytest.fixture
def fake_index(tmp_path) -> IndexResult:
    rows = [write_patch(tmp_path, scene=1, patch=p) for p in range(1, 5)]
    rows.append(write_patch(tmp_path, scene=2, patch=9, kinds=("s2", "s2_cloudy")))
    return IndexResult(rows=rows, root=tmp_path)


def test_dataset_reads_aligned_windows_with_georeferencing(fake_index):
    ds = SEN12MSCR(fake_index, config=SampleConfig(crop_size=32), patch_size=64, strict=True)
    assert len(ds) == 4  # the pair without S1 is left out of the SAR dataset
    g = _codes(64)
    file_tf = read_meta(fake_index.resolve(ds.rows[0], "s2_cloudy")).transform
    seen_aug, seen_off = set(), set()
    for epoch in range(10):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            s = ds[i]
            r, c, h, w = s["window"].tolist()
            flip, k = s["aug"].tolist()
            assert 0 <= r < 32 and 0 <= c < 32 and (h, w) == (32, 32)
            expected = _reference(g[r : r + h, c : c + w], flip, k)
            for key, bands in _decode(s).items():
                for band in bands:
                    np.testing.assert_array_equal(band, expected, err_msg=key)
            ref_tf = tuple(rio_window_transform(Window(c, r, w, h), file_tf))[:6]
            np.testing.assert_allclose(s["transform"].numpy(), ref_tf, rtol=0, atol=1e-6)
            seen_aug.add((flip, k))
            seen_off.add((r, c))
    assert len(seen_aug) >= 8 and len(seen_off) >= 30  # draws vary (all 12 pairs: above)


def test_dataset_without_sar_uses_pairs(fake_index):
    ds = SEN12MSCR(fake_index, config=SampleConfig(include_sar=False, crop_size=32), patch_size=64)
    assert len(ds) == 5
    s = ds[4]
    assert "s1" not in s and s["s2"].shape == (13, 32, 32) and s["id"] == "ROIs1970_fall_2_p9"


def test_dataset_reproducible_per_seed_epoch_index(fake_index):
    cfg = SampleConfig(crop_size=32)
    a = SEN12MSCR(fake_index, config=cfg, patch_size=64, seed=3)
    b = SEN12MSCR(fake_index, config=cfg, patch_size=64, seed=3)
    for i in range(len(a)):
        sa, sb = a[i], b[i]
        for key in ("s2_cloudy", "s2", "s1", "window", "aug"):
            assert torch.equal(sa[key], sb[key])
    plans0 = [(a.plan(i).window, a.plan(i).aug) for i in range(len(a))]
    assert len(set(plans0)) == len(plans0)  # indices do not share a stream
    a.set_epoch(1)
    plans1 = [(a.plan(i).window, a.plan(i).aug) for i in range(len(a))]
    assert plans1 != plans0 and all(p1 != p0 for p0, p1 in zip(plans0, plans1, strict=True))
    assert not torch.equal(a[0]["s2"], b[0]["s2"])
    c = SEN12MSCR(fake_index, config=cfg, patch_size=64, seed=4)
    assert [(c.plan(i).window, c.plan(i).aug) for i in range(len(c))] != plans0


def test_dataset_eval_full_patch_256(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "s2_cloudy": rng.integers(0, 12000, (13, 256, 256), dtype=np.uint16),
        "s2": rng.integers(0, 12000, (13, 256, 256), dtype=np.uint16),
        "s1": rng.uniform(-40, 5, (2, 256, 256)).astype(np.float32),
    }
    row = write_patch(tmp_path, size=256, arrays=arrays)
    index = IndexResult(rows=[row], root=tmp_path)
    ds = SEN12MSCR(index, config=SampleConfig(mode="eval", crop_size=None), strict=True)
    for epoch in range(2):
        ds.set_epoch(epoch)
        s = ds[0]
        assert s["window"].tolist() == [0, 0, 256, 256] and s["aug"].tolist() == [0, 0]
        np.testing.assert_allclose(
            s["s2"].numpy(), np.minimum(arrays["s2"], 10000) / 2000.0, rtol=0, atol=1e-6
        )
        vh = (np.clip(arrays["s1"][1], -32.5, 0) + 32.5) / 32.5 * 2
        np.testing.assert_allclose(s["s1"][1].numpy(), vh, rtol=0, atol=1e-5)
    # the paper's training sampling on a real-size patch: windows inside, offsets 0..127
    train = SEN12MSCR(index, strict=True)
    offsets = set()
    for epoch in range(40):
        train.set_epoch(epoch)
        r, c, h, w = train.plan(0).window
        assert 0 <= r <= 127 and 0 <= c <= 127 and (h, w) == (128, 128)
        offsets.add((r, c))
    s = train[0]
    assert s["s2_cloudy"].shape == (13, 128, 128) and s["s1"].shape == (2, 128, 128)
    assert len(offsets) > 30
    # patch_size=None reads the size from the file header
    auto = SEN12MSCR(index, config=SampleConfig(mode="eval", crop_size=None), patch_size=None)
    assert auto[0]["window"].tolist() == [0, 0, 256, 256]


def test_dataset_from_index_csv_and_root(fake_index, tmp_path):
    csv = write_index(fake_index, tmp_path / "idx" / "index.csv")
    ds = SEN12MSCR(csv, config=SampleConfig(crop_size=32), patch_size=64, split="train")
    assert len(ds) == 4 and ds[0]["s2"].shape == (13, 32, 32)
    ds2 = SEN12MSCR(csv, root=fake_index.root, config=SampleConfig(crop_size=32), patch_size=64)
    assert len(ds2) == 4


def test_dataset_not_found_says_what_is_missing(fake_index):
    pairs = IndexResult(rows=[r for r in fake_index.rows if not r.s1], root=fake_index.root)
    with pytest.raises(DatasetNotFoundError) as e:
        SEN12MSCR(pairs, patch_size=64)
    msg = str(e.value)
    assert "s1" in msg and "1 cloudy/clear pairs without S1" in msg
    assert "a no-SAR model for the cloudy/clear pairs without S1" in msg
    with pytest.raises(DatasetNotFoundError, match="split 'val'"):
        SEN12MSCR(fake_index, split="val", patch_size=64)


def _break(root: Path, row: IndexRow, how: str) -> tuple[str, str]:
    """Damage one file of a fake patch; return (the file named in the error, a message part)."""
    size = 64
    if how == "truncated":
        path = root / row.s2_cloudy
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return row.s2_cloudy, "corrupt or truncated"
    if how == "not_a_tiff":
        (root / row.s2).write_bytes(b"this is not a GeoTIFF" * 50)
        return row.s2, "corrupt or truncated"
    if how == "bands":
        arr = np.zeros((12, size, size), np.uint16)
        write_raster(root / row.s2, arr, read_meta(root / row.s2))
        return row.s2, "has 12 bands"
    if how == "dtype":
        arr = np.zeros((13, size, size), np.float32)
        write_raster(root / row.s2_cloudy, arr, read_meta(root / row.s2_cloudy))
        return row.s2_cloudy, "dtype float32"
    if how == "grid":
        meta = read_meta(root / row.s1)
        shifted = RasterMeta(**{**meta.__dict__, "transform": from_origin(X0 + 10, Y0, 10, 10)})
        write_raster(root / row.s1, np.zeros((2, size, size), np.float32), shifted)
        return row.s1, "same pixel grid"
    if how == "missing":
        (root / row.s1).unlink()
        return row.s1, "does not exist"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncated", "not_a_tiff", "bands", "dtype", "grid", "missing"])
def test_bad_patches_strict_and_lenient(fake_index, how):
    root = fake_index.root
    bad_file, problem = _break(root, fake_index.rows[1], how)
    cfg = SampleConfig(crop_size=32)
    strict = SEN12MSCR(fake_index, config=cfg, patch_size=64, strict=True)
    with pytest.raises(DataError, match=problem) as e:
        strict[1]
    assert Path(bad_file).name in str(e.value)
    if how == "grid":  # both files of the mismatch are named
        assert Path(fake_index.rows[1].s2_cloudy).name in str(e.value)

    lenient = SEN12MSCR(fake_index, config=cfg, patch_size=64)
    with pytest.warns(UserWarning, match=Path(bad_file).name):
        assert lenient[1] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # good patches do not warn
        batch = collate_skip_bad([lenient[0]])
    assert batch["skipped"] == 0
    with pytest.warns(UserWarning):
        samples = [lenient[i] for i in range(3)]
    batch = collate_skip_bad(samples)
    assert batch["skipped"] == 1 and batch["s2"].shape == (2, 13, 32, 32)
    assert batch["id"] == [fake_index.rows[0].id, fake_index.rows[2].id]
    assert collate_skip_bad([None, None]) is None


def test_dataloader_with_workers(fake_index):
    _break(fake_index.root, fake_index.rows[3], "missing")
    ds = SEN12MSCR(fake_index, config=SampleConfig(crop_size=32), patch_size=64)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_skip_bad)
    batches = list(loader)
    assert [b["skipped"] for b in batches] == [0, 1]
    first = batches[0]
    assert first["s2_cloudy"].shape == (2, 13, 32, 32) and first["s2_cloudy"].dtype == torch.float32
    assert first["s2"].shape == (2, 13, 32, 32)
    assert first["s1"].shape == (2, 2, 32, 32)
    assert first["transform"].shape == (2, 6) and first["transform"].dtype == torch.float64
    assert first["window"].shape == (2, 4) and first["aug"].shape == (2, 2)
    assert first["nan_filled"].shape == (2,) and first["scene"].dtype == torch.int64
    assert isinstance(first["id"], list) and len(first["crs"]) == 2
    assert sum(len(b["id"]) for b in batches) == 3


# ----------------------------------------------------------------------------- real patches
def _real_rows() -> list[IndexRow]:
    w, f, s = "ROIs2017_winter", "ROIs1970_fall", "ROIs1868_summer"
    return [
        IndexRow(w, 112, 797, "train", _rel(w, "s1", 112, 797), _rel(w, "s2", 112, 797),
                 _rel(w, "s2_cloudy", 112, 797)),
        IndexRow(f, 136, 100, "train", "", _rel(f, "s2", 136, 100), _rel(f, "s2_cloudy", 136, 100)),
        IndexRow(s, 19, 30, "test", _rel(s, "s1", 19, 30), "", _rel(s, "s2_cloudy", 19, 30)),
    ]  # fmt: skip


def test_real_complete_triplet(sen12mscr_root):
    index = IndexResult(rows=_real_rows(), root=sen12mscr_root)
    ds = SEN12MSCR(index, strict=True)
    assert [r.id for r in ds.rows] == ["ROIs2017_winter_112_p797"]
    s = ds[0]
    for key, bands in (("s2_cloudy", 13), ("s2", 13), ("s1", 2)):
        assert s[key].shape == (bands, 128, 128) and s[key].dtype == torch.float32
    assert s["s2"].min() >= 0.0 and s["s2"].max() <= 5.0
    assert s["s2_cloudy"].min() >= 0.0 and s["s2_cloudy"].max() <= 5.0
    assert s["s1"].min() >= 0.0 and s["s1"].max() <= 2.0
    assert s["s1"].std() > 0.01 and s["s2"].std() > 0.01  # real content, not a constant
    assert "UTM" in s["crs"]
    r, c, h, w = s["window"].tolist()
    file_tf = read_meta(index.resolve(ds.rows[0], "s1")).transform
    np.testing.assert_allclose(
        s["transform"].numpy(), window_transform(file_tf, (r, c, h, w)), rtol=0, atol=1e-6
    )
    # eval over the full patch equals the spec's formulas applied to the file
    full = SEN12MSCR(index, config=SampleConfig(mode="eval", crop_size=None), strict=True)[0]
    with rasterio.open(index.resolve(ds.rows[0], "s1")) as src:
        db = src.read().astype(np.float64)
    vv = (np.clip(db[0], -25, 0) + 25) / 25 * 2
    np.testing.assert_allclose(full["s1"][0].numpy(), vv, rtol=0, atol=1e-5)
    assert full["s2"].shape == (13, 256, 256)


def test_real_pairs_without_sar_and_without_target(sen12mscr_root):
    index = IndexResult(rows=_real_rows(), root=sen12mscr_root)
    ds = SEN12MSCR(index, config=SampleConfig(include_sar=False), strict=True)
    assert len(ds) == 2
    s = ds[1]
    assert s["id"] == "ROIs1970_fall_136_p100" and "s1" not in s
    assert s["s2"].shape == (13, 128, 128) and s["s2"].min() >= 0 and s["s2"].max() <= 5
    with rasterio.open(index.resolve(ds.rows[1], "s2_cloudy")) as src:
        r, c, h, w = s["window"].tolist()
        dn = src.read(window=Window(c, r, w, h))
    flip, k = s["aug"].tolist()
    ref = _reference(np.minimum(dn, DSEN2CR.s2_clip[1]) / DSEN2CR.s2_scale, flip, k)
    np.testing.assert_allclose(s["s2_cloudy"].numpy(), ref, rtol=0, atol=1e-6)
    # prediction without a target: the S1 + cloudy pair of summer 19 becomes usable
    pred = SEN12MSCR(index, split="test", require_target=False, strict=True)
    assert [r.id for r in pred.rows] == ["ROIs1868_summer_19_p30"]
    p = pred[0]
    assert "s2" not in p and p["s1"].shape == (2, 128, 128)
