"""Sentinel-2 STAC items read the same way whatever the catalogue: bands by name, common name or
key, the baseline offset per item."""

from __future__ import annotations

import pytest

from cloudfree.bands import S2_BANDS, S2_L2A_BANDS
from cloudfree.data.stac.items import (
    acquisition_day,
    band_assets,
    offset_dn,
    processing_baseline,
    raster_offset_dn,
)
from cloudfree.errors import DataError


def _item(assets: dict, baseline: str | None = "05.10") -> dict:
    props = {"datetime": "2024-06-01T10:20:31.024Z"}
    if baseline is not None:
        props["s2:processing_baseline"] = baseline
    return {"id": "x", "properties": props, "assets": assets}


def test_bands_by_stac_1_1_band_names_and_common_names() -> None:
    # STAC 1.1 "bands" with eo:common_name, keys that say nothing (as some catalogues have)
    names = {b: f"B{b[1:].zfill(2)}" if b != "B8A" else "B8A" for b in S2_BANDS}
    assets = {f"asset{i}": {"bands": [{"name": names[b], "eo:common_name": "x"}]}
              for i, b in enumerate(S2_BANDS)}  # fmt: skip
    assets["visual"] = {"bands": [{"name": "B04"}, {"name": "B03"}, {"name": "B02"}]}
    got = band_assets(_item(assets))
    assert got == {b: f"asset{i}" for i, b in enumerate(S2_BANDS)}


def test_l2a_without_b10_and_ambiguous_common_names() -> None:
    # Earth Search L2A: keys are common names, the three red edges share "rededge"
    keys = {"B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "rededge1",
            "B6": "rededge2", "B7": "rededge3", "B8": "nir", "B8A": "nir08", "B9": "nir09",
            "B11": "swir16", "B12": "swir22"}  # fmt: skip
    common = {"B5": "rededge", "B6": "rededge", "B7": "rededge"}
    assets = {k: {"eo:bands": [{"name": k, "common_name": common.get(b, k)}]}
              for b, k in keys.items()}  # fmt: skip
    got = band_assets(_item(assets))
    assert list(got) == list(S2_L2A_BANDS) and got == keys


def test_the_offset_is_the_items_baseline_not_its_date() -> None:
    assert offset_dn(_item({}, "04.00")) == 1000 and offset_dn(_item({}, "05.11")) == 1000
    assert offset_dn(_item({}, "03.01")) == 0 and processing_baseline(_item({}, "02.09")) == (2, 9)
    with pytest.raises(DataError, match="no processing baseline"):
        offset_dn(_item({}, None))
    assert str(acquisition_day(_item({}))) == "2024-06-01"


def test_the_baseline_where_a_catalogue_puts_it() -> None:
    # CDSE: the processing extension; else the product name's _Nxxyy_; never a software version
    item = _item({}, None)
    item["properties"]["processing:version"] = "05.09"
    assert processing_baseline(item) == (5, 9) and offset_dn(item) == 1000
    item["properties"]["processing:version"] = "2.3.1"  # a software version, not a baseline
    item["id"] = "S2A_MSIL1C_20210626T100031_N0301_R122_T33TUL_20210626T120000"
    assert processing_baseline(item) == (3, 1) and offset_dn(item) == 0


def test_the_finest_of_several_assets_of_one_band() -> None:
    # CDSE L2A: B02 at 10, 20 and 60 m (the coarsest listed first); by gsd, else the key
    assets = {f"B02_{r}m": {"bands": [{"name": "B02"}], "gsd": r} for r in (60, 20, 10)}
    assets |= {f"B05_{r}m": {"bands": [{"name": "B05"}]} for r in (60, 20)}
    got = band_assets(_item(assets))
    assert got == {"B2": "B02_10m", "B5": "B05_20m"}


def test_the_declared_raster_offset() -> None:
    item = _item({"red": {"raster:bands": [{"scale": 0.0001, "offset": -0.1}]},
                  "blue": {"raster:bands": [{"nodata": 0}]}})  # fmt: skip
    assert raster_offset_dn(item, "red") == 1000 and raster_offset_dn(item, "blue") is None
