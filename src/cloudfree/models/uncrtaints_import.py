"""Import the published UnCRtainTS checkpoints (PyTorch ``.pth.tar`` + ``conf.json``) into
:class:`~cloudfree.models.uncrtaints.UnCRtainTS`.

What upstream (``PatrickTUM/UnCRtainTS`` @5e1f1b5) writes:

- ``<experiment>/model.pth.tar`` (``model_utils.save_model``): a dict with ``state_dict`` (the
  wrapper's, every key prefixed ``netG.``), ``state_dict_G`` (the network's, no prefix; absent
  in some older files), ``epoch``, ``optimizer_G`` and ``scheduler_G``. Older checkpoints name
  the blocks ``in_block1``, ``out_block1`` ... ``out_block5`` (1-based) where the current code
  has ``in_block.0`` ... (upstream's ``load_checkpoint`` renames them, then loads with
  ``strict=False``, so a mismatch there goes unnoticed).
- ``<experiment>/conf.json``: every flag of the run, after the training script's adjustments
  (``out_conv`` already counts the variance channels: ``[26]`` for the Gaussian-NLL models).

Mapping: our module tree has upstream's names, so after the prefix and the block renaming every
upstream tensor maps to the tensor of the same name; the converter checks that the sets are
equal and every shape matches, and refuses otherwise, naming the tensors. Multi-temporal
checkpoints (``pretrain`` false: the L-TAE's tensors ``temporal_encoder.*``) become
:class:`~cloudfree.models.uncrtaints_mt.UnCRtainTSMT`.

The flags read from ``conf.json`` (and checked): ``model`` ("uncrtaints"), ``pretrain`` (true:
mono-temporal, false: multi-temporal), ``block_type`` ("mbconv"), ``use_sar``,
``encoder_widths``, ``decoder_widths``, ``out_conv``, ``covmode``, ``encoder_norm``,
``decoder_norm``, ``mean_nonLinearity``, ``var_nonLinearity``, ``scale_by``, ``separate_out``;
multi-temporal also ``input_t``, ``n_head``, ``d_model``, ``d_k``, ``agg_mode``,
``positional_encoding``, ``pad_value`` and ``use_v`` (false: the values variant of the L-TAE
is not implemented).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cloudfree.bands import NUM_S2_BANDS
from cloudfree.errors import DataError
from cloudfree.models.uncrtaints import UnCRtainTS, UnCRtainTSConfig
from cloudfree.models.uncrtaints_mt import UnCRtainTSMT, UnCRtainTSMTConfig

_CONF = "the conf.json saved beside the checkpoint by UnCRtainTS's train_reconstruct.py"
_CKPT = "an UnCRtainTS checkpoint (model.pth.tar with 'state_dict' or 'state_dict_G')"
_LEGACY_BLOCK = re.compile(r"^(in_block|out_block)(\d+)\.")


def _int_list(value: Any, key: str, path: str | os.PathLike[str] | None) -> list[int]:
    """``"[128,128]"`` (argparse string) or ``[128, 128]`` -> list of ints."""
    if isinstance(value, str):
        value = [v for v in value.strip().strip("[]").split(",") if v.strip()]
    try:
        out = [int(v) for v in value]
    except (TypeError, ValueError):
        raise DataError(path, f"conf.json {key} is {value!r}", "a list of ints") from None
    if not out:
        raise DataError(path, f"conf.json {key} is empty", "a list of ints")
    return out


def read_conf(conf: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """The flags of an UnCRtainTS run, from a ``conf.json`` file (or an already read dict).

    Raises:
        DataError: missing or unreadable file, or not a JSON object.
    """
    if isinstance(conf, Mapping):
        return dict(conf)
    path = Path(conf)
    if not path.is_file():
        raise DataError(
            path,
            "conf.json not found",
            f"{_CONF}; every published checkpoint folder has one: pass it with --conf",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(path, f"not a readable JSON file: {e}", _CONF) from e
    if not isinstance(data, dict):
        raise DataError(path, f"holds a JSON {type(data).__name__}, not an object", _CONF)
    return data


def config_from_conf(
    conf: str | os.PathLike[str] | Mapping[str, Any],
) -> UnCRtainTSConfig:
    """The :class:`UnCRtainTSConfig` of a run's flags (see the module docstring).

    Raises:
        DataError: a flag this implementation does not cover (residual blocks, the L-TAE with
            values, another model, several output layers), or values that do not fit together.
    """
    path = None if isinstance(conf, Mapping) else conf
    c = read_conf(conf)
    model = c.get("model", "uncrtaints")
    if model != "uncrtaints":
        raise DataError(path, f"conf.json is for model {model!r}", "model 'uncrtaints'")
    temporal = not c.get("pretrain", False)
    if temporal and c.get("use_v", False):
        raise DataError(
            path,
            "is a multi-temporal configuration with use_v (the L-TAE with values and an MLP), "
            "which cloudfree does not implement",
            "a multi-temporal checkpoint trained without --use_v (the README's command)",
        )
    if c.get("block_type", "mbconv") != "mbconv":
        raise DataError(
            path, f"block_type {c.get('block_type')!r} is not implemented", "block_type 'mbconv'"
        )
    enc = _int_list(c.get("encoder_widths", [128]), "encoder_widths", path)
    dec = _int_list(c.get("decoder_widths", [128] * 5), "decoder_widths", path)
    out_conv = _int_list(c.get("out_conv", [NUM_S2_BANDS]), "out_conv", path)
    if len(out_conv) != 1:
        raise DataError(path, f"out_conv {out_conv} has several layers", "one output layer")
    covmode = c.get("covmode", "diag")
    extra = out_conv[0] - NUM_S2_BANDS
    want = {"iso": 1, "diag": NUM_S2_BANDS, "uni": NUM_S2_BANDS}.get(covmode)
    if extra == 0:
        covmode = None  # the L2 models: the variance head was never added
    elif want is None or extra != want:
        raise DataError(
            path,
            f"out_conv {out_conv} does not fit covmode {covmode!r}",
            f"{NUM_S2_BANDS} outputs (mean only) or {NUM_S2_BANDS} + 13 (diag, uni) / + 1 (iso)",
        )
    try:
        base = UnCRtainTSConfig(
            include_sar=bool(c.get("use_sar", False)),
            encoder_widths=tuple(enc),
            decoder_widths=tuple(dec),
            encoder_norm=str(c.get("encoder_norm", "group")),
            decoder_norm=str(c.get("decoder_norm", "batch")),
            covmode=covmode,
            mean_sigmoid=bool(c.get("mean_nonLinearity", True)),
            var_nonlinearity=str(c.get("var_nonLinearity", "softplus")),
            scale_by=float(c.get("scale_by", 1.0)),
            separate_out=bool(c.get("separate_out", False)),
        )
        if not temporal:
            return base
        return UnCRtainTSMTConfig(
            **base.to_dict(),  # type: ignore[arg-type]
            input_t=int(c.get("input_t", 3)),
            n_head=int(c.get("n_head", 16)),
            d_model=int(c.get("d_model", 256)),
            d_k=int(c.get("d_k", 4)),
            agg_mode=str(c.get("agg_mode", "att_group")),
            positional_encoding=bool(c.get("positional_encoding", True)),
            pad_value=float(c.get("pad_value", 0)),
        )
    except (TypeError, ValueError) as e:
        raise DataError(path, f"conf.json flags are not a valid UnCRtainTS: {e}") from e


def read_upstream_state(checkpoint: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The network's tensors of an upstream checkpoint, under upstream's current names.

    Reads ``state_dict_G`` if present, else ``state_dict`` without its ``netG.`` prefix; renames
    the 1-based block names of older files (``in_block1.`` -> ``in_block.0.``). Loaded with
    ``weights_only=True``: no code in the file runs.

    Raises:
        DataError: missing or unreadable file, or no state dict in it.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise DataError(path, "checkpoint not found", _CKPT)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises pickle, zip and runtime errors alike
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if found or "Weights only load failed" in str(e):
            # torch's notice is a page of advice on how to run the file's code: not here.
            what = f" (e.g. {found[1]})" if found else ""
            raise DataError(
                path,
                f"holds Python objects besides tensors{what}; cloudfree loads checkpoints "
                "without running code in them",
                "the weights alone: in Python, torch.save({'state_dict': "
                "ckpt['state_dict']}, 'weights.pth.tar') where you trust the file",
            ) from None
        raise DataError(path, f"not a readable PyTorch checkpoint: {e}", _CKPT) from e
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict_G"), Mapping):
        raw = dict(obj["state_dict_G"])
    elif isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        raw = {k.removeprefix("netG."): v for k, v in obj["state_dict"].items()}
    elif isinstance(obj, Mapping) and obj and all(torch.is_tensor(v) for v in obj.values()):
        raw = dict(obj)  # a bare state dict
    else:
        keys = sorted(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise DataError(path, f"holds no state dict (found {keys})", _CKPT)
    state: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if not torch.is_tensor(value):
            raise DataError(path, f"entry {key!r} is not a tensor", _CKPT)
        m = _LEGACY_BLOCK.match(key)
        if m:  # in_block1.x -> in_block.0.x (upstream load_checkpoint's renaming)
            key = f"{m.group(1)}.{int(m.group(2)) - 1}.{key[m.end() :]}"
        state[key] = value
    return state


def load_upstream(
    checkpoint: str | os.PathLike[str], conf: str | os.PathLike[str] | Mapping[str, Any]
) -> UnCRtainTS | UnCRtainTSMT:
    """The published model of ``checkpoint`` built from ``conf``, weights loaded, eval mode.

    Raises:
        DataError: see :func:`config_from_conf` and :func:`read_upstream_state`; or tensors that
            do not fit the configuration (listed by name: missing, unexpected, wrong shape).
    """
    from cloudfree.models.weights import check_state

    config = config_from_conf(conf)
    state = read_upstream_state(checkpoint)
    kind = UnCRtainTSMT if isinstance(config, UnCRtainTSMTConfig) else UnCRtainTS
    with torch.device("meta"):
        model = kind(**config.to_dict())  # type: ignore[arg-type]
    try:
        check_state(model, state, checkpoint)
    except DataError as e:
        raise DataError(
            checkpoint,
            f"{e.problem}; the conf.json describes {config.name} with widths "
            f"{list(config.encoder_widths)} / {list(config.decoder_widths)}, covmode "
            f"{config.covmode!r}" + _temporal_text(config),
            "the conf.json of this very checkpoint (the one saved in its folder)",
        ) from None
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _temporal_text(config: UnCRtainTSConfig) -> str:
    if not isinstance(config, UnCRtainTSMTConfig):
        return " (mono-temporal: pretrain true)"
    return f" (multi-temporal: {config.n_head} heads, d_model {config.d_model}, d_k {config.d_k})"


def convert_uncrtaints(
    checkpoint: str | os.PathLike[str],
    conf: str | os.PathLike[str] | Mapping[str, Any],
    out: str | os.PathLike[str],
) -> dict[str, Any]:
    """Convert an upstream checkpoint to a cloudfree safetensors file (written atomically).

    ``load_weights(out)`` rebuilds the model; its scaling (``"reflectance"``: S2 / 10000, S1
    [-25, 0] dB to [0, 1]) is the model's, so ``predict`` and ``evaluate`` apply it unasked.

    Returns:
        Summary: ``model`` (registry name), ``include_sar``, ``covmode``, ``parameters``,
        ``tensors``, ``source``, ``out``.
    """
    from cloudfree.models.weights import save_weights

    model = load_upstream(checkpoint, conf)
    flags = read_conf(conf)
    meta = {
        "source": Path(checkpoint).name,
        "converted_from": "uncrtaints",
        "experiment_name": str(flags.get("experiment_name", "")),
        "loss": str(flags.get("loss", "")),
    }
    save_weights(model, out, metadata=meta)
    return {
        "model": model.registry_name,
        "include_sar": model.include_sar,
        "covmode": model.config.covmode,
        "parameters": sum(p.numel() for p in model.parameters()),
        "tensors": len(model.state_dict()),
        "source": str(checkpoint),
        "out": str(out),
    }
