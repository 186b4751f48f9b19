"""The authors' pre-computed sample files: written here as their script writes them (np.save
of a dict of DataLoader-collated values), read without running anything else they name."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.data.timeseries.samples import load_pickled_npy, read_sample_file
from cloudfree.errors import DataError


def _path(t: int, patch: int, mod: str = "S2") -> str:
    m = mod.lower()
    return f"ROIs1868/17/{mod}/{t}/{m}_ROIs1868_17_ImgNo_{t}_2018-01-{1 + t:02d}_patch_{patch}.tif"


def _generic_file(path: Path) -> Path:
    """As util/pre_compute_data_samples.py (sample_type='generic', batch_size=1)."""
    data_pairs = {}
    for pdx, patch in enumerate((5, 9)):
        data_pairs[pdx] = {
            # np.mean of a float32 mask, collated: a (1,) float32 tensor per date
            "coverage": [torch.tensor([t / 40 + patch / 100], dtype=torch.float32)
                         for t in range(30)],
            "paths": {"S1": [_path(t, patch, "S1") for t in range(30)],
                      "S2": [_path(t, patch) for t in range(30)]},
        }  # fmt: skip
    np.save(path, data_pairs)
    return path


def test_generic_file_gives_the_coverage_of_each_date(tmp_path: Path) -> None:
    sf = read_sample_file(_generic_file(tmp_path / "generic_3_test_all_s2cloudless_mask.npy"))
    assert len(sf.coverage) == 60
    assert sf.coverage[("ROIs1868/17", 9, 4)] == pytest.approx(4 / 40 + 0.09, abs=1e-7)
    rows = [{"roi": "ROIs1868/17", "patch": "9", "t": "4", "s2": "x/a.tif"},
            {"roi": "ROIs1868/17", "patch": "7", "t": "4", "s2": "x/b.tif"}]  # fmt: skip
    assert sf.coverage_of(rows) == {"x/a.tif": pytest.approx(0.19, abs=1e-7)}


class _Evil:
    def __reduce__(self):  # noqa: ANN204
        import os

        return (os.system, ("touch pwned",))


def test_a_pickle_that_runs_code_is_refused(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.npy"
    np.save(path, {0: _Evil()}, allow_pickle=True)
    with pytest.raises(DataError, match=r"asks to run posix\.system"):
        load_pickled_npy(path)
    assert not (tmp_path / "pwned").exists()


def test_not_a_sample_file(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(DataError, match="holds a float64 array"):
        read_sample_file(tmp_path / "a.npy")
    (tmp_path / "b.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="not a readable sample file"):
        read_sample_file(tmp_path / "b.npy")
    np.save(tmp_path / "c.npy", {0: {"coverage": [0.1], "paths": {"S2": ["x.tif"]}}})
    with pytest.raises(DataError, match="item 0 is not an UnCRtainTS sample"):
        read_sample_file(tmp_path / "c.npy")
    with open(tmp_path / "d.npy", "wb") as fh:
        pickle.dump([1], fh)
    with pytest.raises(DataError):
        read_sample_file(tmp_path / "d.npy")
