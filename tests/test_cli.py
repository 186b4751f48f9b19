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
