"""Training: presets and config resolution, the training loop, checkpoints, distributed runs.

- :func:`resolve_config` / :func:`load_preset`: preset YAML + ``a.b=value`` overrides
  -> validated config (docs/training.md lists every key).
- :func:`train`: one loop for every registered model (``kptool.models``).
- :func:`load_checkpoint`, :func:`export_weights`: checkpoint files.
"""

from kptool.train.checkpoint import export_weights, find_checkpoint, load_checkpoint
from kptool.train.config import available_presets, load_preset, resolve_config
from kptool.train.loop import TrainingDiverged, TrainingInterrupted, train

__all__ = ["available_presets", "load_preset", "resolve_config", "train", "TrainingInterrupted",
           "TrainingDiverged", "load_checkpoint", "export_weights", "find_checkpoint"]
