"""predict_scene on synthetic scenes: tiled == untiled, georeferencing, dtype, nodata, masks,
S1 coverage, atomic output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloudfree.bands import S2_BANDS
from cloudfree.errors import CloudfreeError, DataError
from cloudfree.masks.params import CLEAR
from cloudfree.predict.scene import choose_window, predict_scene

from .conftest import TINY_RF, leftovers, read_tif, synth_s1, synth_s2, untiled, write_tif

H, W = 160, 224  # 3-4 tiles of 64 px a side, 3 x 4 windows of 64


def _interior(a: np.ndarray, r: int = TINY_RF) -> np.ndarray:
    return a[..., r:-r, r:-r]


def test_tiled_equals_untiled_float(tmp_path: Path, nosar_weights) -> None:
    weights, model = nosar_weights
    s2 = synth_s2(H, W).astype(np.float32)
    src = write_tif(tmp_path / "s2.tif", s2)
    out = tmp_path / "out.tif"
    summary = predict_scene(src, out, str(weights), tile=64, overlap=32, window=64, progress=False)
    pred, prof = read_tif(out)
    ref = untiled(model, s2)
    assert summary["tiles"] > 12 and summary["window"] == 64
    assert prof["dtype"] == "float32"
    # Model values are ~1e3 DN: float32 rounding of the blend is ~1e-4 DN.
    np.testing.assert_allclose(_interior(pred), _interior(ref), atol=0.02, rtol=1e-5)
    # Near the scene border the reflect padding gives context where the untiled run zero-pads.
    assert np.abs(pred - ref).max() > 1.0


def test_uint16_output_grid_dtype_and_rounding(tmp_path: Path, nosar_weights) -> None:
    weights, model = nosar_weights
    s2 = synth_s2(H, W)
    src = write_tif(tmp_path / "s2.tif", s2, nodata=0, descriptions=list(S2_BANDS))
    out = tmp_path / "out.tif"
    predict_scene(
        src, out, str(weights), tile=64, overlap=32, window=64, batch_size=3, progress=False
    )
    pred, prof = read_tif(out)
    _, prof_in = read_tif(src)
    for key in ("crs", "transform", "width", "height", "count", "dtype", "nodata"):
        assert prof[key] == prof_in[key], key
    assert prof["tiled"] and prof["compress"] == "deflate"
    assert prof["descriptions"] == S2_BANDS
    ref = np.clip(np.rint(untiled(model, s2)), 0, 65535)
    diff = np.abs(_interior(pred).astype(np.float64) - _interior(ref))
    assert diff.max() <= 1.0  # float rounding can flip a .5


def test_int16_nodata_and_clipping(tmp_path: Path, nosar_weights) -> None:
    weights, _ = nosar_weights
    s2 = synth_s2(96, 96, dtype="int16")
    s2[:, :10, :] = 0  # a nodata stripe (all bands == nodata)
    s2[:5, 40, 40] = 0  # not nodata: only some bands are 0
    src = write_tif(tmp_path / "s2.tif", s2, nodata=0)
    out = tmp_path / "out.tif"
    predict_scene(src, out, str(weights), tile=48, overlap=16, progress=False)
    pred, prof = read_tif(out)
    assert prof["dtype"] == "int16" and prof["nodata"] == 0
    assert np.all(pred[:, :10, :] == 0)
    assert np.any(pred[:, 40, 40] != 0)
    assert (pred[:, 10:, :] != 0).any(axis=0).all()  # valid pixels do not turn into nodata


def test_keep_clear_and_mask_out_equal_mask_scene(tmp_path: Path, nosar_weights) -> None:
    from cloudfree.masks.scene import mask_scene

    weights, _ = nosar_weights
    s2 = synth_s2(128, 160)
    src = write_tif(tmp_path / "s2.tif", s2)
    out, mask_out = tmp_path / "out.tif", tmp_path / "mask.tif"
    summary = predict_scene(
        src,
        out,
        str(weights),
        tile=64,
        overlap=32,
        window=64,
        keep_clear=True,
        mask_out=mask_out,
        progress=False,
        mask_backend="dsen2cr",
    )
    mask, mprof = read_tif(mask_out)
    ref = tmp_path / "ref_mask.tif"
    mask_scene(src, ref, backend="dsen2cr", window=64)
    expected, _ = read_tif(ref)
    np.testing.assert_array_equal(mask, expected)
    assert mprof["dtype"] == "uint8" and mprof["transform"] == read_tif(src)[1]["transform"]
    clear = mask[0] == CLEAR
    assert 0.05 < clear.mean() < 0.99  # the synthetic blob is a cloud, the rest is clear
    assert summary["clear_fraction"] == pytest.approx(clear.mean())
    pred, _ = read_tif(out)
    np.testing.assert_array_equal(pred[:, clear], s2[:, clear])
    assert np.any(pred[:, ~clear] != s2[:, ~clear])


def _partial_s1(tmp_path: Path, height: int, width: int, split: int) -> tuple[Path, np.ndarray]:
    s1 = synth_s1(height, width)
    s1_file = s1.copy()
    s1_file[:, :, split:] = np.nan  # S1 covers only the left part
    return write_tif(tmp_path / "s1.tif", s1_file, nodata=float("nan")), s1


def test_partial_s1_nosar_outside(tmp_path: Path, sar_weights, nosar_weights) -> None:
    (sar_w, sar_m), (nosar_w, nosar_m) = sar_weights, nosar_weights
    s2 = synth_s2(128, 192).astype(np.float32)
    src = write_tif(tmp_path / "s2.tif", s2)
    s1_path, s1 = _partial_s1(tmp_path, 128, 192, split=96)
    out = tmp_path / "out.tif"
    summary = predict_scene(
        src,
        out,
        str(sar_w),
        s1_path,
        checkpoint_nosar=str(nosar_w),
        tile=64,
        overlap=32,
        window=64,
        progress=False,
    )
    assert summary["reprojected"] is False
    assert summary["sar_coverage"] == pytest.approx(0.5)
    assert summary["method_nosar"] == nosar_w.stem  # the short name, and the file used:
    assert summary["weights_nosar"] == str(Path(nosar_w).resolve())
    pred, _ = read_tif(out)
    r = TINY_RF
    with_sar = untiled(sar_m, s2, s1)
    without = untiled(nosar_m, s2)
    # S1 covers columns < 96. The SAR model's share falls towards that edge as a tile's blend
    # weight does (overlap 32: margin 8, ramp of 16 px): column c is 96 - c pixels from the
    # nearest pixel without S1, its SAR weight clip((96 - c - 8) / 17, 0, 1).
    c = np.arange(192)
    w = np.clip((96 - c - 8) / 17, 0, 1)
    np.testing.assert_array_equal(w[:71] == 1, True)
    assert w[95] == 0 and 0 < w[80] < 1
    # (blended as predicted, then clipped at 0 DN as written)
    raw_sar, raw_nosar = untiled(sar_m, s2, s1, clip=False), untiled(nosar_m, s2, clip=False)
    expected = np.maximum(w * raw_sar + (1 - w) * raw_nosar, 0)
    sar_part = slice(r, 96 - 25)  # weight 1, and the S1 edge beyond the receptive field
    np.testing.assert_allclose(
        pred[:, r:-r, sar_part], with_sar[:, r:-r, sar_part], atol=0.02, rtol=1e-5
    )
    np.testing.assert_allclose(pred[:, r:-r, 96:-r], without[:, r:-r, 96:-r], atol=0.02, rtol=1e-5)
    # On the ramp, the blend of the two (the SAR model sees no filled S1 there: its receptive
    # field ends before the coverage edge).
    ramp = slice(96 - 25, 96 - r)
    np.testing.assert_allclose(pred[:, r:-r, ramp], expected[:, r:-r, ramp], atol=0.6, rtol=1e-5)
    # No seam: a step across the coverage edge is no larger than the steps beside it.
    step = np.abs(np.diff(pred[:, r:-r].astype(np.float64), axis=2)).mean(axis=(0, 1))
    assert step[90:100].max() < 2 * np.median(step[r:-r]), step[85:100]


def test_partial_s1_input_outside(tmp_path: Path, sar_weights) -> None:
    sar_w, sar_m = sar_weights
    s2 = synth_s2(128, 192)
    src = write_tif(tmp_path / "s2.tif", s2)
    s1_path, s1 = _partial_s1(tmp_path, 128, 192, split=96)
    out = tmp_path / "out.tif"
    summary = predict_scene(
        src, out, str(sar_w), s1_path, outside_sar="input", tile=64, overlap=32, progress=False
    )
    assert summary["method_nosar"] is None  # nothing predicted without SAR
    pred, _ = read_tif(out)
    np.testing.assert_array_equal(pred[:, :, 96:], s2[:, :, 96:])  # never zero-filled
    r = TINY_RF
    ref = np.clip(np.rint(untiled(sar_m, s2.astype(np.float32), s1)), 0, 65535)
    diff = np.abs(pred[:, r:-r, r : 96 - r].astype(float) - ref[:, r:-r, r : 96 - r])
    assert diff.max() <= 1.0


def test_sar_model_without_s1(tmp_path: Path, sar_weights, nosar_weights) -> None:
    (sar_w, _), (nosar_w, nosar_m) = sar_weights, nosar_weights
    s2 = synth_s2(64, 64).astype(np.float32)
    src = write_tif(tmp_path / "s2.tif", s2)
    with pytest.raises(ValueError, match="no s1"):
        predict_scene(src, tmp_path / "out.tif", str(sar_w), outside_sar="input", progress=False)
    summary = predict_scene(
        src,
        tmp_path / "out.tif",
        str(sar_w),
        checkpoint_nosar=str(nosar_w),
        tile=64,
        overlap=32,
        progress=False,
    )
    assert summary["nosar_tiles"] == summary["tiles"] and summary["sar_tiles"] == 0
    pred, _ = read_tif(tmp_path / "out.tif")
    np.testing.assert_allclose(
        _interior(pred), _interior(untiled(nosar_m, s2)), atol=0.02, rtol=1e-5
    )


def test_failures_leave_no_output(tmp_path: Path, nosar_weights, sar_weights, monkeypatch) -> None:
    (weights, _), (sar_w, _) = nosar_weights, sar_weights
    src = write_tif(tmp_path / "s2.tif", synth_s2(96, 96))
    out = tmp_path / "out.tif"
    # A broken S1 file.
    bad = tmp_path / "bad_s1.tif"
    bad.write_bytes(b"II*\x00 this is not a tiff")
    with pytest.raises(DataError, match="bad_s1.tif"):
        predict_scene(src, out, str(sar_w), bad, progress=False)
    # An S1 with 3 bands, and an S2 with 5 bands.
    s1_3 = write_tif(tmp_path / "s1_3.tif", np.zeros((3, 96, 96), np.float32))
    with pytest.raises(DataError, match="3 bands"):
        predict_scene(src, out, str(sar_w), s1_3, progress=False)
    s2_5 = write_tif(tmp_path / "s2_5.tif", synth_s2(96, 96)[:5])
    with pytest.raises(DataError, match="5 bands"):
        predict_scene(s2_5, out, str(weights), progress=False)
    # The model fails in the middle of the scene (after some windows were written).
    from cloudfree.predict import window

    calls = {"n": 0}
    real = window.Runner.__call__

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("model exploded")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(window.Runner, "__call__", failing)
    with pytest.raises(RuntimeError, match="exploded"):
        predict_scene(
            src,
            out,
            str(weights),
            tile=32,
            overlap=8,
            window=32,
            batch_size=1,
            mask_out=tmp_path / "mask.tif",
            progress=False,
        )
    assert calls["n"] == 3
    assert leftovers(tmp_path) == []  # no out.tif, no mask.tif, no .part


def test_bad_arguments(tmp_path: Path, nosar_weights) -> None:
    weights, _ = nosar_weights
    src = write_tif(tmp_path / "s2.tif", synth_s2(32, 32))
    for kwargs, match in [
        ({"outside_sar": "zeros"}, "outside_sar"),
        ({"overlap": 64, "tile": 64}, "overlap"),
        ({"window": 100}, "multiple of 16"),
        ({"precision": "fp8"}, "precision"),
    ]:
        with pytest.raises(ValueError, match=match):
            predict_scene(src, tmp_path / "out.tif", str(weights), progress=False, **kwargs)
    assert leftovers(tmp_path) == []


def test_bf16_runs_close_to_fp32(tmp_path: Path, nosar_weights) -> None:
    weights, model = nosar_weights
    s2 = synth_s2(64, 64).astype(np.float32)
    src = write_tif(tmp_path / "s2.tif", s2)
    summary = predict_scene(
        src,
        tmp_path / "out.tif",
        str(weights),
        precision="bf16",
        tile=64,
        overlap=16,
        progress=False,
    )
    assert summary["precision"] == "bf16"
    pred, _ = read_tif(tmp_path / "out.tif")
    ref = untiled(model, s2)
    # bf16 keeps 8 mantissa bits: ~0.4 % of ~2000 DN.
    assert np.abs(_interior(pred) - _interior(ref)).max() < 0.02 * np.abs(ref).max()


def test_choose_window_prefers_less_overlap_work() -> None:
    assert choose_window(256, 32, 16) == 1024  # 5 tiles of 240 over 1056 px: 1.17x
    assert choose_window(128, 16, 8) in (512, 1024)


def test_default_checkpoints_are_the_bundled_ones(tmp_path: Path, monkeypatch) -> None:
    from cloudfree.models import save_weights
    from cloudfree.predict import bundled
    from cloudfree.weights import get_weights, registry

    from .conftest import tiny_model

    weights = tmp_path / "weights"
    sar, nosar = get_weights(bundled.DEFAULT_SAR), get_weights(bundled.DEFAULT_NOSAR)
    save_weights(tiny_model(True), weights / sar.filename)
    save_weights(tiny_model(False), weights / nosar.filename)
    monkeypatch.setattr(registry, "BUNDLED_DIR", weights)
    src = write_tif(tmp_path / "s2.tif", synth_s2(64, 96))
    s1_path, _ = _partial_s1(tmp_path, 64, 96, split=48)
    summary = predict_scene(src, tmp_path / "out.tif", None, s1_path, tile=64, progress=False)
    # Tables and summaries name the weights by their short name, not a path.
    assert summary["method"] == bundled.DEFAULT_SAR
    assert summary["method_nosar"] == bundled.DEFAULT_NOSAR
    summary = predict_scene(src, tmp_path / "out2.tif", progress=False)
    assert summary["method"] == bundled.DEFAULT_NOSAR


def test_a_published_sar_entry_pairs_with_its_own_nosar_entry(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    """`predict --checkpoint dsen2cr-sar-carl`: pixels without S1 go to dsen2cr-nosar-carl when
    it is fetched; else an error naming the fetch command, unless the bundled no-SAR model is
    asked for (--outside-sar nosar), which is then said (issue 30: no silent substitute)."""
    import dataclasses
    import logging

    from cloudfree.models import save_weights
    from cloudfree.predict import bundled
    from cloudfree.weights import cache, registry
    from cloudfree.weights.fetch import import_file

    from .conftest import tiny_model

    monkeypatch.setenv(cache.HOME_ENV, str(tmp_path / "home"))
    tiny = {"num_layers": 2, "feature_size": 8}
    entries = [dataclasses.replace(w, config={**w.config, **tiny}) if w.name in (
        "dsen2cr-sar-carl", "dsen2cr-nosar-carl") else w for w in registry.WEIGHTS]  # fmt: skip
    monkeypatch.setattr(registry, "WEIGHTS", tuple(entries))
    import_file(save_weights(tiny_model(True), tmp_path / "sar.safetensors"), "dsen2cr-sar-carl")
    src = write_tif(tmp_path / "s2.tif", synth_s2(64, 96))
    s1_path, _ = _partial_s1(tmp_path, 64, 96, split=48)
    with pytest.raises(CloudfreeError, match="cloudfree weights fetch dsen2cr-nosar-carl"):
        predict_scene(src, tmp_path / "a.tif", "dsen2cr-sar-carl", s1_path, tile=64,
                      progress=False)  # fmt: skip
    assert not (tmp_path / "a.tif").exists()
    with caplog.at_level(logging.WARNING):
        summary = predict_scene(src, tmp_path / "a.tif", "dsen2cr-sar-carl", s1_path, tile=64,
                                outside_sar="nosar", progress=False)  # fmt: skip
    assert (summary["method"], summary["method_nosar"]) == ("dsen2cr-sar-carl", "hybrid-nosar")
    assert "cloudfree weights fetch dsen2cr-nosar-carl" in caplog.text
    assert summary["made_by"]["nosar"] == pytest.approx(0.5)
    nosar = save_weights(tiny_model(False, seed=1), tmp_path / "nosar.safetensors")
    import_file(nosar, "dsen2cr-nosar-carl")
    summary = predict_scene(src, tmp_path / "b.tif", "dsen2cr-sar-carl", s1_path, tile=64,
                            progress=False)  # fmt: skip
    assert summary["method_nosar"] == "dsen2cr-nosar-carl"
    assert bundled.nosar_partner("hybrid-sar") == ("hybrid-nosar", True)
    assert bundled.nosar_partner("/some/file.safetensors") == (None, False)


def test_two_outputs_with_one_name_are_refused_before_any_work(
    tmp_path: Path, nosar_weights
) -> None:
    weights, _ = nosar_weights
    src = write_tif(tmp_path / "s2.tif", synth_s2(32, 32))
    before = src.read_bytes()
    with pytest.raises(ValueError, match="--mask-out .* is the same file as --out"):
        predict_scene(src, tmp_path / "out.tif", str(weights), mask_out=tmp_path / "out.tif",
                      progress=False)  # fmt: skip
    assert not (tmp_path / "out.tif").exists() and src.read_bytes() == before


def test_each_model_is_prepared_for_inference_once(
    tmp_path: Path, sar_weights, nosar_weights, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cloudfree.models import runtime

    real, calls = runtime.prepare_for_inference, []

    def counting(model, *args, **kwargs):
        calls.append(type(model).__name__)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(runtime, "prepare_for_inference", counting)
    src = write_tif(tmp_path / "s2.tif", synth_s2(64, 64))
    predict_scene(src, tmp_path / "a.tif", str(nosar_weights[0]), progress=False)
    assert len(calls) == 1
    # A SAR model given no S1 falls back to the no-SAR model: two models, each prepared once.
    predict_scene(src, tmp_path / "b.tif", str(sar_weights[0]),
                  checkpoint_nosar=str(nosar_weights[0]), progress=False)  # fmt: skip
    assert len(calls) == 3
