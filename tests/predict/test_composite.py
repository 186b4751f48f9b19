"""``cloudfree composite``: several real dates of one place into one image (issue 31, step 5)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from cloudfree.bands import S2_BANDS
from cloudfree.cli import main
from cloudfree.predict.composite import MADE_NODATA
from cloudfree.predict.series import date_in_text, resolve_series
from tests.predict.conftest import TRANSFORM, synth_s2, write_tif


def _eolearn(shared: Path, tmp: Path) -> list[Path]:
    """The 5 real dates (0-1 cloudy, 2-4 clear), named by (made-up) dates 5 days apart."""
    out = []
    for i in range(5):
        p = tmp / f"S2_2020-06-{1 + 5 * i:02d}.tif"
        shutil.copy(shared / "eolearn" / f"reference_scene_{i}.tif", p)
        out.append(p)
    return out


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read().astype(np.float64)


def test_real_dates_give_the_median_of_the_clear_ones(shared_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("ukis_csmask", reason="the trusted masker (extra 'masks') is needed")
    d = _eolearn(shared_data, tmp_path)
    inputs = [d[0], d[1], d[3], d[4]]  # date 2 held out
    out = tmp_path / "out" / "c.tif"
    argv = ["composite", *map(str, inputs), "--out", str(out), "--mask-backend", "ukis",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    c, made = _read(out), _read(tmp_path / "out" / "c_made.tif")[0]
    # ukis sees the two cloudy dates as cloud and the two clear ones as clear, everywhere
    assert (made == 2).all()
    assert (c == np.rint((_read(d[3]) + _read(d[4])) / 2)).all()  # median of two = their mean
    held_out = _read(d[2])
    assert np.abs(c - held_out).mean() < 0.7 * np.abs(_read(d[4]) - held_out).mean()
    with rasterio.open(out) as ds, rasterio.open(d[4]) as grid:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.transform == grid.transform and ds.crs == grid.crs
        assert ds.descriptions == S2_BANDS and ds.tags()["target_date"] == "2020-06-21"


def _dates_on(tmp: Path, n: int = 3, size: int = 64, **kw) -> list[Path]:  # noqa: ANN003
    return [write_tif(tmp / f"s2_2021-0{k + 1}-10.tif", synth_s2(size, size, seed=k), **kw)
            for k in range(n)]  # fmt: skip


def test_nodata_and_reprojection(tmp_path: Path) -> None:
    files = []
    for k in range(3):
        a = synth_s2(64, 64, seed=k)
        a[:, :, :8] = 0  # no data on any date in the first 8 columns
        files.append(write_tif(tmp_path / f"d{k}_2021-05-0{k + 1}.tif", a, nodata=0))
    # the oldest date on a grid 20 m east: reprojected onto the target's
    shifted = TRANSFORM * Affine.translation(2, 0)
    a = synth_s2(64, 64, seed=9)
    files.append(write_tif(tmp_path / "d9_2021-04-01.tif", a, transform=shifted, nodata=0))
    out = tmp_path / "c.tif"
    argv = ["composite", *map(str, files), "--out", str(out), "--mask-backend", "dsen2cr",
            "--target-date", "2021-05-03", "--summary", str(tmp_path / "s.json"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    import json

    s = json.loads((tmp_path / "s.json").read_text())
    assert s["reprojected"] == [str(files[3])] and s["grid"] == str(files[2])
    assert s["dates"] == ["2021-04-01", "2021-05-01", "2021-05-02", "2021-05-03"]
    c = _read(out)
    with rasterio.open(tmp_path / "c_made.tif") as ds:
        made = ds.read(1)
        assert ds.nodata == MADE_NODATA
    # columns 0-1: no date has data (the shifted one starts at column 2); 2-7: only it
    assert (made[:, :2] == MADE_NODATA).all() and (c[:, :, :2] == 0).all()
    assert (made[:, 2:] != MADE_NODATA).all() and (c[:, :, 2:] > 0).all()


def test_bad_inputs_are_refused_before_any_output(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    files = _dates_on(tmp_path)
    out = tmp_path / "o" / "c.tif"

    def fails(*argv: str, msg: str) -> None:
        assert main(["composite", *argv, "--out", str(out), "--no-progress"]) == 1, argv
        assert msg in capsys.readouterr().err
        assert not out.parent.exists() or not any(out.parent.iterdir())

    fails(str(files[0]), msg="a composite needs two or more")
    l2a = write_tif(tmp_path / "l2a_2021-09-01.tif", synth_s2(64, 64)[:12])
    fails(str(files[0]), str(l2a), msg="is L2A (12 bands) among L1C dates")
    nodate = write_tif(tmp_path / "scene.tif", synth_s2(64, 64))
    fails(str(files[0]), str(nodate), msg="has no date in its name")
    fails(*map(str, files), "--dates", "2021-01-01", msg="--dates gives 1 dates for 3 files")
    fails(*map(str, files), "--target-date", "2022-01-01", msg="is none of the input dates")
    fails(*map(str, files), "--fill", "sar-match", msg="--fill sar-match reads S1")
    fails(*map(str, files), "--fill", "telea", msg="telea")
    assert main(["composite", *map(str, files), "--out", str(files[0])]) == 1
    assert "--out" in capsys.readouterr().err
    far = write_tif(tmp_path / "far_2021-08-01.tif", synth_s2(64, 64),
                    transform=TRANSFORM * Affine.translation(100000, 0))  # fmt: skip
    fails(*map(str, files), str(far), "--target-date", "2021-01-10",
          msg="far_2021-08-01.tif: does not overlap the scene")  # fmt: skip


def test_dates_from_names_tags_and_the_option(tmp_path: Path) -> None:
    assert str(date_in_text("S2B_MSIL1C_20200704T101559_N0209")) == "2020-07-04"
    assert date_in_text("s2_2021-02-30_2021-03-01.tif").isoformat() == "2021-03-01"
    tagged = write_tif(tmp_path / "a.tif", synth_s2(16, 16))
    with rasterio.open(tagged, "r+") as ds:
        ds.update_tags(ACQUISITION_DATE="2019-08-17T10:20:31Z")
    named = write_tif(tmp_path / "b_20190801.tif", synth_s2(16, 16))
    series = resolve_series([str(tagged), str(named)])
    assert [str(d.day) for d in series] == ["2019-08-01", "2019-08-17"]  # oldest first
    given = resolve_series([str(tagged), str(named)], ["2020-01-02", "2020-01-01"])
    assert [d.s2.name for d in given] == ["b_20190801.tif", "a.tif"]
    # a series folder: s2/<date>.tif with s1/<date>.tif beside
    (tmp_path / "series" / "s2").mkdir(parents=True)
    (tmp_path / "series" / "s1").mkdir()
    for k in (1, 2):
        write_tif(tmp_path / "series" / "s2" / f"2022-03-0{k}.tif", synth_s2(16, 16))
    write_tif(tmp_path / "series" / "s1" / "2022-03-02.tif", np.zeros((2, 16, 16), np.float32))
    s = resolve_series([str(tmp_path / "series")])
    assert [d.s1 is not None for d in s] == [False, True]


def test_a_model_fills_what_no_date_sees_clear(tmp_path: Path, nosar_weights) -> None:  # noqa: ANN001
    """Three dates with the same bright blob (cloud on every date): the median elsewhere, kept
    bit for bit; the blob filled by the model, and marked -1."""
    from cloudfree.io import _host

    weights, _ = nosar_weights
    files = _dates_on(tmp_path, n=3, size=96)
    # what a killed run of the same output left: swept (pid 999999 runs on no test machine)
    dead = tmp_path / f".f.tif.{_host()}.999999.abc123.part"
    dead.mkdir()
    (dead / "statistic.tif").write_bytes(b"half")
    common = ["--mask-backend", "dsen2cr", "--no-progress"]
    assert main(["composite", *map(str, files), "--out", str(tmp_path / "m.tif"),
                 "--method", "median", *common]) == 0  # fmt: skip
    assert main(["composite", *map(str, files), "--out", str(tmp_path / "f.tif"),
                 "--checkpoint", str(weights), *common]) == 0  # fmt: skip
    median, filled = _read(tmp_path / "m.tif"), _read(tmp_path / "f.tif")
    made_m = _read(tmp_path / "m_made.tif")[0]
    made_f = _read(tmp_path / "f_made.tif")[0]
    holes = made_m == 0
    assert holes.any() and (~holes).any()
    assert (made_f[holes] == -1).all() and (made_f[~holes] == made_m[~holes]).all()
    assert (filled[:, ~holes] == median[:, ~holes]).all()  # kept bit for bit
    assert (filled[:, holes] != median[:, holes]).mean() > 0.9  # the model's values there
    with rasterio.open(tmp_path / "f.tif") as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.tags()["software"] == "cloudfree composite" and "fill_model" in ds.tags()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert main(["composite", *map(str, files), "--out", str(tmp_path / "x.tif"),
                 "--checkpoint", str(weights), "--method", "median", *common]) == 1  # fmt: skip
    # a model without a variance has no uncertainty to give
    assert main(["composite", *map(str, files), "--out", str(tmp_path / "x.tif"),
                 "--checkpoint", str(weights), "--uncertainty-out", str(tmp_path / "u.tif"),
                 *common]) == 1  # fmt: skip
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "u.tif").exists()


def test_mask_files_replace_the_masker(tmp_path: Path) -> None:
    """Masks given per date decide what is clear: date 0 masked on the left half, date 1 on
    the right half, date 2 everywhere: each half comes from the one date clear there."""
    files = _dates_on(tmp_path, n=3, size=32)
    (tmp_path / "m").mkdir()
    halves = [np.zeros((1, 32, 32), np.uint8) for _ in range(3)]
    halves[0][:, :, :16] = 1
    halves[1][:, :, 16:] = 2
    halves[2][:] = 1
    for f, m in zip(files, halves, strict=True):
        write_tif(tmp_path / "m" / f.name, m)
    out = tmp_path / "c.tif"
    assert main(["composite", *map(str, files), "--out", str(out), "--masks",
                 str(tmp_path / "m"), "--method", "median", "--no-progress"]) == 0  # fmt: skip
    c = _read(out)
    assert (c[:, :, 16:] == _read(files[0])[:, :, 16:]).all()
    assert (c[:, :, :16] == _read(files[1])[:, :, :16]).all()
    assert (_read(tmp_path / "c_made.tif") == 1).all()
    (tmp_path / "m" / files[2].name).unlink()
    assert main(["composite", *map(str, files), "--out", str(tmp_path / "d.tif"), "--masks",
                 str(tmp_path / "m")]) == 1  # fmt: skip


def test_a_temporal_model_fills_from_the_dates_nearest_the_target(tmp_path: Path) -> None:
    """A series folder of 4 dates with S1; a (random, small) multi-temporal UnCRtainTS saved by
    cloudfree: the median where a date is clear, bit for bit; where none is, the network's
    output on the 3 dates nearest the target (one 96 px tile: the model called directly)."""
    import torch

    from cloudfree.data.timeseries.names import days_since_s1_launch
    from cloudfree.models import save_weights
    from cloudfree.models.uncrtaints_mt import UnCRtainTSMT
    from tests.predict.conftest import synth_s1

    torch.manual_seed(0)
    net = UnCRtainTSMT(encoder_widths=[8], decoder_widths=[8], n_head=2, d_model=8).eval()
    save_weights(net, tmp_path / "mt.safetensors")
    series = tmp_path / "series"
    days = ["2021-01-10", "2021-02-10", "2021-03-10", "2021-04-10"]
    (series / "s2").mkdir(parents=True)
    (series / "s1").mkdir()
    for k, day in enumerate(days):
        write_tif(series / "s2" / f"{day}.tif", synth_s2(96, 96, seed=k))
        write_tif(series / "s1" / f"{day}.tif", synth_s1(96, 96, seed=k))
    common = ["--mask-backend", "dsen2cr", "--no-progress"]
    assert main(["composite", str(series), "--out", str(tmp_path / "m.tif"), "--method",
                 "median", *common]) == 0  # fmt: skip
    assert main(["composite", str(series), "--out", str(tmp_path / "t.tif"), "--checkpoint",
                 str(tmp_path / "mt.safetensors"), "--summary", str(tmp_path / "s.json"),
                 "--uncertainty-out", str(tmp_path / "std.tif"), *common]) == 0  # fmt: skip
    median, filled = _read(tmp_path / "m.tif"), _read(tmp_path / "t.tif")
    made_m, made_t = _read(tmp_path / "m_made.tif")[0], _read(tmp_path / "t_made.tif")[0]
    holes = made_m == 0
    assert holes.any() and (~holes).any()
    assert (made_t[holes] == -1).all() and (filled[:, ~holes] == median[:, ~holes]).all()
    import json

    assert json.loads((tmp_path / "s.json").read_text())["model_dates"] == days[1:]
    s2 = np.stack([_read(series / "s2" / f"{d}.tif") for d in days[1:]])
    s1 = np.stack([_read(series / "s1" / f"{d}.tif") for d in days[1:]])
    abs_days = torch.tensor([[days_since_s1_launch(date_in_text(d)) for d in days[1:]]])
    with torch.no_grad():
        out = net(torch.from_numpy(np.clip(s2, 0, 10000) / 1e4).float()[None],
                  torch.from_numpy((np.clip(s1, -25, 0) + 25) / 25).float()[None],
                  s2_days=abs_days, s1_days=abs_days, return_variance=True)[0].numpy()  # fmt: skip
    want = out[:13] * 1e4
    assert np.abs(filled[:, holes] - np.rint(want[:, holes])).max() <= 1
    # its predicted standard deviation where it filled (reflectance), NaN elsewhere
    std = _read(tmp_path / "std.tif")
    assert np.isnan(std[:, ~holes]).all()
    np.testing.assert_allclose(std[:, holes], np.sqrt(out[13:])[:, holes], rtol=1e-4)
    # every chosen date needs its S1; the one-date --s1 is not what it reads
    (series / "s1" / f"{days[2]}.tif").unlink()
    argv = ["composite", str(series), "--out", str(tmp_path / "x.tif"), "--checkpoint",
            str(tmp_path / "mt.safetensors"), *common]  # fmt: skip
    assert main(argv) == 1
    assert main([*argv, "--s1", str(series / "s1" / f"{days[3]}.tif")]) == 1
    assert not (tmp_path / "x.tif").exists()


def test_a_one_date_nll_model_gives_its_uncertainty_where_it_fills(tmp_path: Path) -> None:
    files = _dates_on(tmp_path, n=3, size=64)
    common = ["--mask-backend", "dsen2cr", "--no-progress"]
    assert main(["composite", *map(str, files), "--out", str(tmp_path / "c.tif"), "--checkpoint",
                 "uncrtaints-demo-nosar", "--uncertainty-out", str(tmp_path / "u.tif"),
                 *common]) == 0  # fmt: skip
    made = _read(tmp_path / "c_made.tif")[0]
    std = _read(tmp_path / "u.tif")
    filled = made == -1
    assert filled.any() and np.isnan(std[:, ~filled]).all()
    assert (std[:, filled] > 0).all() and (std[:, filled] < 1).all()  # reflectance
    with rasterio.open(tmp_path / "u.tif") as ds:
        assert ds.tags()["software"] == "cloudfree composite"
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
