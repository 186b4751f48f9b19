"""The STAC catalogues ``cloudfree fetch`` knows by name, and what each needs.

Facts (``docs/stack.md``, the catalogues' own documentation; read, not run here):

- **Earth Search** (Element 84, ``earth-search.aws.element84.com/v1``): ``sentinel-2-l1c``,
  13 bands with B10, the original JP2 in a requester-pays bucket (credentials from the usual
  AWS environment, ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, and
  ``AWS_REQUEST_PAYER=requester``); ``sentinel-2-c1-l2a``, public COGs, 12 bands, raw DN.
  Asset keys are common names (coastal, blue, ..., cirrus, swir16, swir22).
- **Planetary Computer** (``planetarycomputer.microsoft.com/api/stac/v1``):
  ``sentinel-2-l2a`` (B01 ... B12, B8A; no B10), ``sentinel-1-grd`` (the GRD products' COG
  measurements and XML: made into sigma0 by ``cloudfree s1``, the default of ``fetch --s1``),
  ``sentinel-1-rtc`` (terrain-flattened gamma0, linear power, needs ``PC_SDK_SUBSCRIPTION_KEY``);
  assets are signed with the ``planetary-computer`` package (a SAS token per item).
- **Copernicus Data Space Ecosystem** (``stac.dataspace.copernicus.eu/v1``):
  ``sentinel-2-l1c``, ``sentinel-2-l2a``, the SAFE's JP2 on its S3 (a free account: its keys in
  ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, endpoint ``eodata.dataspace.copernicus.eu``).

Any other STAC API is given by URL; its assets are read as they are (public HTTP(S)).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cloudfree.errors import CloudfreeError


@dataclass(frozen=True)
class Catalog:
    """A STAC API and what reading from it takes.

    Attributes:
        name: preset name (or the URL of a catalogue given by URL).
        url: the STAC API root.
        s2: the default Sentinel-2 collection (``--collection`` picks another).
        s1: its Sentinel-1 collection for ``--s1`` (None: it has none cloudfree reads).
        sign: ``"planetary-computer"`` (SAS-sign each item) or None.
        credentials: ``{collection: (environment variables it needs, what they are)}``.
        gdal_env: GDAL settings for reading its assets (from the environment where named).
    """

    name: str
    url: str
    s2: str
    s1: str | None = None
    sign: str | None = None
    credentials: Mapping[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    gdal_env: Mapping[str, str] = field(default_factory=dict)


_AWS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

#: The catalogues by name.
CATALOGS: Final[dict[str, Catalog]] = {
    c.name: c
    for c in (
        Catalog(
            name="earth-search",
            url="https://earth-search.aws.element84.com/v1",
            s2="sentinel-2-c1-l2a",
            credentials={
                "sentinel-2-l1c": (
                    _AWS,
                    "AWS credentials for the requester-pays bucket "
                    "sentinel-s2-l1c (you pay its transfer)",
                ),  # fmt: skip
            },
            gdal_env={"AWS_REQUEST_PAYER": "requester"},
        ),
        Catalog(
            name="planetary-computer",
            url="https://planetarycomputer.microsoft.com/api/stac/v1",
            s2="sentinel-2-l2a",
            s1="sentinel-1-grd",
            sign="planetary-computer",
            credentials={
                "sentinel-1-rtc": (
                    ("PC_SDK_SUBSCRIPTION_KEY",),
                    "a Planetary Computer subscription key (planetarycomputer.microsoft.com)",
                ),  # fmt: skip
            },
        ),
        Catalog(
            name="cdse",
            url="https://stac.dataspace.copernicus.eu/v1",
            s2="sentinel-2-l1c",
            credentials={
                c: (_AWS, "the S3 keys of a (free) Copernicus Data Space Ecosystem account")
                for c in ("sentinel-2-l1c", "sentinel-2-l2a")
            },
            gdal_env={
                "AWS_S3_ENDPOINT": "eodata.dataspace.copernicus.eu",
                "AWS_VIRTUAL_HOSTING": "FALSE",
                "AWS_HTTPS": "YES",
            },  # fmt: skip
        ),
    )
}


def get_catalog(name_or_url: str) -> Catalog:
    """A preset by name, or any STAC API by URL (``http(s)://...``; its default collection is
    Sentinel-2 L2A's usual name, ``sentinel-2-l2a``).

    Raises:
        CloudfreeError: neither a preset nor a URL (the presets listed).
    """
    if name_or_url in CATALOGS:
        return CATALOGS[name_or_url]
    if name_or_url.startswith(("http://", "https://")):
        return Catalog(name=name_or_url, url=name_or_url.rstrip("/"), s2="sentinel-2-l2a")
    raise CloudfreeError(
        f"unknown catalogue {name_or_url!r}: give one of {', '.join(CATALOGS)} or the URL of a "
        "STAC API (https://...)"
    )


def check_credentials(
    catalog: Catalog, collection: str, env: Mapping[str, str] | None = None
) -> None:
    """Raise a :class:`CloudfreeError` naming the variables a collection needs and lacks."""
    env = os.environ if env is None else env
    need = catalog.credentials.get(collection)
    if need is None:
        return
    names, what = need
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise CloudfreeError(
            f"{catalog.name} {collection} needs {what}: set {' and '.join(missing)} in the "
            "environment"
        )


def gdal_env(catalog: Catalog) -> dict[str, Any]:
    """GDAL settings for the catalogue's assets (the environment's own values win)."""
    return {k: os.environ.get(k, v) for k, v in catalog.gdal_env.items()}


def signed(items: Sequence[Any], catalog: Catalog) -> list[Any]:
    """Copies of ``items`` whose asset hrefs carry a fresh token where the catalogue wants
    one (Planetary Computer: ``planetary_computer.sign``), the items themselves otherwise."""
    if catalog.sign != "planetary-computer":
        return list(items)
    import planetary_computer

    return [planetary_computer.sign(item.clone()) for item in items]
