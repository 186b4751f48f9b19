"""Output paths as an adversarial user gives them (issue 17): an output that is an input, two
outputs with one name, a folder or an unwritable path, a folder predicted into itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloudfree.cli import main
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize

from .conftest import digest, fails


def test_an_output_equal_to_an_input_is_refused(
    scene: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(scene["dir"])
    s2, w = str(scene["s2"]), str(scene["weights"])
    fails(["predict", "--s2", s2, "--out", s2, "--checkpoint", w, "--no-progress"], capsys,
           f"--out {s2} is also an input", "name of its own")  # fmt: skip
    fails(["mask", s2, "--out", s2], capsys, "is also an input")
    out = str(scene["dir"] / "out.tif")
    fails(["predict", "--s2", s2, "--out", out, "--mask-out", out, "--checkpoint", w,
            "--no-progress"], capsys, "--mask-out", "same file as --out")  # fmt: skip
    # A hard link to the input is the input too.
    link = scene["dir"] / "link.tif"
    os.link(scene["s2"], link)
    fails(["mask", s2, "--out", str(link)], capsys, "is also an input")
    link.unlink()
    assert digest(scene["dir"]) == before  # nothing changed, no .part file left


def test_index_never_overwrites_a_file_of_the_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    synthesize(tmp_path / "root", n=2, seed=0, size=32)
    before = digest(tmp_path / "root")
    victim = next((tmp_path / "root").rglob("*.tif"))
    fails(["index", str(tmp_path / "root"), "--out", str(victim)], capsys,
           str(victim), "not a CSV index", "--out index.csv")  # fmt: skip
    assert digest(tmp_path / "root") == before
    # Re-indexing over an earlier index is what --out is for.
    write_index(build_index(tmp_path / "root"), tmp_path / "index.csv")
    assert main(["index", str(tmp_path / "root"), "--out", str(tmp_path / "index.csv")]) == 0


def test_a_folder_or_unwritable_output_is_a_clear_error(
    scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    s2 = str(scene["s2"])
    fails(["mask", s2, "--out", str(tmp_path)], capsys, "is an existing folder", "mask.tif")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:
        # root may write into a read-only folder; the guard asks os.access, which then says
        # yes: make it answer as for any other user.
        import cloudfree.outputs

        real = os.access
        monkeypatch.setattr(
            cloudfree.outputs.os, "access",
            lambda p, mode: False if Path(p) == locked else real(p, mode),
        )  # fmt: skip
    try:
        fails(["mask", s2, "--out", str(locked / "m.tif")], capsys,
              f"the folder {locked} is not writable")  # fmt: skip
        fails(["evaluate", "--checkpoint", "identity", "--data", s2, "--out",
               str(locked / "ev")], capsys, f"{locked} is not writable")  # fmt: skip
    finally:
        locked.chmod(0o755)
    assert not list(locked.iterdir())


def test_predicting_a_folder_into_itself_twice_predicts_each_scene_once(
    scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    os.link(scene["s2"], folder / "a.tif")
    d, w = str(folder), str(scene["weights"])
    argv = ["predict", "--s2", d, "--out", d, "--checkpoint", w, "--no-progress"]
    assert main(argv) == 0
    assert main([*argv, "--overwrite"]) == 0
    names = sorted(p.name for p in folder.glob("*.tif"))
    assert names == ["a.tif", "a_cloudfree.tif"], names
    out = capsys.readouterr().out
    assert "a_cloudfree_cloudfree" not in out


def test_bad_arguments_are_errors_not_tracebacks(
    scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s2, out = str(scene["s2"]), str(tmp_path / "o.tif")
    missing = str(tmp_path / "nope.safetensors")
    fails(["predict", "--s2", s2, "--out", out, "--checkpoint", missing, "--no-progress"],
           capsys, "nope.safetensors")  # fmt: skip
    fails(["predict", "--s2", s2, "--out", out, "--checkpoint", "mask-fil", "--no-progress"],
           capsys, "mask-fill")  # fmt: skip  # the closest known name is suggested
    fails(["predict", "--s2", s2, "--out", out, "--checkpoint", str(scene["weights"]),
            "--tile", "0", "--no-progress"], capsys, "tile must be >= 8")  # fmt: skip
    assert not Path(out).exists() and not list(tmp_path.glob(".*.part"))


def test_an_unexpected_error_names_its_type_and_debug_shows_the_traceback(
    scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import cloudfree.masks.scene as scene_mod

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(scene_mod, "mask_scene", broken)
    argv = ["mask", str(scene["s2"]), "--out", str(tmp_path / "m.tif")]
    fails(argv, capsys, "RuntimeError: something nobody foresaw", "cloudfree --debug")
    with pytest.raises(RuntimeError, match="nobody foresaw"):
        main(["--debug", *argv])


def test_stack_convert_and_inpaint_never_write_over_their_inputs(
    scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.data.sentinel.test_safe import make_l1c

    safe = make_l1c(tmp_path / "safe")
    before = digest(safe)
    band = next(safe.rglob("*_B02.jp2"))
    fails(["stack", str(safe), "--out", str(band)], capsys, "is also an input")
    assert digest(safe) == before

    before = digest(scene["dir"])
    w, s2 = str(scene["weights"]), str(scene["s2"])
    fails(["convert-keras", w, w], capsys, f"OUT {w} is also an input")
    conf = scene["dir"] / "conf.json"
    conf.write_text("{}")
    fails(["convert-uncrtaints", w, "--conf", str(conf), "--out", str(conf)], capsys,
          "--out", "is also an input")  # fmt: skip
    fails(["inpaint", s2, "--out", str(tmp_path / "i.tif"), "--summary", s2], capsys,
          "--summary", "is also an input")  # fmt: skip
    conf.unlink()
    assert digest(scene["dir"]) == before and not (tmp_path / "i.tif").exists()
