"""The authors' pre-computed sample files of SEN12MS-CR-TS, read without running their pickles.

UnCRtainTS publishes, per split, the cloud coverage of every date and the dates its samplers
chose (``util/pre_compute_data_samples.py``; the loader's ``import_data_path``):
``generic_<input_t>_<split>_<region>_<cloud_masks>.npy``, a NumPy file holding a pickled dict
``{item: {"coverage": [30 values], "paths": {"S1": [30 paths], "S2": [30 paths]}}}``. Paths
are ``ROIs1868/17/S2/0/s2_ROIs1868_17_ImgNo_0_2018-01-03_patch_5.tif``; the values are
1-element torch tensors (they went through a DataLoader) or numbers. The samplers then choose
the dates from these coverages exactly as from computed ones. (The script's other branch, files
of chosen dates for ``cloudy_cloudfree`` samples, reads a key ``"output"`` that its samples do
not have, so no such file can be written by it; they are not read here.)

``np.load(..., allow_pickle=True)`` would run whatever such a file names. Here the pickle is
read by an unpickler that builds only NumPy arrays and scalars, torch tensors (their storage
loaded by ``torch.load(weights_only=True)``) and plain containers, and refuses anything else by
name. Items are matched to the index by the names in their paths (ROI, patch, time point),
never by position, so a copy laid out or ordered differently still gets the right dates.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from cloudfree.data.timeseries.names import parse_name
from cloudfree.errors import DataError

#: What the pickle may build: (module, name).
_ALLOWED: Final[frozenset[tuple[str, str]]] = frozenset({
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("torch._utils", "_rebuild_tensor_v2"), ("torch.storage", "_load_from_bytes"),
    ("collections", "OrderedDict"),
})  # fmt: skip


def _storage_from_bytes(data: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"the file asks to run {module}.{name}, which a sample file never needs"
            )
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _storage_from_bytes
        return super().find_class(module, name)


@dataclass
class SampleFile:
    """What a sample file says: ``coverage[(roi, patch, t)]`` of its S2 dates."""

    coverage: dict[tuple[str, int, int], float] = field(default_factory=dict)

    def coverage_of(self, rows: Sequence[Mapping[str, str]]) -> dict[str, float]:
        """``{s2 path: coverage}`` for the index rows the file covers."""
        out = {}
        for r in rows:
            key = (r["roi"], int(r["patch"]), int(r["t"]))
            if r["s2"] and key in self.coverage:
                out[r["s2"]] = self.coverage[key]
        return out


def load_pickled_npy(path: str | os.PathLike[str]) -> Any:
    """The object a ``.npy`` file of a pickled object holds, built by the restricted
    unpickler (module docstring).

    Raises:
        DataError: not a NumPy file of an object, or a pickle asking for anything else.
    """
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                _shape, _order, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                _shape, _order, dtype = np.lib.format.read_array_header_2_0(fh)
            if dtype != np.dtype(object):
                raise DataError(path, f"holds a {dtype} array, not a pickled dict",
                                "a sample file of UnCRtainTS (generic_3_test_all_...npy)")  # fmt: skip
            obj = _Unpickler(fh).load()
    except (ValueError, EOFError, pickle.UnpicklingError) as e:
        raise DataError(
            path, f"is not a readable sample file: {e}",
            "a sample file of UnCRtainTS (generic_3_test_all_s2cloudless_mask.npy)",
        ) from None  # fmt: skip
    return obj.item() if isinstance(obj, np.ndarray) and obj.shape == () else obj


def read_sample_file(path: str | os.PathLike[str]) -> SampleFile:
    """The coverages of an UnCRtainTS sample file (module docstring).

    Raises:
        DataError: unreadable, or not the authors' structure (the item is named).
    """
    data = load_pickled_npy(path)
    if not isinstance(data, Mapping):
        raise DataError(path, f"holds a {type(data).__name__}, not a dict of samples",
                        "a sample file of UnCRtainTS")  # fmt: skip
    out = SampleFile()
    for item, entry in data.items():
        try:
            _add(out, entry)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise DataError(path, f"item {item} is not an UnCRtainTS sample ({e!r})",
                            "a sample file written by util/pre_compute_data_samples.py") from None  # fmt: skip
    return out


def _add(out: SampleFile, entry: Mapping[str, Any]) -> None:
    for p, c in zip(entry["paths"]["S2"], entry["coverage"], strict=True):
        out.coverage[_key(p)] = _number(c)


def _key(path: Any) -> tuple[str, int, int]:
    name = path[0] if isinstance(path, list | tuple) else path
    f = parse_name(str(name))
    if f is None:
        raise ValueError(f"{name!r} is not a SEN12MS-CR-TS file name")
    return f.roi, f.patch, f.t


def _number(value: Any) -> float:
    v = np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float64)
    if v.size != 1:
        raise ValueError(f"a coverage of {v.size} values")
    return float(v.reshape(()))
