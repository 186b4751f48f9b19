"""What a Sentinel-2 STAC item holds, read the same way whatever the catalogue.

- **Bands**: each SEN12MS-CR band (``cloudfree.bands.S2_BANDS``) is found among the item's
  assets by its band name in ``eo:bands`` / ``bands`` (``B01`` or ``B1``), else by its common
  name there (``coastal``, ``blue``, ..., ``cirrus``, ``swir16``, ``swir22``), else by the asset
  key itself in either convention (Earth Search: common names, ``rededge1..3``, ``nir08``,
  ``nir09``; Planetary Computer: ``B01`` ... ``B8A``), never by one catalogue's key list alone.
  L2A items have no B10: the fetched stack is then 12 bands (``S2_L2A_BANDS``).
  Where several assets hold one band (the Copernicus Data Space Ecosystem's L2A lists
  ``B02_10m``, ``B02_20m``, ``B02_60m``), the finest is taken (asset ``gsd``, else
  ``raster:bands`` ``spatial_resolution``, else ``proj:transform``, else a ``_<n>m`` key suffix).
- **Radiometric offset**: from processing baseline 04.00 on, DN = reflectance x 10000 + 1000;
  the offset is taken per item from its processing baseline (``s2:processing_baseline``; where a
  catalogue has none, the processing extension's ``processing:version`` (CDSE) or the ``_Nxxyy_``
  of the product name), never from the date, nor from a catalogue's own "offset applied" flag
  (wrong for some items), nor from ``raster:bands`` ``offset`` (recorded, and a disagreement
  warned about), and removed, clipped at 0.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from cloudfree.bands import S2_BANDS
from cloudfree.errors import DataError

#: DN added to every band from processing baseline 04.00 (ESA, January 2022).
BASELINE_OFFSET_DN: Final[int] = 1000
#: The first processing baseline with the offset.
OFFSET_BASELINE: Final[tuple[int, int]] = (4, 0)
#: Common names of the Sentinel-2 bands (the STAC eo extension's), and the other names asset
#: keys use for the same band (Earth Search).
COMMON_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "B1": ("coastal",), "B2": ("blue",), "B3": ("green",), "B4": ("red",),
    "B5": ("rededge1", "rededge"), "B6": ("rededge2",), "B7": ("rededge3",), "B8": ("nir",),
    "B8A": ("nir08", "nir narrow"), "B9": ("nir09", "water vapour"), "B10": ("cirrus",),
    "B11": ("swir16",), "B12": ("swir22",),
}  # fmt: skip


def _names(band: str) -> tuple[str, ...]:
    """``"B1"`` -> ``("B1", "B01")``; ``"B8A"`` -> ``("B8A", "B08A")``."""
    digits = band[1:]
    return (band, f"B{digits.zfill(2)}" if digits[0].isdigit() and len(digits) == 1 else band)


def _asset_bands(asset: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(asset.get("eo:bands") or asset.get("bands") or [])


def asset_resolution(key: str, asset: Mapping[str, Any]) -> float:
    """The pixel size of an asset, m (``inf`` when it does not say): ``gsd``, else
    ``raster:bands``' ``spatial_resolution``, else ``proj:transform``, else a ``_20m`` key
    suffix."""
    if asset.get("gsd"):
        return float(asset["gsd"])
    raster = asset.get("raster:bands") or []
    if len(raster) == 1 and raster[0].get("spatial_resolution"):
        return float(raster[0]["spatial_resolution"])
    transform = asset.get("proj:transform")
    if transform:
        return abs(float(transform[0]))
    m = re.search(r"_(\d+)m$", key)
    return float(m.group(1)) if m else math.inf


def band_assets(item: Mapping[str, Any]) -> dict[str, str]:
    """``{SEN12MS-CR band: asset key}`` of an item (a STAC item dict), for the bands it has.

    An asset describing one band matches by that band's name, then by its common name
    (``eo:common_name`` or ``common_name``); else the asset key itself (``B01``, ``coastal``,
    ``rededge1`` ...). Assets of several bands (true-colour previews) are never taken. Of
    several assets of one band, the finest (:func:`asset_resolution`; the first of equals).
    """
    assets: Mapping[str, Mapping[str, Any]] = item.get("assets", {})
    named: dict[str, list[str]] = {}
    by_common: dict[str, list[str]] = {}
    for asset_key, asset in assets.items():
        bands = _asset_bands(asset)
        if len(bands) != 1:
            continue
        b = bands[0]
        if b.get("name"):
            named.setdefault(str(b["name"]).upper(), []).append(asset_key)
        common = b.get("eo:common_name") or b.get("common_name")
        if common:
            by_common.setdefault(str(common).lower(), []).append(asset_key)
    by_name = {n: min(keys, key=lambda k: asset_resolution(k, assets[k]))
               for n, keys in named.items()}  # fmt: skip
    lower = {k.lower(): k for k in assets}
    out: dict[str, str] = {}
    for band in S2_BANDS:
        key: str | None = next(
            (by_name[n.upper()] for n in _names(band) if n.upper() in by_name), None
        )
        if key is None:
            for common in COMMON_NAMES[band]:
                keys = by_common.get(common, [])
                if len(keys) == 1:  # "rededge" names three assets: ambiguous, not used
                    key = keys[0]
                    break
        if key is None:
            key = next((lower[n.lower()] for n in (*_names(band), *COMMON_NAMES[band])
                        if n.lower() in lower), None)  # fmt: skip
        if key is not None:
            out[band] = key
    return out


def processing_baseline(item: Mapping[str, Any]) -> tuple[int, int] | None:
    """The item's processing baseline as ``(major, minor)`` (``"04.00"`` -> ``(4, 0)``), or
    None: ``s2:processing_baseline``, else ``processing:version`` where it reads as a baseline
    (``"05.09"``: CDSE), else the ``_N0509_`` of ``s2:product_uri`` or of the item's id."""
    props = item.get("properties", {})
    text = props.get("s2:processing_baseline")
    if text is None:
        version = str(props.get("processing:version", ""))
        if re.fullmatch(r"\d{1,2}\.\d{1,2}", version):
            text = version
    if text is None:
        for name in (props.get("s2:product_uri"), item.get("id")):
            m = re.search(r"_N(\d{2})(\d{2})_", str(name or ""))
            if m:
                return int(m.group(1)), int(m.group(2))
        return None
    try:
        major, _, minor = str(text).partition(".")
        return int(major), int(minor or 0)
    except ValueError:
        raise DataError(None, f"item {item.get('id')} has s2:processing_baseline {text!r}",
                        "a baseline like '04.00'") from None  # fmt: skip


def offset_dn(item: Mapping[str, Any]) -> int:
    """The DN offset to remove from the item's bands: 1000 from baseline 04.00, else 0.

    Raises:
        DataError: the item says no processing baseline (the offset cannot be decided; the
            date is not used to guess it).
    """
    baseline = processing_baseline(item)
    if baseline is None:
        raise DataError(
            None, f"item {item.get('id')} has no processing baseline (s2:processing_baseline, "
            "processing:version or _Nxxyy_ in its product name): whether its DN carry the "
            "+1000 offset of baseline 04.00 cannot be told",
            "items with a processing baseline (Earth Search, Planetary Computer and CDSE say it)",
        )  # fmt: skip
    return BASELINE_OFFSET_DN if baseline >= OFFSET_BASELINE else 0


def raster_offset_dn(item: Mapping[str, Any], key: str) -> int | None:
    """The DN offset an asset's ``raster:bands`` declares (Earth Search Collection 1: scale
    0.0001, offset -0.1, i.e. 1000 DN), or None where it declares no scale and offset."""
    raster = item.get("assets", {}).get(key, {}).get("raster:bands") or []
    if len(raster) != 1 or not raster[0].get("scale") or raster[0].get("offset") is None:
        return None
    return round(-float(raster[0]["offset"]) / float(raster[0]["scale"]))


def acquisition_day(item: Mapping[str, Any]) -> dt.date:
    """The UTC day of the item's acquisition (``datetime``, else ``start_datetime``)."""
    props = item.get("properties", {})
    text = props.get("datetime") or props.get("start_datetime")
    if not text:
        raise DataError(None, f"item {item.get('id')} has no datetime", "a STAC item")
    return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).date()


def cloud_cover(item: Mapping[str, Any]) -> float | None:
    """``eo:cloud_cover`` in percent, or None."""
    value = item.get("properties", {}).get("eo:cloud_cover")
    return None if value is None else float(value)


def summary(item: Mapping[str, Any]) -> dict[str, Any]:
    """What ``--dry-run`` lists and ``series.json`` records of an item."""
    baseline = processing_baseline(item)
    keys = band_assets(item)
    return {
        "id": item.get("id"),
        "collection": item.get("collection"),
        "date": str(acquisition_day(item)),
        "cloud_cover": cloud_cover(item),
        "processing_baseline": None if baseline is None else f"{baseline[0]:02d}.{baseline[1]:02d}",
        "raster_bands_offset_dn": raster_offset_dn(item, keys["B2"]) if "B2" in keys else None,
        "assets": {b: item["assets"][k].get("href") for b, k in keys.items()},
    }
