"""Issue 30, class 4: inputs that make metrics lie or work vanish, and everything that can be
checked before work is checked before work.

Duplicate index rows are used once (with a warning), not scored or packed twice; a pack of
nothing is an error and leaves no folder; config overrides, inpainting names, crop sizes, run
names and numbers out of range are refused before anything is written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cloudfree.cli import main
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize

from .conftest import digest, fails


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("first")
    synthesize(base / "root", n=6, seed=0, size=32)
    index = write_index(build_index(base / "root"), base / "index.csv")
    return {"base": base, "root": base / "root", "index": index}


def usage(argv: list[str], capsys: pytest.CaptureFixture[str], *expected: str) -> None:
    """A bad setting: exit 2 (a usage error), one paragraph naming it, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith(f"cloudfree {argv[0]}: error: "), err
    for text in expected:
        assert text in err, err


def _rewrite(index: Path, out: Path, change) -> Path:  # noqa: ANN001
    with open(index, newline="") as f:
        rows = list(csv.reader(f))
    out.write_text("".join(",".join(r) + "\n" for r in change(rows)), encoding="utf-8")
    # The summary sidecar keeps the dataset root.
    side = index.with_name(index.stem + ".summary.json")
    out.with_name(out.stem + ".summary.json").write_text(side.read_text())
    return out


def test_duplicate_rows_are_used_once_and_a_pack_of_nothing_is_an_error(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dup = _rewrite(data["index"], tmp_path / "dup.csv", lambda r: [*r, *r[1:], r[1]])
    ev = tmp_path / "ev"
    with pytest.warns(UserWarning, match="7 duplicate row.*each patch is used once"):
        assert main(["evaluate", "--checkpoint", "identity", "--data", str(dup), "--split",
                     "all", "--out", str(ev), "--no-report"]) == 0  # fmt: skip
    assert json.loads((ev / "summary.json").read_text())["count"] == 6
    with pytest.warns(UserWarning, match="duplicate"):
        assert main(["pack", str(dup), "--out", str(tmp_path / "p"), "--workers", "0"]) == 0
    assert "packed 6 patches" in capsys.readouterr().out
    # An index whose S2 files are all missing (its S1 files are there): nothing could be
    # packed, which is an error, and leaves no --out folder.
    gone = _rewrite(data["index"], tmp_path / "gone.csv", lambda r: [r[0], *(
        [*x[:5], *(c.replace(".tif", "_gone.tif") for c in x[5:])] for x in r[1:])])  # fmt: skip
    with pytest.warns(UserWarning, match="skipping patch"):
        assert main(["pack", str(gone), "--out", str(tmp_path / "none"), "--workers", "0"]) == 1
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert last.startswith("cloudfree pack: error: ") and "_gone.tif" in last, last
    assert "none of the 6 patches could be read" in last, last
    assert not (tmp_path / "none").exists()


def test_what_can_be_checked_before_work_is(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index, root = str(data["index"]), str(data["root"])
    before = digest(data["base"])
    runs = tmp_path / "runs"
    train = ["train", "--config", "debug_tiny", f"data.index={index}", f"train.out_dir={runs}"]
    usage([*train, "train.epochs=abc"], capsys, "train.epochs")
    fails([*train, "data.crop_size=64"], capsys, "crop_size 64", "32")
    usage([*train, "train.run_name=../escape"], capsys, "train.run_name", "'../escape'")
    assert not runs.exists() and not (tmp_path / "escape").exists()
    # pack --inpaint with a name it does not know: before packing anything.
    fails(["pack", index, "--out", str(tmp_path / "p"), "--inpaint", "mask-fil"], capsys,
          "mask-fill")  # fmt: skip
    assert not (tmp_path / "p").exists()
    # replicate: its overrides are checked before it writes anything (its pack, inpainting).
    out = tmp_path / "rep"
    usage(["replicate", "--data", root, "--out", str(out), "--size", "tiny",
           "train.epochs=abc"], capsys, "train.epochs")  # fmt: skip
    assert not out.exists()
    # Numbers out of range are usage errors (exit 2) naming the flag, before any work.
    for argv in (
        ["pack", index, "--out", str(tmp_path / "p"), "--workers", "-1"],
        ["evaluate", "--checkpoint", "identity", "--data", root, "--out", str(tmp_path / "e"),
         "--limit", "0"],
        ["render", root, "--out", str(tmp_path / "r"), "--max-size", "-5"],
        ["predict", "--s2", root, "--out", str(tmp_path / "o"), "--b10", "nan"],
    ):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {argv[-2]}" in err, err
    # --shard splits several scenes: with one scene it is an error.
    s2 = next(data["root"].rglob("*s2_cloudy*.tif"))
    fails(["predict", "--s2", str(s2), "--out", str(tmp_path / "o.tif"), "--checkpoint",
           "identity", "--shard", "0/2", "--no-progress"], capsys, "--shard")  # fmt: skip
    assert digest(data["base"]) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == []
