"""Issue 30, class 6: library errors wrapped in one paragraph that names the file and what was
expected; no INFO lines, each warning once and on a line of its own; errors that point at the
right thing."""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from cloudfree.cli import main
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize
from tests.predict.conftest import synth_s2, write_tif

from .conftest import fails

BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 8


class Pickled:
    """An object a checkpoint may carry besides its tensors."""


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("messages")
    synthesize(base / "root", n=4, seed=0, size=32)
    return write_index(build_index(base / "root"), base / "index.csv")


def test_library_errors_become_one_paragraph_naming_the_file(
    index: Path, scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    binary_csv = tmp_path / "bin.csv"
    binary_csv.write_bytes(BINARY)
    fails(["evaluate", "--checkpoint", "identity", "--data", str(binary_csv), "--out", out],
          capsys, f"{binary_csv}: is not a text file", "a CSV")  # fmt: skip
    binary_yaml = tmp_path / "bin.yaml"
    binary_yaml.write_bytes(BINARY)
    assert main(["train", "--config", str(binary_yaml)]) == 2
    assert f"{binary_yaml}: is not a text file" in capsys.readouterr().err
    # A damaged sidecar of an index.
    damaged = tmp_path / "damaged.csv"
    shutil.copy(index, damaged)
    damaged.with_name("damaged.summary.json").write_text("{broken")
    fails(["evaluate", "--checkpoint", "identity", "--data", str(damaged), "--out", out],
          capsys, "damaged.summary.json: is damaged: not valid JSON")  # fmt: skip
    # A GeoTIFF cut short: GDAL's reason, not "See previous exception".
    truncated = tmp_path / "cut.tif"
    whole = scene["s2"].read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    err = fails(["predict", "--s2", str(truncated), "--out", str(tmp_path / "o.tif"),
                 "--checkpoint", "identity", "--no-progress"], capsys, str(truncated))  # fmt: skip
    assert "See previous exception" not in err and "INFO" not in err, err
    # The one without georeferencing is named: S2 here, not S1.
    with warnings.catch_warnings():  # rasterio warns about the file it writes and reads
        warnings.simplefilter("ignore")
        no_crs = write_tif(tmp_path / "nocrs.tif", synth_s2(64, 64), crs=None, transform=None)
        fails(["predict", "--s2", str(no_crs), "--s1", str(scene["s1"]), "--out",
               str(tmp_path / "o.tif"), "--checkpoint", str(scene["sar"]), "--no-progress"],
              capsys, f"{no_crs}: has no georeferencing")  # fmt: skip
    # --resume of a folder that is not there; a folder given as a weights file.
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "preset" not in err, err
    fails(["weights", "import", str(tmp_path), "--name", "adv-folder"], capsys,
          f"{tmp_path}: is a folder")  # fmt: skip
    # A checkpoint with pickled objects: one sentence, not torch's page on weights_only.
    import json

    import torch

    ckpt, conf = tmp_path / "model.pth.tar", tmp_path / "conf.json"
    torch.save({"state_dict": {}, "extra": Pickled()}, ckpt)
    conf.write_text(json.dumps({"pretrain": True, "input_t": 1, "use_sar": True}))
    err = fails(["convert-uncrtaints", str(ckpt), "--conf", str(conf), "--out",
                 str(tmp_path / "x.safetensors")], capsys, "holds Python objects besides tensors",
                "Pickled")  # fmt: skip
    assert "weights_only" not in err and len(err) < 400, err
    # An index saved by a spreadsheet (a UTF-8 byte-order mark) is read.
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + index.read_bytes())
    shutil.copy(index.with_name("index.summary.json"), bom.with_name("bom.summary.json"))
    assert main(["evaluate", "--checkpoint", "identity", "--data", str(bom), "--split", "all",
                 "--out", out, "--no-report"]) == 0  # fmt: skip


def test_warnings_once_each_on_a_line_of_its_own(
    scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tqdm import tqdm

    from cloudfree.cli import _format_warning

    # A 12-band (L2A) scene: its warning once per scene, not also as a log line.
    l2a = write_tif(tmp_path / "l2a.tif", np.delete(synth_s2(48, 48), 10, axis=0))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["predict", "--s2", str(l2a), "--out", str(tmp_path / "o.tif"),
                     "--checkpoint", str(scene["weights"]), "--no-progress"]) == 0  # fmt: skip
    said = [w for w in seen if "read as Sentinel-2 L2A" in str(w.message)]
    assert len(said) == 1, [str(w.message) for w in seen]
    err = capsys.readouterr().err
    assert "L2A" not in err and "INFO" not in err, err
    # While a progress bar is on screen, a warning is written above it, not glued to it.
    with tqdm(total=2, file=sys.stderr) as bar:
        bar.update(1)
        assert _format_warning("half the patches were skipped", UserWarning) == ""
    err = capsys.readouterr().err
    assert "\ncloudfree: warning: half the patches were skipped\n" in "\n" + err.replace("\r", "\n")
    # Without a bar: one line.
    assert _format_warning("x", UserWarning) == "cloudfree: warning: x\n"


def test_no_validation_data_says_what_in_one_line(index: Path, tmp_path: Path) -> None:
    from cloudfree.config import load_config
    from cloudfree.train.loop import train

    # An index without its val split.
    rows = index.read_text().splitlines()
    only_train = tmp_path / "train_only.csv"
    only_train.write_text("\n".join([rows[0], *(r for r in rows[1:] if ",val," not in r)]) + "\n")
    shutil.copy(index.with_name("index.summary.json"), only_train.with_name(
        "train_only.summary.json"))  # fmt: skip
    cfg = load_config("debug_tiny", [f"data.index={only_train}", f"train.out_dir={tmp_path}",
                                     "data.val_split=val", "train.epochs=1"])  # fmt: skip
    with pytest.warns(UserWarning, match="no validation data") as seen:
        train(cfg)
    text = next(str(w.message) for w in seen if "no validation data" in str(w.message))
    assert len(text.replace(str(only_train), "INDEX")) < 300 and "{" not in text, text
