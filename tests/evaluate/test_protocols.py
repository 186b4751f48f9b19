"""Evaluation protocols: the published conventions each one fixes (field.md, spec section 6)."""

from __future__ import annotations

import pytest

from cloudfree.evaluate.protocols import PROTOCOLS, EvalProtocol, get_protocol


def test_the_three_protocols_and_their_conventions() -> None:
    assert set(PROTOCOLS) == {"paper", "leaderboard", "glf-cr"}
    paper, board, glf = (get_protocol(n) for n in ("paper", "leaderboard", "glf-cr"))
    # DSen2-CR Table 1: whole patch, Keras output not clipped, one row per image averaged.
    assert (paper.crop, paper.clip_prediction, paper.mean) == (None, False, "per_image")
    assert "Table 1" in paper.comparable_with
    # UnCRtainTS img_metrics: [0, 1] reflectance, full patch, per image.
    assert (board.crop, board.clip_prediction, board.mean) == (None, True, "per_image")
    assert "leaderboard" in board.comparable_with.lower()
    # GLF-CR test_CR.py: centre 128x128 crop of the 256x256 patch.
    assert (glf.crop, glf.clip_prediction, glf.mean) == (128, True, "per_image")
    assert "PSNR" in glf.comparable_with and "SSIM" in glf.comparable_with
    for name, p in PROTOCOLS.items():
        assert p.name == name and p.description


def test_unknown_protocol_names_the_valid_ones() -> None:
    with pytest.raises(KeyError, match="glf-cr.*leaderboard.*paper"):
        get_protocol("uncrtaints")


def test_bad_protocol_fields_are_rejected() -> None:
    with pytest.raises(ValueError, match="crop"):
        EvalProtocol("x", 0, False, "per_image", "d", "c")
    with pytest.raises(ValueError, match="mean"):
        EvalProtocol("x", None, False, "median", "d", "c")
