"""The computed mask of a scene: the same pixels whatever the windows, blocks at the edges,
growth with its context, flat memory; and the choice of masker."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pytest

from cloudfree.errors import DataError
from cloudfree.masks import backends as backends_module
from cloudfree.masks.backends import make_backend, resolve_backend
from cloudfree.masks.computed import ComputedMask, _extend
from cloudfree.masks.dilate import dilate_classes
from cloudfree.windows import pad_reflect


class BoxMean:
    """A masker with a known whole-image answer: cloud where the 5 x 5 mean of B2 > 1000,
    shadow where it is < 300 (a 2-pixel halo makes every block exact). It records the
    regions it was given."""

    name = "box"
    bands = ("B2",)
    halo = 2

    def __init__(self, min_context: int = 0, align: int = 1) -> None:
        self.min_context, self.align = min_context, align
        self.regions: list[tuple[int, int]] = []

    def fit(self, read_bands, height, width) -> None:  # noqa: ANN001
        pass

    def mask(self, dn: Mapping[str, np.ndarray], nodata: float | None) -> np.ndarray:
        from scipy.ndimage import uniform_filter

        b2 = np.asarray(dn["B2"], dtype=np.float64)
        self.regions.append(b2.shape)
        m = uniform_filter(b2, 5, mode="reflect")
        return np.where(m > 1000, 1, np.where(m < 300, 2, 0)).astype(np.uint8)

    def describe(self) -> str:
        return "box"


def _scene(h: int = 70, w: int = 90) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(np.random.default_rng(0).standard_normal((h, w)), 3)
    return (700 + 450 * field / field.std()).astype(np.float32)


def _computed(b2: np.ndarray, block: int, dilate: float = 0.0, **kw) -> ComputedMask:  # noqa: ANN003
    def read(names, win):  # noqa: ANN001, ANN202
        r, c, h, w = win
        return b2[None, r : r + h, c : c + w]

    return ComputedMask(BoxMean(**kw), read, *b2.shape, None, dilate, block)


def test_every_block_size_and_window_gives_the_whole_image_mask() -> None:
    b2 = _scene()
    whole = BoxMean().mask({"B2": b2}, None)
    assert 0.05 < (whole == 1).mean() < 0.9 and (whole == 2).any()
    for block in (7, 16, 33, 1536):
        cm = _computed(b2, block)
        for win in ((0, 0, 70, 90), (5, 13, 31, 17), (60, 80, 10, 10), (0, 0, 1, 1)):
            r, c, h, w = win
            np.testing.assert_array_equal(cm.read(win), whole[r : r + h, c : c + w])


def test_regions_outside_the_scene_are_reflected_like_a_mask_file() -> None:
    b2 = _scene()
    whole = BoxMean().mask({"B2": b2}, None)
    got = _computed(b2, 32).read((-5, 85, 20, 12))  # 5 rows above, 7 columns right of the scene
    np.testing.assert_array_equal(got, pad_reflect(whole[0:15, 85:90], 5, 0, 0, 7))
    with pytest.raises(ValueError, match="does not intersect"):
        _computed(b2, 32).read((100, 0, 5, 5))


def test_growth_does_not_depend_on_the_windows() -> None:
    b2 = _scene()
    whole = BoxMean().mask({"B2": b2}, None)
    grown = dilate_classes(whole, 4.0)
    # Blocks (16 px) that growth would leave under 1 % clear keep their mask as it is.
    for r in range(0, 70, 16):
        for c in range(0, 90, 16):
            block = whole[r : r + 16, c : c + 16]
            if (dilate_classes(block, 4.0) == 0).mean() < 0.01:
                grown[r : r + 16, c : c + 16] = block
    assert (grown != dilate_classes(whole, 4.0)).any()  # the rule applies somewhere here
    cm = _computed(b2, 16, dilate=4.0)
    tiles = np.zeros_like(grown)
    for r in range(0, 70, 9):
        for c in range(0, 90, 11):
            tiles[r : r + 9, c : c + 11] = cm.read((r, c, min(9, 70 - r), min(11, 90 - c)))
    np.testing.assert_array_equal(tiles, grown)


def test_growth_never_takes_the_last_clear_pixels_of_a_block() -> None:
    """A nearly covered block keeps its few clear pixels (an inpainting's only source); a
    block with clear ground to spare is grown."""
    b2 = np.full((40, 80), 1500.0, np.float32)  # cloud everywhere (the 5 x 5 mean > 1000)
    b2[18:23, 18:23] = 700.0  # a clear gap in the left block: its centre pixel stays clear
    b2[:, 40:] = 700.0  # the right block is clear ground...
    b2[5:10, 55:60] = 5000.0  # ...with one cloud
    cm = _computed(b2, 40, dilate=3.0)
    whole = BoxMean().mask({"B2": b2}, None)
    got = cm.read((0, 0, 40, 80))
    np.testing.assert_array_equal(got[:, :40], whole[:, :40])  # not grown: the gap survives
    assert (got[:, :40] == 0).sum() == (whole[:, :40] == 0).sum() > 0
    assert (got[:, 40:] == 1).sum() > (whole[:, 40:] == 1).sum()  # grown


def test_blocks_at_the_edge_take_their_context_inwards() -> None:
    assert _extend(0, 300, 768, 10980, 3) == (0, 768)
    assert _extend(10560, 420, 768, 10980, 3) == (10212, 768)  # the last block, inwards
    assert _extend(1344, 1920, 768, 10980, 3) == (1344, 1920)  # enough already
    assert _extend(100, 200, 768, 400, 3) == (0, 400)  # the scene is smaller: all of it
    assert _extend(7, 10, 0, 100, 3) == (6, 11)  # the corner on the cells' grid
    b2 = _scene()
    cm = _computed(b2, 16, min_context=40, align=3)
    cm.read((0, 0, 70, 90))
    assert min(min(shape) for shape in cm.backend.regions) >= 40


def test_the_cache_holds_about_one_row_of_blocks() -> None:
    cm = _computed(_scene(300, 400), 16)
    for r in range(0, 300, 50):  # row by row, as every command reads
        cm.read((r, 0, 50, 400))
    assert len(cm._cache) <= 2 * 25 + 2
    assert len(cm.backend.regions) == 19 * 25  # each block computed once


def test_auto_is_ukis_where_installed_else_dsen2cr_with_a_note(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from cloudfree.masks import ukis

    monkeypatch.setattr(ukis, "ukis_available", lambda: True)
    assert resolve_backend("auto") == "ukis" and resolve_backend("dsen2cr") == "dsen2cr"
    monkeypatch.setattr(ukis, "ukis_available", lambda: False)
    backends_module._note_fallback.cache_clear()
    with caplog.at_level(logging.WARNING):
        assert resolve_backend("auto") == "dsen2cr"
        assert resolve_backend("auto") == "dsen2cr"  # a second scene: no second note
    notes = [r.message for r in caplog.records]
    assert len(notes) == 1 and "pip install" in notes[0] and "ukis-csmask" in notes[0]
    with pytest.raises(ValueError, match="unknown mask backend 'fmask'"):
        resolve_backend("fmask")


def test_maskers_that_cannot_run_say_why() -> None:
    with pytest.raises(DataError, match="L2A.*s2cloudless was trained on L1C"):
        make_backend("s2cloudless", "l2a", 10.0, None, "x.tif")
    with pytest.raises(DataError, match=r"the dsen2cr mask needs .*missing B1, B10.*B10 is only"):
        make_backend("dsen2cr", "l1c", 10.0, ("B2", "B3", "B4", "B8", "B11", "B12"), "x.tif")
    assert backends_module.DEFAULT_DILATE_M == {"ukis": 60.0, "dsen2cr": 0.0, "s2cloudless": 0.0}
