"""Models by name, so that configs, checkpoints and the CLI can say ``"dsen2cr"``.

A builder is any callable returning an ``nn.Module`` from keyword arguments (a class or a
function). Variants register themselves where they are defined::

    @register_model("pix2pix")
    def pix2pix(**kwargs) -> nn.Module: ...

``cloudfree.models`` imports the built-in variants, so ``build_model("dsen2cr")`` works after
``import cloudfree.models`` (or any of its submodules).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

Builder = Callable[..., nn.Module]
B = TypeVar("B", bound=Builder)

_REGISTRY: dict[str, Builder] = {}


def register_model(name: str) -> Callable[[B], B]:
    """Decorator registering a model builder under ``name``; returns the builder unchanged.

    Raises:
        ValueError: ``name`` is empty or already taken by another builder.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")

    def decorator(builder: B) -> B:
        existing = _REGISTRY.get(name)
        # Same builder again (a module re-imported) is harmless; a different one is a clash.
        if existing is not None and getattr(existing, "__qualname__", None) != getattr(
            builder, "__qualname__", None
        ):
            raise ValueError(f"model name {name!r} is already registered to {existing!r}")
        _REGISTRY[name] = builder
        return builder

    return decorator


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` with constructor arguments ``kwargs``.

    Example: ``build_model("dsen2cr", num_layers=2, feature_size=16)``.

    Raises:
        KeyError: no model of that name (the message lists the registered ones).
    """
    try:
        builder = _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(name), list_models(), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise KeyError(
            f"unknown model {name!r} (model.name); {hint}registered models: "
            f"{', '.join(list_models())}"
        ) from None
    return builder(**kwargs)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)
