"""Evaluation protocols: the published conventions each one fixes (field.md, spec section 6)."""

from __future__ import annotations

import pytest

from cloudfree.evaluate.protocols import PROTOCOLS, EvalProtocol, get_protocol


def test_the_three_protocols_and_their_conventions() -> None:
    assert set(PROTOCOLS) == {"paper", "leaderboard", "glf-cr"}
    paper, board, glf = (get_protocol(n) for n in ("paper", "leaderboard", "glf-cr"))
    # DSen2-CR Table 1: whole patch, Keras output not clipped, one row per image averaged,
    # PSNR from the mean RMSE (the bound three of its rows sit on), tf.image.ssim.
    assert (paper.crop, paper.clip_prediction, paper.mean) == (None, False, "per_image")
    assert (paper.psnr_key, paper.ssim_padding) == ("psnr_mean_rmse", "valid")
    assert "Table 1" in paper.comparable_with
    # UnCRtainTS img_metrics: full patch, prediction not clipped, per image, pytorch-ssim.
    assert (board.crop, board.clip_prediction, board.mean) == (None, False, "per_image")
    assert (board.psnr_key, board.ssim_padding) == ("psnr", "zero")
    assert "leaderboard" in board.comparable_with.lower()
    # GLF-CR test_CR.py: centre 128x128 crop of the 256x256 patch.
    assert (glf.crop, glf.clip_prediction, glf.mean) == (128, True, "per_image")
    assert "PSNR" in glf.comparable_with and "SSIM" in glf.comparable_with
    for name, p in PROTOCOLS.items():
        assert p.name == name and p.description
        how = p.columns()  # every Table 1 column says how it was computed
        assert set(how) >= {"mae", "rmse", "psnr", "sam", "ssim"}
    assert "mean of the per-patch RMSEs" in paper.columns()["psnr"]
    assert "zero padding" in board.columns()["ssim"] and "not clipped" in board.columns()["mae"]
    assert "'valid'" in paper.columns()["ssim"] and "clipped to [0, 1]" in glf.columns()["mae"]


def test_unknown_protocol_names_the_valid_ones() -> None:
    with pytest.raises(KeyError, match="glf-cr.*leaderboard.*paper"):
        get_protocol("uncrtaints")


def test_bad_protocol_fields_are_rejected() -> None:
    with pytest.raises(ValueError, match="crop"):
        EvalProtocol("x", 0, False, "per_image", "d", "c")
    with pytest.raises(ValueError, match="mean"):
        EvalProtocol("x", None, False, "median", "d", "c")
    with pytest.raises(ValueError, match="psnr"):
        EvalProtocol("x", None, False, "per_image", "d", "c", psnr="median")
    with pytest.raises(ValueError, match="ssim_padding"):
        EvalProtocol("x", None, False, "per_image", "d", "c", ssim_padding="reflect")
