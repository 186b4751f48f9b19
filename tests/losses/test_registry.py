"""Loss names are checked without torch; every name builds its class."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cloudfree.losses.registry import GAN_MODES, LOSS_CLASSES, LOSS_NAMES


def test_every_name_builds_its_loss() -> None:
    from torch import nn

    from cloudfree.losses import LOSSES, build_loss

    assert tuple(LOSSES) == LOSS_NAMES == ("carl", "l1", "l2", "mgnll", "pix2pix")
    for name in LOSS_NAMES:
        assert isinstance(build_loss(name.upper()), nn.Module), name
        assert type(build_loss(name)).__name__ == LOSS_CLASSES[name].split(":")[1]
    with pytest.raises(KeyError, match="expected one of"):
        build_loss("l3")


def test_config_takes_the_registry_names() -> None:
    from cloudfree.config import LossConfig
    from cloudfree.losses.pix2pix import Pix2PixLoss

    for name in LOSS_NAMES:
        assert LossConfig(name=name).name == name
    with pytest.raises(ValueError, match="unknown loss"):
        LossConfig(name="l3")
    for mode in GAN_MODES:
        assert LossConfig(gan_mode=mode).gan_mode == mode
        Pix2PixLoss(gan_mode=mode)
    with pytest.raises(ValueError, match="unknown GAN objective"):
        LossConfig(gan_mode="wgangp")


def test_naming_a_loss_imports_no_torch() -> None:
    code = (
        "import sys, cloudfree.config, cloudfree.losses; "
        "cloudfree.config.LossConfig(name='mgnll'); print('torch' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["False"]
