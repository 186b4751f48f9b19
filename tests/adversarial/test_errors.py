"""Bad arguments to every command are clear errors, never tracebacks (issue 17, item 7): an
output that is a file where a folder is written (or the reverse), a device this machine does
not have, a model name with a typo, no data, a port out of range or taken, a raster that is
not Sentinel. Failed training starts leave no run folder behind."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.cli import main
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize
from tests.predict.conftest import write_tif

from .conftest import digest, fails


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 synthetic 32-px triplets."""
    path = tmp_path_factory.mktemp("adv_errors") / "root"
    synthesize(path, n=4, seed=0, size=32)
    return path


def test_a_folder_output_given_a_file_is_refused_before_any_work(
    root: Path, scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(scene["dir"])
    f = str(scene["s2"])
    expect = ("is a file; this command writes a folder there",)
    index = tmp_path.parent / f"{tmp_path.name}_index.csv"
    write_index(build_index(root), index)
    fails(["pack", str(index), "--out", f], capsys, *expect)
    fails(["evaluate", "--checkpoint", "identity", "--data", str(root), "--out", f], capsys,
          *expect)  # fmt: skip
    fails(["synth", f, "--n", "1"], capsys, *expect)
    fails(["demo", "--out", f], capsys, *expect)
    fails(["render", str(root), "--out", f], capsys, *expect)
    fails(["replicate", "--data", str(root), "--out", f], capsys, *expect)
    fails(["predict", "--s2", str(scene["dir"]), "--out", f, "--checkpoint", "identity",
           "--no-progress"], capsys, *expect)  # fmt: skip
    # ... and a file output given an existing folder, with a file name to use instead.
    fails(["compare", "--checkpoint", "identity", "--data", str(root), "--out", str(tmp_path)],
          capsys, "is an existing folder", "table.md")  # fmt: skip
    fails(["render", f, "--out", str(tmp_path)], capsys, "is an existing folder", "panel.png")
    # Outputs into the dataset itself are refused.
    fails(["evaluate", "--checkpoint", "identity", "--data", str(root), "--out", str(root)],
          capsys, "is also an input")  # fmt: skip
    assert digest(scene["dir"]) == before
    assert [p.name for p in tmp_path.iterdir()] == ["in"]  # nothing written beside the inputs


def test_training_errors_leave_no_run_folder(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    base = ["train", "--config", "debug_tiny", f"data.root={root}", f"train.out_dir={runs}"]
    fails([*base, "model.name=dsen2crr"], capsys, "unknown model 'dsen2crr' (model.name)",
          "did you mean 'dsen2cr'?")  # fmt: skip
    fails([*base, f"data.root={tmp_path / 'nowhere'}"], capsys, "dataset folder does not exist")
    fails([*base, "data.train_split=test", "data.val_split=test", "model.name=dsen2cr",
           f"data.root={tmp_path}"], capsys)  # fmt: skip  # a folder without any patch
    fails([*base, "data.root=", "train.epochs=1"], capsys, "no training data given")
    if not torch.cuda.is_available():
        fails([*base, "train.device=cuda"], capsys, "train.device cuda:", "train.device=cpu")
    assert not runs.exists()  # not even the out_dir, which this call would have created
    a_file = next(root.rglob("*.tif"))
    fails([*base, f"train.out_dir={a_file}"], capsys, f"{a_file} is a file, not a folder")


def test_devices_this_machine_has_not(
    scene: dict[str, Path], root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "o.tif")
    w = str(scene["weights"])
    fails(["predict", "--s2", str(scene["s2"]), "--out", out, "--checkpoint", w, "--device",
           "gpu", "--no-progress"], capsys, "--device 'gpu' is not a device name",
          "auto, cpu, cuda or cuda:N")  # fmt: skip
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: the no-CUDA message cannot be shown")
    fails(["predict", "--s2", str(scene["s2"]), "--out", out, "--checkpoint", w, "--device",
           "cuda", "--no-progress"], capsys, "--device cuda:", "--device cpu")  # fmt: skip
    fails(["evaluate", "--checkpoint", w, "--data", str(root), "--out", str(tmp_path / "ev"),
           "--device", "cuda"], capsys, "--device cuda:")  # fmt: skip
    assert not (tmp_path / "ev").exists() and not (tmp_path / "o.tif").exists()


def test_render_refuses_what_it_cannot_draw(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rgb = write_tif(tmp_path / "rgb.tif", np.zeros((3, 16, 16), np.uint8))
    fails(["render", str(rgb), "--out", str(tmp_path / "rgb.png")], capsys,
          "cannot display a 3-band raster", "Sentinel-2 (13 or 12 bands)")  # fmt: skip
    assert not (tmp_path / "rgb.png").exists()


def test_view_port_out_of_range_or_taken(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("uvicorn")
    with pytest.raises(SystemExit) as e:
        main(["view", str(root), "--port", "99999"])
    assert e.value.code == 2
    assert "'99999' is not a port number (1-65535)" in capsys.readouterr().err
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        fails(["view", str(root), "--port", str(port)], capsys,
              f"cannot listen on 127.0.0.1:{port}", "choose another --port")  # fmt: skip


def test_weights_refuse_what_is_not_weights(
    scene: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(scene["dir"])
    s2 = str(scene["s2"])
    fails(["weights", "import", s2, "--name", "mine"], capsys, s2,
          "neither a Keras HDF5, a PyTorch nor a safetensors file")  # fmt: skip
    fails(["weights", "show", "dsen2cr-sar-crl"], capsys, "did you mean 'dsen2cr-sar-carl'")
    assert digest(scene["dir"]) == before
    assert main(["weights", "show", "mine"]) == 1  # nothing was installed under that name
