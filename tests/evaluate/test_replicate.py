"""``cloudfree replicate``: the five rows of Table 1 and the two hybrid rows, end to end on
synthetic data (tiny size)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudfree.cli import main
from cloudfree.data.packed.pack import pack
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize
from cloudfree.evaluate.replicate import HYBRID_ROWS, PAPER_ROWS, ROWS, data_overrides, row_config
from cloudfree.evaluate.table import PUBLISHED


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("synth")
    synthesize(base / "root", n=8, seed=0, size=64)  # 6 train, 1 val, 1 test
    write_index(build_index(base / "root"), base / "index.csv")
    pack(base / "index.csv", base / "packed", workers=0)
    return base / "packed"


def test_rows_are_the_papers_table_in_order_then_the_hybrids() -> None:
    paper = [k for k, v in PUBLISHED.items() if v["protocol"] == "paper"]
    assert [r.label for r in PAPER_ROWS] == paper
    assert [r.preset for r in ROWS] == [
        "dsen2cr_sar_carl", "dsen2cr_sar_l1", "dsen2cr_nosar_carl", "dsen2cr_nosar_l1", "pix2pix",
        "hybrid_sar_carl", "hybrid_nosar_carl",
    ]  # fmt: skip
    assert not any(r.label in PUBLISHED for r in HYBRID_ROWS)  # nobody has published them


def test_configs_keep_the_presets_unless_tiny(packed: Path, tmp_path: Path) -> None:
    paper = row_config(ROWS[4], packed, tmp_path, "paper")
    assert paper.model.feature_size == 64 and paper.optim.lr == 2e-4
    assert paper.data.packed == str(packed) and paper.train.run_name == "pix2pix"
    tiny = row_config(ROWS[0], packed, tmp_path, "tiny", ["train.epochs=1"])
    assert (tiny.model.num_layers, tiny.model.feature_size, tiny.train.epochs) == (2, 16, 1)
    assert data_overrides(packed.parent / "index.csv") == [f"data.index={packed.parent}/index.csv"]
    with pytest.raises(Exception, match="missing: does not exist"):
        data_overrides(tmp_path / "missing")


@pytest.mark.slow
def test_replicate_tiny_end_to_end_gives_the_full_table(
    packed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rep"
    rc = main(["replicate", "--data", str(packed), "--out", str(out), "--size", "tiny",
               "--no-report", "train.epochs=1"])  # fmt: skip
    assert rc == 0
    table = (out / "table.md").read_text()
    lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    ours = [ln for ln in lines if "(ours, tiny)" in ln]
    published = [ln for ln in lines if "(published)" in ln]
    assert len(ours) == 7 and len(published) == 5
    for row, line in zip(ROWS, ours, strict=True):
        assert line.startswith(f"| {row.label} (ours, tiny)")
        cells = [c.strip() for c in line.strip("|").split("|")[1:]]
        assert len(cells) == 9  # MAE x3, RMSE, PSNR, SAM x3, SSIM
        assert all(c != "" for c in cells)
        assert float(cells[0]) > 0  # MAE target of a tiny network: a real, positive number
    info = json.loads((out / "replicate.json").read_text())
    assert set(info["rows"]) == {r.preset for r in ROWS}
    for row in ROWS:
        assert (out / "runs" / row.preset / "checkpoints").is_dir()
        assert (out / "eval" / row.preset / "per_patch.csv").is_file()
    assert "table:" in capsys.readouterr().out
    # The hybrid rows trained on the pack's cached inpainting, computed once in place.
    assert json.loads((packed / "manifest.json").read_text())["inpaint"]["mask-fill"]

    # Run again: nothing is retrained or re-evaluated.
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("*/*/summary.json")}
    assert main(["replicate", "--data", str(packed), "--out", str(out), "--size", "tiny",
                 "--no-report", "train.epochs=1"]) == 0  # fmt: skip
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/summary.json")} == stamp


def test_unknown_row_and_baseline_training_are_refused(
    packed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replicate", "--data", str(packed), "--out", str(tmp_path), "--rows", "x"]) == 2
    assert "unknown rows" in capsys.readouterr().err
    assert main(["train", "--config", "mask-fill"]) == 2
    assert "non-learned baseline" in capsys.readouterr().err
