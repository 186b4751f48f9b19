"""Shared fixtures. Real samples live in ../shared/data beside the checkout; tests that need
them skip with a reason when the folder is absent (as on a user's machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``gpu`` tests skip with a reason where torch sees no CUDA device (checked only when
    some collected test carries the marker: torch is not imported for nothing)."""
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in gpu:
        item.add_marker(skip)


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.is_dir():
        pytest.skip(f"real sample data not found at {path} (the ../shared/data folder is absent)")
    return path


@pytest.fixture
def shared_data() -> Path:
    """Root of the real Sentinel-1/2 samples (``../shared/data``)."""
    return _shared("")


@pytest.fixture
def sen12mscr_root() -> Path:
    """Real SEN12MS-CR patches in the release layout (incomplete on purpose, see its README)."""
    return _shared("sen12mscr")


@pytest.fixture(autouse=True, scope="session")
def _private_cloudfree_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never write to the user's cache: CLOUDFREE_HOME points to a session folder (tests
    that need an empty cache set their own)."""
    import os

    from cloudfree.home import HOME_ENV

    old = os.environ.get(HOME_ENV)
    os.environ[HOME_ENV] = str(tmp_path_factory.mktemp("cloudfree_home"))
    yield
    if old is None:
        os.environ.pop(HOME_ENV, None)
    else:
        os.environ[HOME_ENV] = old
