"""The command line: help, version, exit codes."""

import subprocess
import sys
from pathlib import Path

import pytest

from cloudfree import __version__
from cloudfree.cli import main


def test_no_command_prints_help_and_returns_2(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for command in ("index", "pack", "synth", "demo"):
        assert command in out


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert __version__ in capsys.readouterr().out


def test_import_is_cheap():
    # importing the CLI does not import torch, rasterio or scipy: `cloudfree --help` stays fast
    code = "import sys, cloudfree.cli; print(sorted({'torch', 'rasterio', 'scipy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_console_script_runs():
    script = Path(sys.executable).with_name("cloudfree")
    if not script.exists():
        pytest.skip(f"console script not installed beside {sys.executable} (not an installed venv)")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "index" in out.stdout and "pack" in out.stdout


def test_error_text_is_one_paragraph_for_every_kind_of_failure() -> None:
    from cloudfree.cli import error_text
    from cloudfree.errors import DataError

    assert error_text(DataError("a.tif", "has 3 bands", "13 bands")) == (
        "a.tif: has 3 bands (expected 13 bands)"
    )
    assert error_text(KeyError("unknown model 'x'; registered: a, b")) == (
        "unknown model 'x'; registered: a, b"
    )
    assert error_text(FileNotFoundError(2, "No such file or directory", "/x/y.tif")) == (
        "/x/y.tif: No such file or directory"
    )
    # A bare key or any other exception is a bug: its type, and how to get the traceback.
    for e in (KeyError("s2"), RuntimeError("boom")):
        text = error_text(e)
        assert text.startswith(type(e).__name__) and "cloudfree --debug" in text, text
