"""UnCRtainTS: the network (sizes against hand counts), the converter of the published
checkpoints (against the upstream implementation's own output), and its errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from cloudfree.cli import main
from cloudfree.errors import DataError
from cloudfree.models import build_model, load_weights
from cloudfree.models.uncrtaints import UnCRtainTS, UnCRtainTSConfig
from cloudfree.models.uncrtaints_import import convert_uncrtaints

#: Written by scripts/uncrtaints_fixture.py from PatrickTUM/UnCRtainTS at commit
#: 5e1f1b58e993645e765b64e10b6e9c7ff828b36f (the commit is also in io.safetensors' metadata).
FIXTURE = Path(__file__).parent / "data" / "uncrtaints"
UPSTREAM_COMMIT = "5e1f1b58e993645e765b64e10b6e9c7ff828b36f"


def _fixture_io() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = str(FIXTURE / "io.safetensors")
    with safe_open(path, framework="pt") as f:
        meta = dict(f.metadata())
    return load_file(path), meta


def test_published_configuration_has_the_papers_size():
    # By hand: in_conv 15*128 + 128 + GN 2*128 = 2304; one MBConv (W=128, hidden 256):
    # pre-norm 256 + pw 128*256 + norm 512 + dw 9*256 + norm 512 + SE 2*256*32 + pw 256*128 +
    # norm 256 = 85,760, six of them 514,560; out_conv 128*26 + 26 = 3354. Total 520,218
    # ("0.52 M parameters", Ebel et al. 2023).
    model = build_model("uncrtaints")
    assert sum(p.numel() for p in model.parameters()) == 520_218
    nosar = build_model("uncrtaints-nosar")
    assert sum(p.numel() for p in nosar.parameters()) == 520_218 - 2 * 128


def test_macs_match_a_count_from_forward_hooks():
    cfg = UnCRtainTSConfig()
    model = UnCRtainTS(**cfg.to_dict()).eval()
    counted = []

    def hook(m: nn.Module, inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            counted.append(out.numel() * k)
        else:
            counted.append(out.numel() * m.in_features)

    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.rand(1, 13, 64, 64), torch.rand(1, 2, 64, 64), return_variance=True)
    assert cfg.macs(64, 64) == sum(counted)
    # 27.0 GMAC per 256 x 256 patch by this count (convolutions and linear layers).
    assert cfg.macs(256, 256) == pytest.approx(27.02e9, rel=1e-3)


def test_outputs_are_bounded_means_and_positive_variances():
    torch.manual_seed(0)
    model = UnCRtainTS(encoder_widths=[8], decoder_widths=[8]).eval()
    s2, s1 = torch.rand(2, 13, 16, 16), torch.rand(2, 2, 16, 16)
    with torch.no_grad():
        out = model(s2, s1, return_variance=True)
        mean = model(s2, s1)
    assert out.shape == (2, 26, 16, 16)
    torch.testing.assert_close(out[:, :13], mean)
    assert mean.min() >= 0 and mean.max() <= 1  # scale_by * sigmoid / scale_by
    # softplus + 1e-3, / scale_by**2: never below 1e-5 reflectance squared
    assert out[:, 13:].min() >= 1e-3 / 100


def test_iso_covariance_repeats_one_variance_per_band():
    model = UnCRtainTS(encoder_widths=[8], decoder_widths=[8], covmode="iso").eval()
    with torch.no_grad():
        out = model(torch.rand(1, 13, 8, 8), torch.rand(1, 2, 8, 8), return_variance=True)
    var = out[:, 13:]
    assert torch.equal(var, var[:, :1].expand_as(var))


def test_mean_only_model_refuses_return_variance():
    model = UnCRtainTS(encoder_widths=[8], decoder_widths=[8], covmode=None)
    assert not model.predicts_variance
    with pytest.raises(ValueError, match="predicts no variance"):
        model(torch.rand(1, 13, 8, 8), torch.rand(1, 2, 8, 8), return_variance=True)


def test_sar_input_is_required_and_checked():
    model = UnCRtainTS(encoder_widths=[8], decoder_widths=[8])
    with pytest.raises(ValueError, match="uncrtaints-nosar"):
        model(torch.rand(1, 13, 8, 8))
    with pytest.raises(ValueError, match="widths must be equal"):
        UnCRtainTSConfig(encoder_widths=(8,), decoder_widths=(16,))


# ---- the published checkpoints: converter against the upstream output ----------------------


def test_fixture_records_its_upstream_commit():
    _, meta = _fixture_io()
    assert meta["commit"] == UPSTREAM_COMMIT


def test_converted_checkpoint_reproduces_upstream_output(tmp_path):
    out = tmp_path / "fixture.safetensors"
    summary = convert_uncrtaints(FIXTURE / "model.pth.tar", FIXTURE / "conf.json", out)
    assert summary["model"] == "uncrtaints" and summary["covmode"] == "diag"
    model = load_weights(out)
    assert model.scaling == "reflectance"  # travels with the weights: no flag needed
    io, _ = _fixture_io()
    with torch.no_grad():
        pred = model(io["s2"], io["s1"], return_variance=True)
    torch.testing.assert_close(pred[:, :13], io["mean"], rtol=0, atol=1e-6)
    torch.testing.assert_close(pred[:, 13:], io["var"], rtol=1e-5, atol=1e-9)


def test_legacy_block_names_and_wrapper_keys_are_mapped(tmp_path):
    ck = torch.load(FIXTURE / "model.pth.tar", weights_only=True)
    legacy = {}
    for k, v in ck["state_dict_G"].items():
        for block in ("in_block", "out_block"):
            if k.startswith(block + "."):
                i, rest = k[len(block) + 1 :].split(".", 1)
                k = f"{block}{int(i) + 1}.{rest}"  # upstream's older 1-based names
        legacy[f"netG.{k}"] = v
    torch.save({"state_dict": legacy}, tmp_path / "old.pth.tar")
    convert_uncrtaints(tmp_path / "old.pth.tar", FIXTURE / "conf.json", tmp_path / "old.st")
    convert_uncrtaints(FIXTURE / "model.pth.tar", FIXTURE / "conf.json", tmp_path / "new.st")
    a, b = (
        load_weights(tmp_path / "old.st").state_dict(),
        load_weights(tmp_path / "new.st").state_dict(),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def conf_with(fixture: Path, tmp_path: Path, **changes: object) -> Path:
    """A copy of ``fixture``'s conf.json in ``tmp_path`` with ``changes``."""
    conf = json.loads((fixture / "conf.json").read_text())
    conf.update(changes)
    path = tmp_path / "conf.json"
    path.write_text(json.dumps(conf))
    return path


def _conf(tmp_path: Path, **changes: object) -> Path:
    return conf_with(FIXTURE, tmp_path, **changes)


def test_conf_of_another_configuration_is_refused_by_tensor_name(tmp_path):
    with pytest.raises(DataError, match=r"unexpected tensors: out_block\.1\."):
        convert_uncrtaints(FIXTURE / "model.pth.tar", _conf(tmp_path, decoder_widths=[16]),
                           tmp_path / "x.st")  # fmt: skip
    with pytest.raises(DataError, match=r"out_conv\.conv\.conv\.0\.weight \(26, 16, 1, 1\)"):
        convert_uncrtaints(FIXTURE / "model.pth.tar", _conf(tmp_path, out_conv="[13]"),
                           tmp_path / "x.st")  # fmt: skip
    assert not (tmp_path / "x.st").exists()


def test_mono_and_multi_temporal_mixed_up_are_refused_by_tensor_name(tmp_path):
    # A multi-temporal conf.json beside a mono-temporal checkpoint: the L-TAE is missing.
    with pytest.raises(DataError, match=r"missing tensors: temporal_encoder\..*multi-temporal"):
        convert_uncrtaints(FIXTURE / "model.pth.tar", _conf(tmp_path, pretrain=False, n_head=4,
                           d_model=32), tmp_path / "m.st")  # fmt: skip
    ck = torch.load(FIXTURE / "model.pth.tar", weights_only=True)
    state = dict(ck["state_dict_G"])
    state["temporal_encoder.in_norm.weight"] = torch.ones(16)
    torch.save({"state_dict_G": state}, tmp_path / "multi.pth.tar")
    with pytest.raises(DataError, match=r"unexpected tensors: temporal_encoder.*mono-temporal"):
        convert_uncrtaints(tmp_path / "multi.pth.tar", FIXTURE / "conf.json", tmp_path / "m.st")
    assert not (tmp_path / "m.st").exists()


def test_missing_conf_is_a_clear_cli_error(tmp_path, capsys):
    shutil.copy(FIXTURE / "model.pth.tar", tmp_path / "model.pth.tar")
    rc = main(["convert-uncrtaints", str(tmp_path / "model.pth.tar"),
               "--conf", str(tmp_path / "conf.json"), "--out", str(tmp_path / "o.st")])  # fmt: skip
    assert rc == 1
    assert "conf.json not found" in capsys.readouterr().err
    assert not (tmp_path / "o.st").exists()


def test_cli_converts(tmp_path, capsys):
    rc = main(["convert-uncrtaints", str(FIXTURE / "model.pth.tar"),
               "--conf", str(FIXTURE / "conf.json"), "--out", str(tmp_path / "o.safetensors")])  # fmt: skip
    assert rc == 0
    assert "mean + variance (diag)" in capsys.readouterr().out
    assert load_weights(tmp_path / "o.safetensors").config.decoder_widths == (16, 16)


def test_converted_file_imports_under_a_name_of_ones_own(tmp_path):
    from cloudfree.methods.load import load_method
    from cloudfree.weights import find_weights
    from cloudfree.weights.fetch import import_file

    convert_uncrtaints(FIXTURE / "model.pth.tar", FIXTURE / "conf.json", tmp_path / "u.st")
    import_file(tmp_path / "u.st", "my-uncrtaints-test")
    assert find_weights("my-uncrtaints-test") is not None
    method = load_method("my-uncrtaints-test", device="cpu")
    assert method.scaling == "reflectance" and method.predicts_variance
