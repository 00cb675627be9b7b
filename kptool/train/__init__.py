"""Training: presets and config resolution, the training loop, checkpoints, distributed runs.

- :func:`resolve_config` / :func:`load_preset`: preset YAML + ``a.b=value`` overrides
  -> validated config (docs/training.md lists every key).
- :func:`train`: one loop for every registered model (``kptool.models``).
- :func:`load_checkpoint`, :func:`export_weights`: checkpoint files.
"""

import importlib
from typing import Any

# Imported on first use: `kptool train` validates its config before torch is loaded (fast errors).
_HOMES = {"export_weights": "checkpoint", "find_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
          "available_presets": "config", "load_preset": "config", "resolve_config": "config",
          "TrainingDiverged": "loop", "TrainingInterrupted": "loop", "train": "loop"}

__all__ = ["available_presets", "load_preset", "resolve_config", "train", "TrainingInterrupted",
           "TrainingDiverged", "load_checkpoint", "export_weights", "find_checkpoint"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"kptool.train.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'kptool.train' has no attribute {name!r}")
