"""pix2pix baseline networks: parameter counts, forward against junyanz's U-Net, shapes, input
checks, dropout, init, PatchGAN receptive field, registry (spec section 9)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cloudfree.models import build_model, list_models
from cloudfree.models.pix2pix import (
    PatchGANDiscriminator,
    Pix2PixConfig,
    Pix2PixGenerator,
    patchgan_num_parameters,
    patchgan_receptive_field,
    unet_num_parameters,
)


def _inputs(
    size: int, batch: int = 2, seed: int = 0, sar: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    s2 = torch.rand(batch, 13, size, size, generator=g) * 2.0
    s1 = torch.rand(batch, 2, size, size, generator=g) * 2.0 if sar else None
    return s2, s1


# --- Reference: junyanz UnetSkipConnectionBlock, norm "batch", Tanh removed. --------------------
# Adapted from junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py (BSD licence), kept with
# its in-place activations, whose effect on the skip concat the cloudfree model reproduces.
class _JunyanzBlock(nn.Module):
    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=False)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = nn.BatchNorm2d(inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = nn.BatchNorm2d(outer_nc)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            model = [downconv, submodule, uprelu, upconv]  # upstream ends in nn.Tanh()
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=False)
            model = [downrelu, downconv, uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=False)
            model = [downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm]
            if use_dropout:
                model += [nn.Dropout(0.5)]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


def _junyanz_unet(input_nc: int, output_nc: int, num_downs: int, ngf: int) -> nn.Module:
    block = _JunyanzBlock(ngf * 8, ngf * 8, innermost=True)
    for _ in range(num_downs - 5):
        block = _JunyanzBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=True)
    block = _JunyanzBlock(ngf * 4, ngf * 8, submodule=block)
    block = _JunyanzBlock(ngf * 2, ngf * 4, submodule=block)
    block = _JunyanzBlock(ngf, ngf * 2, submodule=block)
    return _JunyanzBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)


def test_forward_matches_junyanz_unet() -> None:
    model = Pix2PixGenerator(include_sar=True, ngf=4, num_downs=6).double().train()
    ref = _junyanz_unet(15, 13, num_downs=6, ngf=4).double()
    # Both list parameters and buffers in the same order (encoder outermost-first, then decoder
    # innermost-first), with the same shapes.
    ours, theirs = model.state_dict(), ref.state_dict()
    assert [v.shape for v in ours.values()] == [v.shape for v in theirs.values()]
    # Give BatchNorm non-trivial statistics, then copy every tensor across.
    s2, s1 = _inputs(64, batch=3)
    with torch.no_grad():
        model(s2.double(), s1.double())
    ref.load_state_dict(dict(zip(theirs.keys(), ours.values(), strict=True)))
    model.eval()
    ref.eval()
    s2, s1 = _inputs(64, batch=2, seed=1)
    with torch.no_grad():
        out = model(s2.double(), s1.double())
        expected = ref(torch.cat([s2, s1], 1).double())
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


def test_published_parameter_counts() -> None:
    # junyanz logs for --model pix2pix on RGB: "[Network G] ... 54.414 M", "[Network D] 2.769 M".
    assert round(unet_num_parameters(3, 3, ngf=64, num_downs=8) / 1e6, 3) == 54.414
    assert round(patchgan_num_parameters(6, ndf=64, n_layers=3) / 1e6, 3) == 2.769


@pytest.mark.parametrize(
    ("include_sar", "ngf", "num_downs"),
    [(True, 64, 8), (True, 4, 8), (False, 4, 7), (True, 3, 5), (False, 2, 9)],
)
def test_generator_parameter_count_analytic(include_sar: bool, ngf: int, num_downs: int) -> None:
    model = Pix2PixGenerator(include_sar=include_sar, ngf=ngf, num_downs=num_downs)
    assert sum(p.numel() for p in model.parameters()) == model.config.num_parameters
    if (include_sar, ngf, num_downs) == (True, 64, 8):
        assert model.config.num_parameters == 54_446_733


@pytest.mark.parametrize(("in_channels", "ndf", "n_layers"), [(28, 64, 3), (26, 4, 3), (5, 3, 4)])
def test_discriminator_parameter_count_analytic(in_channels: int, ndf: int, n_layers: int) -> None:
    d = PatchGANDiscriminator(in_channels, ndf=ndf, n_layers=n_layers)
    assert sum(p.numel() for p in d.parameters()) == patchgan_num_parameters(
        in_channels, ndf, n_layers
    )


def test_forward_shapes_256_and_128() -> None:
    model = Pix2PixGenerator(include_sar=True, ngf=4).eval()
    s2, s1 = _inputs(256, batch=1)
    with torch.no_grad():
        out = model(s2, s1)
    assert out.shape == (1, 13, 256, 256)
    assert out.dtype == torch.float32
    model = Pix2PixGenerator(include_sar=False, ngf=4, num_downs=7).eval()
    s2, _ = _inputs(128, batch=2, sar=False)
    with torch.no_grad():
        assert model(s2).shape == (2, 13, 128, 128)


def test_size_not_multiple_raises() -> None:
    model = Pix2PixGenerator(include_sar=True, ngf=4)
    s2, s1 = _inputs(100, batch=1)
    with pytest.raises(ValueError, match=r"multiples of 2\*\*8 = 256, got 100x100.*num_downs=7"):
        model(s2, s1)
    # 128x128 is fine for num_downs=7 but not for unet_256.
    s2, s1 = _inputs(128, batch=1)
    with pytest.raises(ValueError, match="got 128x128"):
        model(s2, s1)


def test_input_checks() -> None:
    sar = Pix2PixGenerator(include_sar=True, ngf=2, num_downs=5)
    nosar = Pix2PixGenerator(include_sar=False, ngf=2, num_downs=5)
    s2, s1 = _inputs(32)
    with pytest.raises(ValueError, match="needs s1"):
        sar(s2)
    with pytest.raises(ValueError, match="takes no s1"):
        nosar(s2, s1)
    with pytest.raises(ValueError, match=r"s2_cloudy must be \(B, 13, H, W\)"):
        nosar(torch.cat([s2, s1], 1))
    with pytest.raises(ValueError, match=r"s1 must be \(B, 2, H, W\)"):
        sar(s2, s1[:, :1])
    with pytest.raises(ValueError, match="same batch size"):
        sar(s2, s1[:1])


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="num_downs must be an int >= 5"):
        Pix2PixConfig(num_downs=4)
    with pytest.raises(ValueError, match="ngf"):
        Pix2PixConfig(ngf=0)
    with pytest.raises(TypeError, match="include_sar"):
        Pix2PixConfig(include_sar=1)  # type: ignore[arg-type]
    cfg = Pix2PixConfig(include_sar=False, ngf=4, num_downs=7)
    assert (cfg.in_channels, cfg.discriminator_in_channels, cfg.size_multiple) == (13, 26, 128)
    assert Pix2PixGenerator.from_config(cfg).config == cfg


def test_dropout_placement_and_modes() -> None:
    model = Pix2PixGenerator(include_sar=True, ngf=4, num_downs=8)
    # junyanz: dropout in the num_downs - 5 = 3 decoder blocks above the innermost one.
    has_dropout = [any(isinstance(m, nn.Dropout) for m in up) for up in model.ups]
    assert has_dropout == [False, True, True, True, False, False, False, False]
    assert all(m.p == 0.5 for m in model.modules() if isinstance(m, nn.Dropout))

    small = Pix2PixGenerator(include_sar=True, ngf=4, num_downs=6)
    s2, s1 = _inputs(64)
    with torch.no_grad():
        small.train()
        a, b = small(s2, s1), small(s2, s1)
        assert not torch.equal(a, b)  # dropout draws differ
        small.eval()
        torch.testing.assert_close(small(s2, s1), small(s2, s1), rtol=0, atol=0)
    # Without dropout, train mode is deterministic too: the difference above is dropout's.
    plain = Pix2PixGenerator(include_sar=True, ngf=4, num_downs=6, use_dropout=False).train()
    with torch.no_grad():
        torch.testing.assert_close(plain(s2, s1), plain(s2, s1), rtol=0, atol=0)


def test_sar_input_changes_output() -> None:
    model = Pix2PixGenerator(include_sar=True, ngf=4, num_downs=5).eval()
    s2, s1 = _inputs(32)
    with torch.no_grad():
        assert not torch.allclose(model(s2, s1), model(s2, torch.zeros_like(s1)))


def test_residual_adds_cloudy_input() -> None:
    plain = Pix2PixGenerator(include_sar=False, ngf=4, num_downs=5).eval()
    residual = Pix2PixGenerator(include_sar=False, ngf=4, num_downs=5, residual=True).eval()
    residual.load_state_dict(plain.state_dict())
    s2, _ = _inputs(32, sar=False)
    with torch.no_grad():
        torch.testing.assert_close(residual(s2), plain(s2) + s2)


def test_normal_init() -> None:
    model = Pix2PixGenerator(include_sar=True, ngf=16, num_downs=6)
    weights = torch.cat(
        [
            m.weight.flatten()
            for m in model.modules()
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
        ]
    )
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)
    bn = torch.cat([m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    assert bn.mean().item() == pytest.approx(1.0, abs=0.01)
    assert 0.01 < bn.std().item() < 0.03
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.ConvTranspose2d) and m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0


def test_discriminator_shapes_and_checks() -> None:
    gen = Pix2PixGenerator(include_sar=True, ngf=4)
    d = PatchGANDiscriminator.for_generator(gen, ndf=4)
    assert d.in_channels == 28
    s2, s1 = _inputs(256, batch=1)
    cond = gen.condition(s2, s1)
    logits = d(cond, s2)
    assert logits.shape == (1, 1, 30, 30)  # the 30x30 patch grid of pix2pix at 256 px
    assert d(cond[..., :64, :64], s2[..., :64, :64]).shape == (1, 1, 6, 6)
    with pytest.raises(ValueError, match="28"):
        d(s2, s2)
    with pytest.raises(ValueError, match="same batch size"):
        d(cond, s2[..., :64, :64])
    # No norm on the first conv; BatchNorm after the other hidden convs; 1 output channel.
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert [c.out_channels for c in convs] == [4, 8, 16, 32, 1]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 3


def test_receptive_field_is_70() -> None:
    assert patchgan_receptive_field(3) == 70
    d = PatchGANDiscriminator(3, ndf=4, n_layers=3).double().eval()
    assert d.receptive_field == 70
    x = torch.rand(1, 3, 96, 96, dtype=torch.float64, requires_grad=True)
    logits = d(x[:, :1], x[:, 1:])  # condition 1 channel + image 2 channels
    i, j = 5, 4
    logits[0, 0, i, j].backward()
    support = x.grad.abs().sum(dim=(0, 1)) > 0  # type: ignore[union-attr]
    rows = torch.nonzero(support.any(dim=1)).flatten()
    cols = torch.nonzero(support.any(dim=0)).flatten()
    # A contiguous 70x70 window starting at 8 * i - 23 (stride 8, total padding 23).
    assert len(rows) == len(cols) == 70
    assert rows.tolist() == list(range(8 * i - 23, 8 * i - 23 + 70))
    assert cols.tolist() == list(range(8 * j - 23, 8 * j - 23 + 70))
    assert bool(support[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all())


def test_registry() -> None:
    assert {"pix2pix", "pix2pix-nosar"} <= set(list_models())
    sar = build_model("pix2pix", ngf=4, num_downs=5)
    nosar = build_model("pix2pix-nosar", ngf=4, num_downs=5)
    assert isinstance(sar, Pix2PixGenerator) and isinstance(nosar, Pix2PixGenerator)
    assert (sar.include_sar, nosar.include_sar) == (True, False)
    assert (sar.registry_name, nosar.registry_name) == ("pix2pix", "pix2pix-nosar")
    assert nosar.config.in_channels == 13
    with pytest.raises(ValueError, match="no SAR input"):
        build_model("pix2pix-nosar", include_sar=True)
