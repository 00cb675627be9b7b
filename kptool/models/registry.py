"""Models by name: presets pick a class with ``model.name``, the other keys are its arguments."""

from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from kptool.registry import Registry

MODELS = Registry("model")


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make a model buildable from a preset as ``model: {name: <name>, ...}``."""
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        MODELS.add(name, cls)
        cls.model_name = name
        return cls
    return add


def build_model(cfg: dict[str, Any]) -> nn.Module:
    """Instantiate the ``model:`` section of a preset: ``cfg["name"]`` picks the class, the rest are kwargs."""
    return MODELS.build(cfg)
