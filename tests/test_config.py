"""Config dataclasses, YAML + dotted overrides, presets, and the run-folder record."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import cloudfree
from cloudfree import __version__
from cloudfree.config import (
    PRESETS,
    Config,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    config_to_dict,
    dump_config,
    get_preset,
    load_config,
    save_config,
)

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_are_the_paper_recipe() -> None:
    """Spec section 7 (and 2, 4, 5), written out here independently of the dataclasses."""
    cfg = Config()
    # Nadam lr 7e-5, beta1 0.9, beta2 0.999, eps 1e-8, schedule_decay 0.004, no clipping
    assert cfg.optim.name == "nadam"
    assert cfg.optim.lr == 7e-5
    assert cfg.optim.betas == (0.9, 0.999)
    assert cfg.optim.eps == 1e-8
    assert cfg.optim.momentum_decay == 0.004
    assert cfg.optim.grad_clip_norm is None
    # batch 16, 8 epochs, seed 42
    assert cfg.train.batch_size == 16
    assert cfg.train.epochs == 8
    assert cfg.train.seed == 42
    # 128x128 random crops, DSen2-CR scaling
    assert cfg.data.crop_size == 128
    assert cfg.data.scaling == "dsen2cr"
    # CARL with lambda 1; B = 16 residual blocks of F = 256 features, with SAR
    assert cfg.loss.name == "carl"
    assert cfg.loss.lambda_ == 1.0
    assert cfg.model == ModelConfig(name="dsen2cr", num_layers=16, feature_size=256)
    assert load_config() == cfg


def test_yaml_then_overrides_coerce_types(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "optim:\n"
        "  lr: 7e-5\n"  # YAML 1.1 reads this as a string: must still become a float
        "  betas: [0.8, 0.99]\n"
        "train:\n"
        "  epochs: 3\n"
        "data:\n"
        "  index: /data/index.csv\n",
        encoding="utf-8",
    )
    cfg = load_config(
        path,
        [
            "train.epochs=2",
            "optim.lr=1e-4",
            "optim.betas=[0.9,0.99]",
            "optim.grad_clip_norm=5",
            "model.name=dsen2cr-nosar",
            "data.index=null",
            "data.packed=/shards",
            "train.run_name=2024",  # a text field keeps text that YAML would read as an int
            "train.compile=true",
        ],
    )
    assert cfg.train.epochs == 2 and isinstance(cfg.train.epochs, int)
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == (0.9, 0.99) and isinstance(cfg.optim.betas, tuple)
    assert cfg.optim.grad_clip_norm == 5.0 and isinstance(cfg.optim.grad_clip_norm, float)
    assert cfg.model.name == "dsen2cr-nosar"
    assert cfg.data.index is None
    assert cfg.data.packed == "/shards"
    assert cfg.train.run_name == "2024"
    assert cfg.train.compile is True
    # untouched fields keep the defaults
    assert cfg.train.batch_size == 16 and cfg.loss == LossConfig()


def test_yaml_only_values_and_float_written_without_dot(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr: 7e-5\n  betas: [0.8, 0.99]\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.optim.lr == 7e-5
    assert cfg.optim.betas == (0.8, 0.99)


def test_yaml_may_start_from_a_preset(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("preset: debug_tiny\ntrain:\n  epochs: 1\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.model.num_layers == 2 and cfg.data.crop_size == 32
    assert cfg.train.epochs == 1


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("optim.lrr=1e-4", ["optim.lrr", "'lr'"]),
        ("trian.epochs=2", ["trian", "'train'"]),
        ("train.epoch=2", ["train.epoch", "'epochs'"]),
        ("data.crop=64", ["data.crop", "'crop_size'"]),
    ],
)
def test_unknown_keys_error_with_a_suggestion(override: str, names: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        load_config(None, [override])
    msg = str(info.value)
    for name in names:
        assert name in msg
    assert "did you mean" in msg


def test_unknown_key_in_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  num_layer: 4\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.yaml.*num_layer.*did you mean 'num_layers'"):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.epochs=two", "train.epochs: expected int"),
        ("train.epochs=1.5", "train.epochs: expected int"),
        ("train.batch_size=null", "train.batch_size: expected int, got None"),
        ("optim.lr=fast", "optim.lr: expected float"),
        ("optim.betas=[0.9]", "expected 2 values"),
        ("optim.betas=0.9", "expected a list"),
        ("train.deterministic=3", "expected bool"),
        ("loss.name=l3", "unknown loss 'l3'"),
        ("optim.lr=-1", "optim.lr: must be > 0"),
        ("data.scaling=dn", "unknown protocol"),
        ("train.precision=fp8", "unknown precision"),
        ("optim.grad_clip_norm=0", "grad_clip_norm"),
        ("train.epochs", "section.key=value"),
        ("epochs=2", "one dot"),
    ],
)
def test_bad_values_error(override: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_config(None, [override])


def test_bad_yaml_shapes_error(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_config(path)
    path.write_text("train: 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="section 'train' must be a mapping"):
        load_config(path)


def test_missing_file_or_preset_errors() -> None:
    with pytest.raises(ValueError, match="neither a file nor a preset.*did you mean 'debug_tiny'"):
        load_config("debug_tiyn")
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("nope")


def test_presets_are_the_five_rows_the_hybrids_uncrtaints_and_debug_tiny() -> None:
    assert set(PRESETS) == {
        "dsen2cr_sar_carl",
        "dsen2cr_sar_l1",
        "dsen2cr_nosar_carl",
        "dsen2cr_nosar_l1",
        "pix2pix",
        "hybrid_sar_carl",
        "hybrid_nosar_carl",
        "hybrid_sar_sd_carl",
        "uncrtaints_sar_l2",
        "uncrtaints_sar_nll",
        "uncrtaints_nosar_l2",
        "uncrtaints_nosar_nll",
        "uncrtaints_mt_sar_nll",
        "uncrtaints_mt_sar_l2",
        "uncrtaints_mt_nosar_nll",
        "uncrtaints_mt_nosar_l2",
        "debug_tiny",
    }
    variants = {
        "dsen2cr_sar_carl": ("dsen2cr", "carl", "mask-fill"),
        "dsen2cr_sar_l1": ("dsen2cr", "l1", "mask-fill"),
        "dsen2cr_nosar_carl": ("dsen2cr-nosar", "carl", "mask-fill"),
        "dsen2cr_nosar_l1": ("dsen2cr-nosar", "l1", "mask-fill"),
        "hybrid_sar_carl": ("hybrid", "carl", "mask-fill"),
        "hybrid_nosar_carl": ("hybrid-nosar", "carl", "mask-fill"),
        "hybrid_sar_sd_carl": ("hybrid", "carl", "stable-diffusion"),
        "uncrtaints_sar_l2": ("uncrtaints", "l2", "mask-fill"),
        "uncrtaints_sar_nll": ("uncrtaints", "mgnll", "mask-fill"),
        "uncrtaints_nosar_l2": ("uncrtaints-nosar", "l2", "mask-fill"),
        "uncrtaints_nosar_nll": ("uncrtaints-nosar", "mgnll", "mask-fill"),
        "uncrtaints_mt_sar_nll": ("uncrtaints-mt", "mgnll", "mask-fill"),
        "uncrtaints_mt_nosar_l2": ("uncrtaints-mt-nosar", "l2", "mask-fill"),
    }
    for name, (model, loss, inpaint) in variants.items():
        cfg = load_config(name)
        assert (cfg.model.name, cfg.loss.name, cfg.model.inpaint) == (model, loss, inpaint)
        # the hybrids read the inpainted image, the mask and the cloudy input; only they do
        kwargs = cfg.model.build_kwargs()
        assert ("inpaint" in kwargs) is cfg.model.is_hybrid is model.startswith("hybrid")
        if cfg.model.is_uncrtaints:
            # UnCRtainTS's README recipe: Adam 1e-3, batch 4, 20 epochs, whole patches
            assert (cfg.optim.name, cfg.optim.lr, cfg.train.batch_size) == ("adam", 1e-3, 4)
            assert (cfg.train.epochs, cfg.data.crop_size, cfg.data.augment) == (20, 256, False)
            assert cfg.data.scaling == "reflectance" and cfg.train.precision == "fp32"
            assert (cfg.model.num_layers, cfg.model.feature_size) == (5, 128)
            assert cfg.model.variance is (loss == "mgnll")
            continue
        # everything else is the paper's recipe: strict fp32 (TF32 off), the CARL mask of each
        # crop as the original computes it; the hybrids keep the cached full-patch mask
        assert cfg.optim == OptimConfig() and cfg.train == TrainConfig()
        assert (cfg.train.precision, cfg.train.tf32) == ("fp32", False)
        mask = "cached" if cfg.model.is_hybrid else "crop"
        assert cfg.data == DataConfig(mask=mask)
        assert (cfg.model.num_layers, cfg.model.feature_size) == (16, 256)
    tiny = load_config("debug_tiny")
    assert (tiny.model.num_layers, tiny.model.feature_size) == (2, 16)
    assert tiny.data.crop_size == 32 and tiny.data.num_workers == 0
    assert (tiny.train.batch_size, tiny.train.epochs) == (4, 2)
    assert (tiny.train.checkpoint_every, tiny.train.log_every) == (5, 1)
    assert tiny.optim == OptimConfig()
    # bf16 and TF32 are opt-ins
    fast = load_config("dsen2cr_sar_carl", ["train.precision=bf16", "train.tf32=true"])
    assert (fast.train.precision, fast.train.tf32) == ("bf16", True)
    with pytest.raises(ValueError, match="data.mask=cached"):
        load_config("hybrid_nosar_carl", ["data.mask=crop"])
    with pytest.raises(ValueError, match="unknown mask mode"):
        load_config("dsen2cr_sar_carl", ["data.mask=full"])


def test_repo_yaml_files_equal_the_presets() -> None:
    files = {p.stem: p for p in CONFIGS_DIR.glob("*.yaml")}
    assert set(PRESETS) <= set(files), f"missing in configs/: {set(PRESETS) - set(files)}"
    for name, cfg in PRESETS.items():
        assert load_config(files[name]) == cfg, (
            f"configs/{name}.yaml differs from PRESETS[{name!r}]; regenerate it with "
            "`python -m cloudfree.config configs`"
        )


def test_dump_and_dict_round_trip(tmp_path: Path) -> None:
    cfg = load_config("debug_tiny", ["optim.betas=[0.85,0.995]", "data.root=/x y/z"])
    d = config_to_dict(cfg)
    assert d["optim"]["betas"] == [0.85, 0.995]  # lists, so YAML/JSON can hold them
    json.dumps(d)
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg), encoding="utf-8")
    assert load_config(path) == cfg


def test_save_config_round_trips_and_records_provenance(tmp_path: Path) -> None:
    cfg = load_config("dsen2cr_nosar_l1", ["train.epochs=3", "optim.grad_clip_norm=2.5"])
    run_dir = tmp_path / "runs" / "r1"
    out = save_config(cfg, run_dir)
    assert out == run_dir / "config.yaml"
    assert load_config(out) == cfg
    info = json.loads((run_dir / "run_info.json").read_text(encoding="utf-8"))
    assert info["cloudfree_version"] == __version__
    commit = info["git_commit"]
    repo = Path(cloudfree.__file__).resolve().parents[2]
    if shutil.which("git") and (repo / ".git").exists():
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        assert commit == head and len(commit) == 40
    else:
        assert commit == "unknown"
    assert isinstance(info["created_utc"], str) and info["python"]
    # no temporary files left behind by the atomic writes
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml", "run_info.json"]


def test_save_config_commit_is_unknown_outside_git(tmp_path: Path, monkeypatch) -> None:
    # No git executable on PATH: still writes, with commit "unknown".
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    save_config(Config(), tmp_path / "r")
    info = json.loads((tmp_path / "r" / "run_info.json").read_text(encoding="utf-8"))
    assert info["git_commit"] == "unknown"


def test_configs_are_frozen() -> None:
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.train.epochs = 3  # type: ignore[misc]


def test_a_saved_run_predating_a_field_resumes_with_its_old_behaviour(tmp_path: Path) -> None:
    from cloudfree.config import FIELDS_ADDED, config_to_dict

    # A run's config.yaml as written before data.mask, train.precision's new default and
    # train.tf32 existed: complete sections without those keys.
    old = config_to_dict(load_config("dsen2cr_sar_carl"))
    for section, key in FIELDS_ADDED:
        del old[section][key]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    resumed = load_config(path, saved_run=True)
    assert (resumed.data.mask, resumed.train.precision, resumed.train.tf32) == (
        "cached",
        "auto",
        True,
    )
    fresh = load_config(path)  # a user's YAML without the keys: today's (paper) defaults
    assert (fresh.data.mask, fresh.train.precision, fresh.train.tf32) == ("crop", "fp32", False)
