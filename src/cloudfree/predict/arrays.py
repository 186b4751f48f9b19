"""Cloud removal of images held in memory: a numpy array, or an ``xarray.DataArray`` with its
coordinates, predicted exactly as the same image in a GeoTIFF would be.

Both go through :func:`cloudfree.predict.scene.predict_scene` (the arrays are written to a
temporary GeoTIFF, predicted, and read back), so tiling, blending, the mask, nodata, the units
checks and the no-SAR rules are the files' own, bit for bit; the temporary folder is removed
afterwards, whatever happens. xarray is imported only by :func:`predict_dataarray`.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.bands import GSD_M

#: A CRS for arrays without georeferencing: only the pixel size matters to the masks (a UTM
#: zone at Sentinel-2's 10 m).
_ARRAY_CRS = "EPSG:32632"


def predict_array(
    s2: np.ndarray,
    s1: np.ndarray | None = None,
    checkpoint: str | None = None,
    *,
    crs: Any = None,
    transform: Any = None,
    nodata: float | None = None,
    mask: np.ndarray | None = None,
    return_summary: bool = False,
    **kwargs: Any,
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """The cloud-free version of an S2 image held in memory, as ``cloudfree predict`` makes it.

    Args:
        s2: (13, H, W) L1C or (12, H, W) L2A digital numbers (reflectance x 10000), any integer
            or float dtype (the output keeps it).
        s1: (2, H, W) VV, VH in dB on the same grid, for a SAR model; None without.
        checkpoint: as ``predict --checkpoint`` (a weights name, file, run folder or a
            baseline); None: the bundled model.
        crs, transform: the image's georeferencing (anything rasterio takes: ``"EPSG:32633"``,
            an ``Affine``); None: a 10 m grid (the masks need the pixel size only).
        nodata: the value of pixels without data (None: 0 in every band, Sentinel-2's).
        mask: (H, W) cloud/shadow mask (0 clear, nonzero cloud or shadow) to use instead of the
            computed one.
        return_summary: also return the summary ``predict_scene`` returns.
        **kwargs: any other option of :func:`~cloudfree.predict.scene.predict_scene`
            (``keep_clear``, ``checkpoint_nosar``, ``outside_sar``, ``tile``, ``device``...).

    Returns:
        The prediction, the dtype and shape of ``s2``; with ``return_summary``, ``(prediction,
        summary)``.

    Raises:
        ValueError: arrays of the wrong shape; what ``predict_scene`` raises for their values.
    """
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from cloudfree.io import RasterMeta, read_raster, write_raster
    from cloudfree.predict.scene import predict_scene

    a = np.asarray(s2)
    if a.ndim != 3 or a.shape[0] not in (12, 13):
        raise ValueError(f"s2 must be (13, H, W) or (12, H, W) digital numbers, got {a.shape}")
    h, w = a.shape[1:]
    if s1 is not None and np.shape(s1) != (2, h, w):
        raise ValueError(f"s1 must be (2, {h}, {w}) dB on the S2 grid, got {np.shape(s1)}")
    if mask is not None and np.shape(mask) != (h, w):
        raise ValueError(f"mask must be ({h}, {w}), got {np.shape(mask)}")
    meta = RasterMeta(
        width=w, height=h, count=a.shape[0], dtype=str(a.dtype),
        crs=CRS.from_user_input(crs if crs is not None else _ARRAY_CRS),
        transform=transform if transform is not None else from_origin(0.0, 0.0, GSD_M, GSD_M),
        nodata=nodata,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cloudfree-array-") as tmp:
        folder = Path(tmp)
        s2_path = write_raster(folder / "s2.tif", a, meta)
        s1_path = None
        if s1 is not None:
            s1_path = write_raster(folder / "s1.tif", np.asarray(s1, dtype=np.float32),
                                   replace(meta, nodata=None))  # fmt: skip
        mask_path = None
        if mask is not None:
            mask_path = write_raster(folder / "mask.tif", np.asarray(mask, dtype=np.uint8),
                                     replace(meta, nodata=None))  # fmt: skip
        kwargs.setdefault("progress", False)
        summary = predict_scene(s2_path, folder / "out.tif", checkpoint, s1_path,
                                mask=mask_path, **kwargs)  # fmt: skip
        out, _ = read_raster(folder / "out.tif")
    summary = {k: v for k, v in summary.items() if k != "out"}
    return (out, summary) if return_summary else out


def predict_dataarray(s2: Any, s1: Any = None, checkpoint: str | None = None, **kwargs: Any) -> Any:
    """:func:`predict_array` for an ``xarray.DataArray`` (dims ``band, y, x``; regular ``x`` and
    ``y`` coordinates): the result has the input's dims, coordinates and attributes.

    The CRS comes from ``s2.rio.crs`` (rioxarray), a ``spatial_ref`` coordinate's ``crs_wkt``
    (the CF convention odc-stac and rioxarray write), or ``s2.attrs["crs"]``; the transform from
    the ``x``/``y`` coordinates (pixel centres).

    Raises:
        ValueError: other dims, irregular coordinates, or no CRS.
    """
    from affine import Affine

    if tuple(s2.dims) != ("band", "y", "x"):
        raise ValueError(f"s2 must have dims ('band', 'y', 'x'), got {tuple(s2.dims)}")
    x, y = np.asarray(s2["x"], dtype=np.float64), np.asarray(s2["y"], dtype=np.float64)
    if x.size < 2 or y.size < 2:
        raise ValueError("s2 needs at least 2 x and 2 y coordinates (the pixel size)")
    dx, dy = np.diff(x), np.diff(y)
    if not (np.allclose(dx, dx[0]) and np.allclose(dy, dy[0])):
        raise ValueError("s2's x and y coordinates must be evenly spaced (a regular grid)")
    transform = Affine(dx[0], 0.0, x[0] - dx[0] / 2, 0.0, dy[0], y[0] - dy[0] / 2)
    crs = _crs_of(s2)
    out = predict_array(np.asarray(s2), None if s1 is None else np.asarray(s1), checkpoint,
                        crs=crs, transform=transform, **kwargs)  # fmt: skip
    return s2.copy(data=out)


def _crs_of(da: Any) -> Any:
    try:  # rioxarray's accessor, where installed; it raises on some arrays without a CRS
        crs = da.rio.crs
    except Exception:  # noqa: BLE001 - KeyError, AttributeError, rioxarray's own errors
        crs = None
    if crs is not None:
        return crs
    if "spatial_ref" in da.coords and "crs_wkt" in da.coords["spatial_ref"].attrs:
        return da.coords["spatial_ref"].attrs["crs_wkt"]
    if da.attrs.get("crs"):
        return da.attrs["crs"]
    raise ValueError(
        "s2 has no CRS: set s2.attrs['crs'] (e.g. 'EPSG:32633'), or a spatial_ref coordinate "
        "with crs_wkt (rioxarray, odc-stac)"
    )
