"""The inpainting cached in packed shards: computed once, equal to the library call, resumable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cloudfree.bands import DSEN2CR
from cloudfree.cli import main
from cloudfree.data.packed.dataset import PackedDataset
from cloudfree.data.packed.inpaint_cache import fill_inpainting, inpaint_complete, inpaint_file
from cloudfree.data.packed.pack import pack
from cloudfree.data.packed.shards import read_patches
from cloudfree.data.preprocess import normalize_s2
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.sample import SampleConfig
from cloudfree.data.synthetic.release import synthesize
from cloudfree.data.transforms import apply_augmentation
from cloudfree.errors import DataError
from cloudfree.inpaint import inpaint


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("inpaint_pack")
    synthesize(base / "root", n=6, seed=3, size=48)
    write_index(build_index(base / "root"), base / "index.csv")
    return base / "index.csv"


def test_pack_inpaint_caches_the_library_result(index: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    assert main(["pack", str(index), "--out", str(out), "--workers", "0",
                 "--inpaint", "push-pull"]) == 0  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert inpaint_complete(manifest, "push-pull")
    assert manifest["inpaint"]["push-pull"]["mask"] == "dsen2cr-csm"
    assert manifest["inpaint_timing"]["push-pull"]["patches"] == 6
    for p in read_patches(out):
        entry = manifest["shards"][p.shard]
        cloudy = np.load(out / entry["files"]["s2_cloudy"])[p.offset]
        mask = np.load(out / entry["files"]["mask"])[p.offset]
        cached = np.load(out / inpaint_file(entry["name"], "push-pull"))[p.offset]
        assert cached.dtype == np.uint16
        np.testing.assert_array_equal(cached, inpaint(cloudy, mask, "push-pull"))


def test_dataset_serves_the_cached_inpainting_cropped_like_the_images(
    index: Path, tmp_path: Path
) -> None:
    out = tmp_path / "packed"
    pack(index, out, workers=0)
    cfg = SampleConfig(mode="train", crop_size=32, mask="cached", inpaint="mask-fill")
    with pytest.raises(DataError, match="--inpaint mask-fill"):
        PackedDataset(out, config=cfg)  # not computed yet: the error says the command
    fill_inpainting(out, "mask-fill", progress=False)
    ds = PackedDataset(out, config=cfg, seed=7)
    plain = PackedDataset(
        out, config=SampleConfig(mode="train", crop_size=32, mask="cached"), seed=7
    )
    manifest = json.loads((out / "manifest.json").read_text())
    for i in range(len(ds)):
        s, t = ds[i], plain[i]
        assert s["s2_inpainted"].shape == s["s2_cloudy"].shape == (13, 32, 32)
        # Same crop and augmentation as the images: where the mask is clear, inpainted = cloudy.
        clear = s["mask"] == 0
        assert (s["s2_inpainted"][:, clear] == s["s2_cloudy"][:, clear]).all()
        assert (s["s2_cloudy"] == t["s2_cloudy"]).all()
        # ...and the values are the cached full-patch inpainting, windowed and augmented.
        p, plan = ds.patches[i], ds.plan(i)
        entry = manifest["shards"][p.shard]
        full = np.load(out / inpaint_file(entry["name"], "mask-fill"))[p.offset]
        r, c, h, w = plan.window
        want = apply_augmentation(normalize_s2(full[:, r : r + h, c : c + w], DSEN2CR), *plan.aug)
        np.testing.assert_array_equal(s["s2_inpainted"].numpy(), want)


def test_fill_resumes_shard_by_shard_and_recomputes_other_settings(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "packed"
    pack(index, out, workers=0, shard_size=2)
    import cloudfree.data.packed.inpaint_cache as cache

    calls = {"n": 0}
    real = cache._work

    def crash_on_second(*args):  # noqa: ANN002, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the job is killed in the middle of the 2nd shard
        return real(*args)

    monkeypatch.setattr(cache, "_work", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        fill_inpainting(out, "mask-fill", progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    flags = [e.get("inpaint", {}).get("mask-fill") for e in manifest["shards"]]
    assert flags[0] is True and not any(flags[1:])  # one shard done, the others not
    assert not (out / inpaint_file(manifest["shards"][1]["name"], "mask-fill")).exists()
    assert not list(out.glob(".*.part"))  # no half-written file left under any name
    done = out / inpaint_file(manifest["shards"][0]["name"], "mask-fill")
    mtime = done.stat().st_mtime_ns
    monkeypatch.setattr(cache, "_work", real)
    manifest = fill_inpainting(out, "mask-fill", progress=False)
    assert inpaint_complete(manifest, "mask-fill")
    assert done.stat().st_mtime_ns == mtime  # the finished shard was kept, not redone
    # Re-packing (resume) keeps the inpainting; other settings recompute it, with a warning.
    assert inpaint_complete(pack(index, out, workers=0, shard_size=2), "mask-fill")
    with pytest.warns(UserWarning, match="other settings"):
        manifest = fill_inpainting(out, "mask-fill", {"dilate": 2}, progress=False)
    assert manifest["inpaint"]["mask-fill"]["options"] == {"dilate": 2}


def test_sar_match_needs_s1_in_every_patch(index: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(index.parent / "root", root)
    for f in list(root.glob("*_s1/*/*.tif"))[:1]:
        f.unlink()
    write_index(build_index(root), tmp_path / "index.csv")
    pack(tmp_path / "index.csv", tmp_path / "packed", workers=0)
    with pytest.raises(DataError, match="has no S1 but the 'sar-match' inpainting needs it"):
        fill_inpainting(tmp_path / "packed", "sar-match", progress=False)


def test_per_file_dataset_points_to_the_pack(index: Path) -> None:
    from cloudfree.data.release.dataset import SEN12MSCR

    with pytest.raises(DataError, match="cloudfree pack INDEX --out DIR --inpaint push-pull"):
        SEN12MSCR(index, config=SampleConfig(inpaint="push-pull"), patch_size=48)
