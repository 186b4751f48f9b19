"""Issue 30, class 9: the first hour of a new user. Every ``cloudfree`` command of the README's
code blocks is one the parser accepts (flags and arguments as they are today), nothing a user
reads names the project's issues or its test data folder, and a rendered prediction or mask
is titled as what it is."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from cloudfree.cli import build_parser, main
from tests.conftest import REPO
from tests.predict.conftest import synth_s2, write_tif


def _readme_commands() -> list[str]:
    """Each ``cloudfree ...`` (or ``-m cloudfree.cli ...``) command of the README's bash
    blocks, continuation lines joined, comments cut."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if "-m cloudfree.cli " in line:  # torchrun ... -m cloudfree.cli COMMAND ...
                commands.append(line.split("-m cloudfree.cli ", 1)[1])
            elif line.startswith("cloudfree "):
                commands.append(line[len("cloudfree ") :])
    return commands


def test_every_readme_command_parses() -> None:
    commands = _readme_commands()
    assert len(commands) >= 40, commands  # the extraction still finds them
    parser = build_parser()
    for command in commands:
        try:
            args = parser.parse_args(shlex.split(command))
        except SystemExit as e:  # argparse: a flag or argument the command does not take
            pytest.fail(f"README: 'cloudfree {command}' is refused by the parser ({e.code})")
        assert getattr(args, "func", None) is not None, command


def test_nothing_a_user_reads_names_an_issue_or_the_test_data() -> None:
    from cloudfree.weights import list_weights

    texts = {"MODEL_CARD.md": (REPO / "src/cloudfree/weights/bundled/MODEL_CARD.md").read_text()}
    for w in list_weights():
        texts[f"weights {w.name}"] = f"{w.description} {w.citation}"
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():  # type: ignore[union-attr]
        texts[f"{name} --help"] = p.format_help()
    for where, text in texts.items():
        assert not re.search(r"\bissue \d+|shared/data", text), (where, text)


def test_a_rendered_prediction_or_mask_is_titled_as_what_it_is(tmp_path: Path) -> None:
    from cloudfree.viewer.render_cli import _role

    s2 = write_tif(tmp_path / "s2.tif", synth_s2(48, 48))
    assert main(["predict", "--s2", str(s2), "--out", str(tmp_path / "p.tif"), "--checkpoint",
                 "identity", "--mask-out", str(tmp_path / "m.tif"), "--mask-backend", "dsen2cr",
                 "--no-progress"]) == 0  # fmt: skip
    assert _role(s2) == "input"
    assert _role(tmp_path / "p.tif") == "prediction (identity)"
    assert _role(tmp_path / "m.tif") == "mask (dsen2cr)"
    assert main(["render", str(tmp_path / "p.tif"), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A mask file renders (a 1-band raster was refused; its colours: tests/viewer/test_scenes).
    assert main(["render", str(tmp_path / "m.tif"), "--out", str(tmp_path / "m.png")]) == 0


def test_evaluate_saves_its_predictions_for_the_viewer(tmp_path: Path) -> None:
    import csv

    import rasterio

    from cloudfree.data.synthetic.release import synthesize
    from cloudfree.viewer.catalog import Catalog

    synthesize(tmp_path / "root", n=3, seed=2, size=32)
    ev = tmp_path / "evals" / "mask-fill"
    argv = ["evaluate", "--checkpoint", "mask-fill", "--data", str(tmp_path / "root"), "--split",
            "all", "--out", str(ev), "--no-report", "--no-progress"]  # fmt: skip
    assert main([*argv, "--save-predictions"]) == 0
    with open(ev / "per_patch.csv", newline="") as f:
        ids = [r["id"] for r in csv.DictReader(f)]
    cat = Catalog(tmp_path / "root", predictions=tmp_path / "evals")
    method = cat.methods["mask-fill"]
    assert sorted(method.files) == sorted(ids) and sorted(method.metrics) == sorted(ids)
    row = cat.rows[cat.by_id[ids[0]]]
    with rasterio.open(ev / f"{ids[0]}.tif") as p, rasterio.open(cat.file(row, "s2_cloudy")) as c:
        assert (p.crs, p.transform, p.count, p.dtypes[0]) == (c.crs, c.transform, 13, "uint16")
    assert main(argv) == 0  # again without the flag: no prediction left from the first run
    assert not list(ev.glob("*.tif"))


#: README commands that cannot run offline on the samples, and why (the first that matches).
NOT_OFFLINE: tuple[tuple[str, str], ...] = (
    (r"^weights (fetch|import)|^convert-", "downloads, or converts a file downloaded by hand"),
    (r"^(?!weights show).*(dsen2cr-sar-carl|dsen2cr\.safetensors|--checkpoint MODEL|runs/"
     r"|_packed|eval/carl)",
     "a published checkpoint or a training run of the user's"),
    (r"^train |^replicate ", "trains full-size models for hours"),
    (r"^view ", "serves the web viewer (tests/viewer run it)"),
    (r"^stack ", "needs a .SAFE product (tests/data/sentinel build one)"),
    (r"^fetch |bolzano", "searches a STAC catalogue on the internet (tests/data/stac serve one)"),
    (r"^s1 ", "needs a dual-polarisation GRD product, 1-2 GB (tests/data/s1grd write the DN of "
     "sarsen's real product, and serve it as a STAC item)"),
    (r"stable-diffusion", "needs a diffusers pipeline folder"),
    (r"train\.csv|test\.csv", "the user's own split files"),
    (r"^evaluate .*index\.csv|^evaluate .*/data/sen12mscr|--split test",
     "the samples hold no patch of the official test split"),
)  # fmt: skip


def _placeholders(shared: Path, work: Path) -> dict[str, str]:
    """The README's example paths -> sample files prepared in ``work``."""
    import rasterio

    floods, eol = shared / "sen1floods11", shared / "eolearn"
    (work / "scenes").mkdir()
    (work / "s1").mkdir()
    shutil.copy(floods / "Spain_7370579_S2Hand.tif", work / "scenes" / "spain.tif")
    shutil.copy(floods / "Spain_7370579_S1Hand.tif", work / "s1" / "spain.tif")
    (work / "scenes.txt").write_text(f"{work / 'scenes' / 'spain.tif'}\n")
    with rasterio.open(eol / "reference_scene_0.tif") as src:  # B2, B3, B4, B8
        profile = src.profile | {"count": 4}
        with rasterio.open(work / "bgrn.tif", "w", **profile) as dst:
            dst.write(src.read([2, 3, 4, 8]))
    l2a = sorted((shared / "bigearthnet" / "s2_l2a").glob("*.tif"))[0]
    patch = next((shared / "sen12mscr").rglob("ROIs1970_fall_s2_cloudy_136_p100.tif"))
    # Several dates of one place: the 5 real eo-learn dates, named by dates 5 days apart
    (work / "dates").mkdir()
    for i in range(5):
        day = f"2020-06-{1 + 5 * i:02d}"
        shutil.copy(eol / f"reference_scene_{i}.tif", work / "dates" / f"S2_{day}.tif")
    for name, i in (("a_2020-06-01.tif", 0), ("b_2020-06-11.tif", 2), ("c_2020-06-21.tif", 4)):
        shutil.copy(eol / f"reference_scene_{i}.tif", work / name)
    # SEN12MS-CR-TS is not among the samples: three real S2 patches under its release names
    from datetime import date

    from cloudfree.data.timeseries.names import TSFile, relative_path

    s2s = sorted((shared / "sen12mscr").rglob("ROIs1970_fall_s2_136_p*.tif"))[:3]
    for t, src in enumerate(s2s):
        rel = relative_path(TSFile("s2", "ROIs1970/21", t, date(2018, 1, 3 + 5 * t), 0))
        (work / "ts" / rel).parent.mkdir(parents=True)
        shutil.copy(src, work / "ts" / rel)
    return {
        "/data/SEN12MSCRTS": str(work / "ts"),
        "/data/SEN12MS-CR": str(shared / "sen12mscr"),
        "/data/sen12mscr": str(shared / "sen12mscr"),
        "/path/to/clear/s2": str(floods),
        "S2.tif": str(eol / "reference_scene_0.tif"),
        "S2_L2A.tif": str(l2a),
        "scene_s2.tif": str(floods / "Spain_7370579_S2Hand.tif"),
        "scene_s1.tif": str(floods / "Spain_7370579_S1Hand.tif"),
        "ROIs1970_fall_s2_cloudy_136_p100.tif": str(patch),
    }


@pytest.mark.slow
def test_the_readme_commands_run_on_the_samples(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Every README command that can run offline runs, as written, on the real samples (its
    example paths replaced by sample files), in README order, in one folder."""
    work = tmp_path / "work"
    work.mkdir()
    names = _placeholders(shared_data, work)
    monkeypatch.chdir(work)
    ran, skipped, failed = [], {}, []
    for command in _readme_commands():
        why = next((r for pattern, r in NOT_OFFLINE if re.search(pattern, command)), None)
        if why is not None:
            skipped[command] = why
            continue
        argv = [names.get(arg, arg) for arg in shlex.split(command)]
        if command.startswith("inpaint") and "--mask clouds.tif" in command:
            assert main(["mask", names["scene_s2.tif"], "--out", "clouds.tif"]) == 0
        rc = main(argv)
        out = capsys.readouterr()
        (ran if rc == 0 else failed).append(command)
        if rc != 0:
            failed[-1] += f": exit {rc}: {out.err[-500:]}"
    assert not failed, "\n".join(failed)
    assert len(ran) >= 20, (ran, skipped)


def test_outputs_are_cloud_optimised_geotiffs(tmp_path: Path) -> None:
    import rasterio

    from cloudfree.bands import S2_BANDS
    from tests.data.sentinel.test_safe import make_l1c

    s2 = write_tif(tmp_path / "s2.tif", synth_s2(600, 560))
    assert main(["predict", "--s2", str(s2), "--out", str(tmp_path / "p.tif"), "--checkpoint",
                 "identity", "--mask-out", str(tmp_path / "pm.tif"), "--mask-backend",
                 "dsen2cr", "--no-progress"]) == 0  # fmt: skip
    assert main(["mask", str(s2), "--out", str(tmp_path / "m.tif"), "--mask-backend",
                 "dsen2cr"]) == 0  # fmt: skip
    assert main(["stack", str(make_l1c(tmp_path / "safe")), "--out", str(tmp_path / "st.tif"),
                 "--quiet"]) == 0  # fmt: skip
    for name in ("p.tif", "pm.tif", "m.tif", "st.tif"):
        with rasterio.open(tmp_path / name) as ds:
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG", name
            if min(ds.height, ds.width) >= 512:
                assert ds.block_shapes[0] == (512, 512), name
            # Overviews as GDAL's COG driver makes them: halve until one 512-px block.
            assert len(ds.overviews(1)) == (max(ds.height, ds.width) > 512), name
    with rasterio.open(tmp_path / "p.tif") as p, rasterio.open(s2) as src:
        assert p.overviews(1) == [2]  # averaged while writing, copied into the COG
        assert (p.read() == src.read()).all()  # identity: the values survive the copy
        assert p.tags()["software"] == "cloudfree predict" and p.descriptions == S2_BANDS
