"""Issue 30, class 1: nothing a command was given is overwritten or deleted, through any flag.

Every path a command writes goes through the one output guard (``cloudfree.outputs``) before
any work: ``predict --summary``, ``compare --out`` and ``--eval-out``, ``evaluate --out`` into
a training run, ``synth`` into a real dataset. A replacing write (``weights import --force``)
is staged and swapped in only once it succeeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloudfree.cli import main
from cloudfree.data.synthetic.release import MARKER, synthesize
from cloudfree.models import save_weights
from tests.predict.conftest import tiny_model, write_tif

from .conftest import digest, fails


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 synthetic 32-px triplets."""
    path = tmp_path_factory.mktemp("given") / "root"
    synthesize(path, n=3, seed=0, size=32)
    return path


def test_predict_summary_never_lands_on_a_file_it_was_given(
    scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mask = write_tif(scene["dir"] / "mask.tif", np.zeros((1, 48, 48), np.uint8))
    before = digest(scene["dir"])
    out = tmp_path / "o.tif"
    base = ["predict", "--s2", str(scene["s2"]), "--s1", str(scene["s1"]), "--mask", str(mask),
            "--checkpoint", str(scene["sar"]), "--out", str(out), "--no-progress"]  # fmt: skip
    for victim in (scene["s2"], scene["s1"], mask, scene["sar"]):
        fails([*base, "--summary", str(victim)], capsys, f"--summary {victim} is also an input")
    fails([*base, "--summary", str(out)], capsys, "--summary", "same file as --out")
    assert digest(scene["dir"]) == before and not out.exists()
    # Several scenes: a --summary that cannot be written fails before any scene is predicted.
    outs = tmp_path / "outs"
    fails(["predict", "--s2", str(scene["dir"]), "--out", str(outs), "--checkpoint", "identity",
           "--summary", str(tmp_path), "--no-progress"], capsys,
          "--summary", "is an existing folder")  # fmt: skip
    assert not outs.exists()


def test_evaluate_and_compare_never_write_over_an_evaluation_or_a_run(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A training run as `train` leaves it, and an evaluation as `evaluate` leaves it.
    run = tmp_path / "runs" / "x"
    save_weights(tiny_model(False), run / "checkpoints" / "best" / "model.safetensors")
    (run / "summary.json").write_text('{"best_step": 3}\n')
    evals = tmp_path / "evals"
    ev = evals / "identity"
    assert main(["evaluate", "--checkpoint", "identity", "--data", str(root), "--out", str(ev),
                 "--split", "all", "--no-report"]) == 0  # fmt: skip
    capsys.readouterr()
    before = {"run": digest(run), "ev": digest(ev)}

    fails(["evaluate", "--checkpoint", str(run), "--data", str(root), "--out", str(run),
           "--split", "all"], capsys, f"--out {run} is also an input")  # fmt: skip
    best = run / "checkpoints" / "best"
    fails(["evaluate", "--checkpoint", str(best), "--data", str(root), "--out", str(run),
           "--split", "all"], capsys, f"--out {run} is also an input")  # fmt: skip
    for name in ("summary.json", "per_patch.csv"):
        fails(["compare", str(ev), "--out", str(ev / name)], capsys,
              f"--out {ev / name} is a file inside the input folder {ev}")  # fmt: skip
    fails(["compare", str(ev), "--checkpoint", "identity", "--data", str(root), "--split", "all",
           "--eval-out", str(ev)], capsys, f"--eval-out {ev} is also an input")  # fmt: skip
    # --eval-out whose folder for `identity` is the evaluation given.
    fails(["compare", str(ev), "--checkpoint", "identity", "--data", str(root), "--split", "all",
           "--eval-out", str(evals)], capsys, f"--eval-out {ev} is also an input")  # fmt: skip
    assert {"run": digest(run), "ev": digest(ev)} == before


def test_a_failed_weights_import_force_keeps_the_entry_it_was_to_replace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import load_file, save_file

    from cloudfree.weights import cache

    good = save_weights(tiny_model(False), tmp_path / "good.safetensors")
    assert main(["weights", "import", str(good), "--name", "mine-adv"]) == 0
    installed = cache.weights_path("mine-adv")
    record = cache.record_path("mine-adv").read_bytes()
    weights = installed.read_bytes()
    # Same header (model and config), a tensor missing: it verifies, but does not load.
    from safetensors import safe_open

    with safe_open(str(good), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(good))
    tensors.pop(sorted(tensors)[0])
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    capsys.readouterr()
    assert main(["weights", "import", str(bad), "--name", "mine-adv", "--force"]) == 1
    assert cache.record_path("mine-adv").read_bytes() == record
    assert installed.read_bytes() == weights
    assert not list(installed.parent.glob(".*.part"))
    assert main(["weights", "import", str(good), "--name", "mine-adv", "--force"]) == 0


def test_synth_never_writes_into_a_real_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tmp_path / "release"
    synthesize(real, n=2, seed=0, size=16)
    (real / MARKER).unlink()  # as a real release: patches with release names, no marker
    before = digest(real)
    fails(["synth", str(real), "--n", "2", "--size", "16"], capsys,
          "holds GeoTIFFs that synth did not write")  # fmt: skip
    assert digest(real) == before
    # A folder an earlier synth wrote is synth's to rewrite.
    fake = tmp_path / "fake"
    assert main(["synth", str(fake), "--n", "2", "--size", "16"]) == 0
    assert main(["synth", str(fake), "--n", "2", "--size", "16", "--seed", "1"]) == 0
