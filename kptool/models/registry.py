"""Models by name: presets pick a class with ``model.name``, the other keys are its arguments."""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch.nn as nn

from kptool.errors import KptoolError

MODELS: dict[str, type[nn.Module]] = {}


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make a model buildable from a preset as ``model: {name: <name>, ...}``."""
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {MODELS[name].__name__}")
        MODELS[name] = cls
        cls.model_name = name
        return cls
    return add


def build_model(cfg: dict[str, Any]) -> nn.Module:
    """Instantiate the ``model:`` section of a preset: ``cfg["name"]`` picks the class, the rest are kwargs."""
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if name not in MODELS:
        raise KptoolError(f"unknown model {name!r} (available: {', '.join(sorted(MODELS))})")
    cls = MODELS[name]
    try:
        inspect.signature(cls).bind(**cfg)
    except TypeError as e:
        raise KptoolError(f"model {name!r}: {e}") from None
    return cls(**cfg)
