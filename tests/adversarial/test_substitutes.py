"""Issue 30, class 7: no silent substitutes. A SAR model without S1 (no ``--s1``, or S1 missing
over part of the scene) is an error unless a no-SAR model is named (``--checkpoint-nosar``),
the recipe has one, or the fallback is asked for (``--outside-sar``); the summary records which
model made which share of the pixels, and only what happened is printed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cloudfree.cli import main
from tests.predict.conftest import synth_s1, write_tif

from .conftest import digest, fails


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads(Path(argv[argv.index("--summary") + 1]).read_text())
    return summary, printed


def test_a_sar_model_without_s1_never_falls_back_unasked(
    scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s1_half = synth_s1(48, 48)
    s1_half[:, :, 24:] = np.nan  # S1 covers the left half only
    half = write_tif(tmp_path / "half_s1.tif", s1_half)
    before = digest(scene["dir"])
    s2, sar, nosar = str(scene["s2"]), str(scene["sar"]), str(scene["weights"])
    out, js = tmp_path / "o.tif", str(tmp_path / "o.json")
    base = ["predict", "--s2", s2, "--out", str(out), "--checkpoint", sar, "--no-progress",
            "--summary", js]  # fmt: skip
    # Your own SAR model: no --s1, or S1 over half the scene, is an error naming the choices.
    for extra, why in (([], "no --s1 was given"), (["--s1", str(half)], "S1 misses part")):
        fails([*base, *extra], capsys, why, "--checkpoint-nosar", "--outside-sar")
        assert not out.exists()
    # Named: every pixel with data by the no-SAR model, and said so.
    summary, printed = _run([*base, "--checkpoint-nosar", nosar], capsys)
    assert summary["made_by"] == {"model": 0.0, "nosar": 1.0, "input": 0.0}
    assert "100.0 % of the pixels (no S1 there) predicted with" in printed
    # Asked for the fallback: the bundled demonstration model, with a warning.
    summary, printed = _run([*base, "--s1", str(half), "--outside-sar", "nosar"], capsys)
    assert summary["method_nosar"] == "hybrid-nosar"
    assert summary["made_by"]["nosar"] == pytest.approx(0.5)
    assert summary["made_by"]["model"] == pytest.approx(0.5)
    # S1 everywhere: no no-SAR model used, none printed (nor by inpaint).
    summary, printed = _run([*base, "--s1", str(scene["s1"])], capsys)
    assert summary["method_nosar"] is None and summary["made_by"]["model"] == 1.0
    assert "predicted with" not in printed
    assert main(["inpaint", s2, "--out", str(tmp_path / "i.tif"), "--no-progress"]) == 0
    assert "predicted with" not in capsys.readouterr().out
    assert digest(scene["dir"]) == before
