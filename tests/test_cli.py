"""The command line: help, version, exit codes."""

import subprocess
import sys

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


def test_console_script_is_installed_and_import_is_cheap():
    # `python -m cloudfree.cli` works, and importing the CLI does not import torch (fast --help).
    code = "import sys, cloudfree.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
