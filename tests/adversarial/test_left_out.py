"""Patches a method cannot use are counted and shown, never dropped without a word (issue 17,
item 2): a SAR model trained or evaluated on data where some patches have no S1."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from cloudfree.cli import main
from cloudfree.data.left_out import LEFT_OUT_REASONS
from cloudfree.data.packed.pack import pack
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize

NO_S1 = LEFT_OUT_REASONS["s1"]


@pytest.fixture(scope="module")
def partial_s1(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """12 synthetic 32-px triplets (8 train, 2 val, 2 test), 3 of them without S1 (2 train,
    1 test), as a release root and as a pack."""
    base = tmp_path_factory.mktemp("partial_s1")
    root = base / "root"
    synthesize(root, n=12, seed=0, size=32)
    for name in ("1158_spring_s1_1_p1", "1158_spring_s1_1_p2", "1868_summer_s1_119_p1"):
        (next(root.rglob(f"ROIs{name}.tif"))).unlink()
    index = base / "index.csv"
    write_index(build_index(root), index)
    pack(index, base / "packed", workers=0)
    return {"root": root, "index": index, "packed": base / "packed"}


@pytest.mark.parametrize("source", ["index", "packed"])
def test_training_a_sar_model_says_which_patches_it_left_out(
    partial_s1: dict[str, Path], tmp_path: Path, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--config", "debug_tiny", f"data.{source}={partial_s1[source]}",
            f"train.out_dir={tmp_path}", "train.run_name=run", "train.epochs=1"]  # fmt: skip
    with pytest.warns(UserWarning) as record:
        assert main(argv) == 0, capsys.readouterr().err
    said = " ".join(str(w.message) for w in record)
    assert f"training uses 6 patches: 2 of 8 patches left out: 2 {NO_S1}" in said, said
    assert "model.name=dsen2cr-nosar" in said  # how to use them
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["left_out"] == {NO_S1: 2}

    # The no-SAR model uses every patch, and says nothing.
    argv = [*argv[:-2], "train.run_name=nosar", "train.epochs=1", "model.name=dsen2cr-nosar"]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert main(argv) == 0
    assert not [w for w in record if "left out" in str(w.message)]
    assert json.loads((tmp_path / "nosar" / "summary.json").read_text())["left_out"] == {}


def test_evaluate_and_compare_show_the_patches_a_sar_model_could_not_use(
    partial_s1: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudfree.models import build_model, save_weights

    sar = save_weights(
        build_model("dsen2cr", num_layers=1, feature_size=8), tmp_path / "sar.safetensors"
    )
    data = str(partial_s1["packed"])
    common = ["--data", data, "--split", "all", "--no-report", "--device", "cpu"]
    assert (
        main(["evaluate", "--checkpoint", str(sar), "--out", str(tmp_path / "sar"), *common]) == 0
    )
    assert (
        main(["evaluate", "--checkpoint", "identity", "--out", str(tmp_path / "id"), *common]) == 0
    )
    printed = capsys.readouterr().out

    summary = json.loads((tmp_path / "sar" / "summary.json").read_text())
    assert summary["count"] == 9 and summary["skipped"] == 0
    assert summary["left_out"] == {NO_S1: 3}
    line = f"9 patches evaluated, 0 skipped as bad; 3 of 12 patches left out: 3 {NO_S1}"
    assert line in (tmp_path / "sar" / "table.md").read_text()
    assert line in printed
    identity = json.loads((tmp_path / "id" / "summary.json").read_text())
    assert identity["count"] == 12 and identity["left_out"] == {}

    assert main(["compare", str(tmp_path / "sar"), str(tmp_path / "id"), "--no-published"]) == 0
    table = capsys.readouterr().out
    assert "n=9, 3 left out)" in table and "n=12)" in table, table
    assert f"3 of 12 patches left out: 3 {NO_S1}; its row is over the patches it could use" in table
    assert "different numbers of patches" in table


def test_a_split_a_sar_model_cannot_use_at_all_says_what_to_do_in_cli_terms(
    partial_s1: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudfree.models import build_model, save_weights

    from .conftest import fails

    sar = save_weights(
        build_model("dsen2cr", num_layers=1, feature_size=8), tmp_path / "sar.safetensors"
    )
    # The only S1 of the test split was removed with 1868_summer 119: one S1 patch is left.
    for source in ("index", "packed"):
        argv = ["evaluate", "--checkpoint", str(sar), "--data", str(partial_s1[source]),
                "--out", str(tmp_path / source), "--split", "test", "--limit", "1"]  # fmt: skip
        assert main(argv) == 0  # ROIs1158_spring 106 has its S1
    root = tmp_path / "no_s1"
    synthesize(root, n=4, seed=1, size=32)
    for f in root.rglob("*_s1_*.tif"):
        f.unlink()
    err = fails(["evaluate", "--checkpoint", str(sar), "--data", str(root), "--out",
                 str(tmp_path / "e"), "--split", "all"], capsys,
                "a no-SAR --checkpoint", "model.name=dsen2cr-nosar")  # fmt: skip
    assert "SampleConfig" not in err and "require_target" not in err
