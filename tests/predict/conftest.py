"""Synthetic scenes and tiny models for the predict tests (seeded, a few hundred pixels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rasterio.transform import from_origin

from cloudfree.bands import DSEN2CR
from cloudfree.data.preprocess import normalize_s1, normalize_s2

from ..inpaint.conftest import tiny_sd_dir  # noqa: F401 (a fixture: Stable Diffusion scenes)

CRS = "EPSG:32633"
TRANSFORM = from_origin(500000.0, 5000000.0, 10.0, 10.0)
#: Receptive-field radius of the tiny DSen2-CR below: head 1 + 2 per block x 2 + tail 1.
TINY_RF = 6


def synth_s2(height: int, width: int, seed: int = 0, dtype: str = "uint16") -> np.ndarray:
    """(13, H, W) smooth + noisy DN in ~[200, 2600], with a bright 'cloud' blob."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = 1000 + 400 * np.sin(x / 9.0) + 300 * np.cos(y / 7.0)
    bands = base[None] * (1 + 0.05 * np.arange(13))[:, None, None]
    bands = bands + rng.normal(0, 60, (13, height, width))
    blob = np.exp(-(((y - height / 3) ** 2 + (x - width / 3) ** 2) / (2 * (height / 8) ** 2)))
    bands = bands + 5000 * blob[None]
    return np.clip(bands, 1, 9000).astype(dtype)


def synth_s1(height: int, width: int, seed: int = 1) -> np.ndarray:
    """(2, H, W) float32 dB, smooth, in [-25, -3]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    vv = -12 + 5 * np.sin(x / 11.0) * np.cos(y / 13.0) + rng.normal(0, 0.3, (height, width))
    vh = vv - 7
    return np.stack([vv, vh]).astype(np.float32)


def write_tif(
    path: Path, data: np.ndarray, crs=CRS, transform=TRANSFORM, nodata=None, descriptions=None
) -> Path:
    import rasterio

    prof = dict(
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs=crs,
        transform=transform,
        nodata=nodata,
    )
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            ds.set_band_description(i, d)
    return path


def read_tif(path: Path) -> tuple[np.ndarray, dict]:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read(), dict(ds.profile, descriptions=ds.descriptions)


def reproject_s1(data: np.ndarray, dst_crs: str, res: float, nodata: float = float("nan")):
    """Warp a (2, H, W) array on the test grid to another CRS / resolution (the 'user's' S1)."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    h, w = data.shape[1:]
    left, top = TRANSFORM.c, TRANSFORM.f
    bounds = (left, top - 10 * h, left + 10 * w, top)
    transform, width, height = calculate_default_transform(
        CRS, dst_crs, w, h, *bounds, resolution=res
    )
    out = np.full((2, height, width), nodata, dtype=np.float32)
    reproject(
        data,
        out,
        src_transform=TRANSFORM,
        src_crs=CRS,
        dst_transform=transform,
        dst_crs=dst_crs,
        resampling=Resampling.bilinear,
        dst_nodata=nodata,
    )
    return out, transform


def tiny_model(include_sar: bool, seed: int = 0) -> torch.nn.Module:
    from cloudfree.models import build_model

    torch.manual_seed(seed)
    name = "dsen2cr" if include_sar else "dsen2cr-nosar"
    return build_model(name, num_layers=2, feature_size=8).eval()


def untiled(
    model: torch.nn.Module, s2_dn: np.ndarray, s1_db: np.ndarray | None = None, clip: bool = True
) -> np.ndarray:
    """The model on the whole image at once, in DN (float), clipped at 0 DN as predict writes
    it (DN are never negative) unless ``clip=False``."""
    x = torch.from_numpy(normalize_s2(s2_dn, DSEN2CR))[None]
    with torch.no_grad():
        if s1_db is None:
            out = model(x)
        else:
            out = model(x, torch.from_numpy(normalize_s1(s1_db, DSEN2CR))[None])
    dn = out[0].numpy() * DSEN2CR.s2_scale
    return np.maximum(dn, 0.0) if clip else dn


@pytest.fixture
def nosar_weights(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    from cloudfree.models import save_weights

    model = tiny_model(False)
    return save_weights(model, tmp_path / "nosar.safetensors"), model


@pytest.fixture
def sar_weights(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    from cloudfree.models import save_weights

    model = tiny_model(True, seed=1)
    return save_weights(model, tmp_path / "sar.safetensors"), model


def leftovers(folder: Path) -> list[str]:
    """Files of a folder other than the test's own inputs (outputs, .part files)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((".", "out", "mask")))
