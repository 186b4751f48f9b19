"""Which Sentinel-2 band each band of a file is: --bands, band descriptions, band count."""

from __future__ import annotations

import pytest

from cloudfree.bands import S2_BANDS, S2_L2A_BANDS
from cloudfree.errors import DataError
from cloudfree.masks.layout import band_layout, band_name, parse_bands, product_level


@pytest.mark.parametrize(
    ("text", "name"),
    [("B2", "B2"), ("B02", "B2"), ("b2", "B2"), ("B2 (490 nm)", "B2"), ("blue", "B2"),
     ("Blue", "B2"), ("B8A", "B8A"), ("b8a", "B8A"), ("nir08", "B8A"), ("B08", "B8"),
     ("nir", "B8"), ("swir16", "B11"), ("B12", "B12"), ("cirrus", "B10"), ("B10", "B10"),
     ("coastal", "B1"), ("B01", "B1"), ("cloud", None), ("B13", None), ("B0", None),
     ("", None), (None, None), ("VV", None)],
)  # fmt: skip
def test_band_names(text: str | None, name: str | None) -> None:
    assert band_name(text) == name


def test_given_names_come_first_and_must_match_the_count() -> None:
    layout = band_layout(4, ("x", "y", "z", "w"), "nir,red,green,blue")
    assert layout.names == ("B8", "B4", "B3", "B2") and layout.source == "--bands"
    assert layout.indexes(("B2", "B8")) == [4, 1]
    with pytest.raises(DataError, match=r"f\.tif: --bands names 3 bands .* the file has 4"):
        band_layout(4, (), "B2,B3,B4", where="f.tif")
    with pytest.raises(ValueError, match="'B13' is not a Sentinel-2 band"):
        parse_bands("B2,B13")
    with pytest.raises(ValueError, match="twice"):
        parse_bands("B2,blue")


def test_descriptions_then_the_count() -> None:
    six = band_layout(6, ("B02", "B03", "B04", "B08", "B11", "B12"))
    assert six.names == ("B2", "B3", "B4", "B8", "B11", "B12")
    assert six.source == "band descriptions"
    # Descriptions that do not name every band, or name one twice, are not used.
    assert band_layout(13, ("B1",) + (None,) * 12).names == S2_BANDS
    assert band_layout(12, ("x",) * 12).names == S2_L2A_BANDS
    with pytest.raises(
        DataError, match=r"has 6 bands .* cannot be told apart.*--bands B2,B3,B4,B8"
    ):
        band_layout(6, ("a", "b", "c", "d", "e", "f"), where="six.tif")


def test_a_masker_names_the_bands_a_layout_lacks() -> None:
    from cloudfree.masks.backends import make_backend

    layout = band_layout(3, ("B2", "B3", "B4"))
    make_backend("dsen2cr", "l1c", 10.0, band_layout(13, ()).names, "f.tif")  # all there
    with pytest.raises(DataError, match=r"f\.tif: the ukis mask needs .*holds B2, B3, B4: "
                       r"missing B8"):  # fmt: skip
        make_backend("ukis", "l1c", 10.0, layout.names, "f.tif")


def test_product_level() -> None:
    assert product_level(band_layout(13, ())) == "l1c"
    assert product_level(band_layout(12, ())) == "l2a"
    six = band_layout(6, ("B2", "B3", "B4", "B8", "B11", "B12"))
    assert product_level(six, "scene.tif") == "l1c"
    assert product_level(six, "S2A_MSIL2A_20170613_subset.tif") == "l2a"
    assert product_level(six, "x.tif", {"PROCESSING_LEVEL": "Level-2A"}) == "l1c"  # no "L2A"
    assert product_level(six, "x.tif", {"product": "S2B_MSIL2A_2024"}) == "l2a"
    reordered = band_layout(12, tuple(reversed(S2_L2A_BANDS)))
    assert reordered.source == "band descriptions" and product_level(reordered) == "l2a"
