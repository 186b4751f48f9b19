"""Helpers of the adversarial suite (issue 17): the CLI is run as a careless or hostile user
would, and every failure must be a clear error (exit 1, one paragraph that names the file and
what was expected, no traceback without --debug) that changes no input and leaves no partial
output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cloudfree.cli import main
from cloudfree.models import save_weights
from tests.predict.conftest import synth_s1, synth_s2, tiny_model, write_tif


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (to assert that none changed)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def fails(argv: list[str], capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    """Run the command; assert exit 1, no traceback, and every ``expected`` in the message."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1, err
    # The error is the last paragraph: a progress bar may have been drawn before it.
    prefix = f"cloudfree {argv[0]}: error: "
    assert "Traceback" not in err and prefix in err, err
    last = err[err.rindex(prefix) :]
    assert err[: err.rindex(prefix)].strip("\r\n") == "" or "%|" in err, err  # bars only
    for text in expected:
        assert text in last, err
    return last


@pytest.fixture
def scene(tmp_path: Path) -> dict[str, Path]:
    """A 48-px S2 scene, its S1, and tiny no-SAR and SAR weights, in ``tmp_path / "in"``."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    s2 = write_tif(inputs / "a.tif", synth_s2(48, 48))
    s1 = write_tif(inputs / "a_s1.tif", synth_s1(48, 48))
    weights = save_weights(tiny_model(False), inputs / "nosar.safetensors")
    sar = save_weights(tiny_model(True), inputs / "sar.safetensors")
    return {"dir": inputs, "s2": s2, "s1": s1, "weights": weights, "sar": sar}
