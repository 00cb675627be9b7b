"""Models by name: presets pick a class with ``model.name``, the other keys are its arguments."""

from __future__ import annotations

from typing import Any, Callable

from kptool.models.base import Model, check_contract
from kptool.registry import Registry

MODELS = Registry("model")


def register_model(name: str) -> Callable[[type[Model]], type[Model]]:
    """Class decorator: make a model buildable from a preset as ``model: {name: <name>, ...}``.

    The class must follow the contract of :class:`kptool.models.base.Model` (its declared
    batch fields and outputs are checked here).
    """
    def add(cls: type[Model]) -> type[Model]:
        check_contract(cls)
        MODELS.add(name, cls)
        cls.model_name = name
        return cls
    return add


def upgrade_model_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A ``model:`` section in today's form (older configs stored in checkpoints are rewritten)."""
    cls = MODELS.get(cfg.get("name"))
    return cls.upgrade_config(dict(cfg))


def build_model(cfg: dict[str, Any]) -> Model:
    """Instantiate the ``model:`` section of a preset: ``cfg["name"]`` picks the class, the rest are kwargs."""
    return MODELS.build(upgrade_model_config(cfg))
