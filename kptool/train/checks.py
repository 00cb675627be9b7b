"""Checks of a training setup that raise before a run writes anything.

Some settings only fail when first used: scheduler options at the first scheduler step (after a
whole epoch, or at epoch 40 for ``step``), optimizer options at the first optimizer step, an odd
batch size of a paired model at the first batch, a checkpoint of another architecture at
``load_state_dict``. Each check here runs that use on a stand-in (or on the real objects) first.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from kptool.errors import InputError, KptoolError

# Scheduler steps tried on a stand-in; enough to reach any step a preset sets (StepLR's default is 40).
SCHEDULER_TRIAL_STEPS = 1000


def _options_text(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items()) or "none"


def check_optimizer_and_scheduler(train_cfg: dict[str, Any]) -> None:
    """Build the optimizer and scheduler on a stand-in parameter and run their steps for the run's epochs."""
    from kptool.train.loop import _build_scheduler, build_optimizer

    stand_in = nn.Linear(2, 1)
    opts = train_cfg["optimizer_options"]
    try:
        optimizer = build_optimizer(stand_in, train_cfg)
        stand_in(torch.ones(1, 2)).sum().backward()
        optimizer.step()
    except (TypeError, ValueError, RuntimeError, KptoolError) as e:
        raise KptoolError(f"train.optimizer_options ({_options_text(opts)}) do not fit optimizer "
                          f"{train_cfg['optimizer']!r}: {_reason(e)}") from None
    sched_opts = train_cfg["scheduler_options"]
    try:
        scheduler = _build_scheduler(optimizer, train_cfg)
        # at least 200 steps: StepLR first applies gamma at step_size (40 by default)
        for _ in range(min(max(train_cfg["epochs"], 200), SCHEDULER_TRIAL_STEPS)):
            optimizer.step()
            scheduler.step()
            lr = optimizer.param_groups[0]["lr"]
            if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
                raise ValueError(f"the learning rate becomes {lr!r}")
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError, OverflowError, KptoolError) as e:
        raise KptoolError(f"train.scheduler_options ({_options_text(sched_opts)}) do not fit scheduler "
                          f"{train_cfg['scheduler']!r}: {_reason(e)}") from None


def check_batch_size(train_cfg: dict[str, Any], model: nn.Module) -> None:
    if getattr(model, "paired", False) and train_cfg["batch_size"] % 2:
        raise KptoolError(f"train.batch_size must be even for the paired model {type(model).__name__}, "
                          f"got {train_cfg['batch_size']}")


def check_model_fits_data(model: nn.Module, config: dict[str, Any]) -> None:
    """The model's own limits on the data (a PointNet++ backbone needs a minimum number of points)."""
    need = getattr(model, "min_points", None) or getattr(getattr(model, "backbone", None), "min_points", None)
    points = config["data"]["points"]
    if isinstance(need, int) and points < need:
        raise KptoolError(f"model {config['model']['name']!r} needs at least {need} points per shape; "
                          f"data.points is {points} (prepare the data with --points {need} or more)")


def check_shapes(dataset) -> None:
    """Read every shape of ``dataset`` once: a broken file fails now, not in the middle of an epoch.

    A dataset with its own ``check()`` (rendered images: thousands of views) runs that instead."""
    if hasattr(dataset, "check"):
        dataset.check()
        return
    for i in range(len(dataset)):
        dataset[i]


def check_resumable(path, state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler) -> None:
    """Load a checkpoint's states into the run's objects, naming ``path`` and the part that does not fit."""
    for key, kind in (("epoch", int), ("batch", int), ("step", int), ("running", dict), ("rng", dict),
                      ("history", list), ("optimizer", dict), ("scheduler", dict)):
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise InputError(path, f"not a resumable training checkpoint: {key!r} is missing or not a "
                                   f"{kind.__name__}")
    for what, target in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler)):
        try:
            target.load_state_dict(state[what])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            raise InputError(path, f"its {what} state does not fit this run's {what} "
                                   f"({_reason(e)})") from None


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else e.__class__.__name__
