"""Shared fixtures of the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudfree.data.packed.pack import pack
from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize


@pytest.fixture(scope="session")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Packed shards of 8 synthetic 64-px triplets (6 train, 1 val, 1 test); read-only."""
    base = tmp_path_factory.mktemp("synth_packed")
    synthesize(base / "root", n=8, seed=0, size=64)
    write_index(build_index(base / "root"), base / "index.csv")
    pack(base / "index.csv", base / "packed", workers=0)
    return base / "packed"
