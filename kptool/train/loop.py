"""The training loop shared by every trainable model.

Model-specific work lives in the model (its declared ``inputs``, ``training_loss(batch)``,
``predict``, ``paired``; :mod:`kptool.models.base`); validation runs the preset's
``train.val_metrics`` (:mod:`kptool.train.validation`), and ``train.best`` picks the
checkpoint to keep, so every method reuses this loop unchanged.

Run folder written by :func:`train` (only by rank 0 under ``torchrun``)::

    RUN/config.yaml               # the resolved configuration
    RUN/log.jsonl                 # one JSON record per epoch: train and validation metrics
    RUN/curves.png                # loss and the best-rule's validation value so far, redrawn every epoch
    RUN/checkpoints/last.pt       # after every epoch, and on Ctrl-C
    RUN/checkpoints/best.pt       # best validation value so far (train.best: metric, mode)
    RUN/checkpoints/epoch-NNN.pt  # every train.keep_every epochs, when set
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from kptool.data.batches import batch_to, collate_shapes
from kptool.data.prepared import PreparedDataset
from kptool.errors import InputError, KptoolError, OutputError
from kptool.io.atomic import write_text
from kptool.train import distributed as dd
from kptool.train.checkpoint import (CHECKPOINT_FORMAT, VERSION, load_checkpoint, rng_state, save_checkpoint,
                                     set_rng_state)
from kptool.train.checks import (check_batch_size, check_model_fits_data, check_optimizer_and_scheduler,
                                 check_resumable, check_shapes)
from kptool.train.config import RESUMABLE_KEYS, config_changes, dump_config, validate_config
from kptool.train.data import check_data_kind, open_split, reads_images
from kptool.train.finetune import init_backbone, label_subset
from kptool.train.sampler import epoch_batches
from kptool.train.validation import validate

RUN_FILES = ("config.yaml", "log.jsonl", "curves.png")


class TrainingInterrupted(KptoolError):
    """Ctrl-C (or SIGTERM) stopped the run after saving a resumable checkpoint."""


class TrainingDiverged(KptoolError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class _StopRequest:
    """First Ctrl-C/SIGTERM asks the loop to stop after the current step; a second Ctrl-C aborts."""

    def __init__(self, log: Callable[[str], None]):
        self.requested = False
        self._log = log
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self._log("stopping after this step to save a checkpoint (Ctrl-C again to abort without saving)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():   # signals only reach the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(model: nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    cls = {"adadelta": torch.optim.Adadelta, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
           "sgd": torch.optim.SGD}[cfg["optimizer"]]
    try:
        return cls(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"], **cfg["optimizer_options"])
    except TypeError as e:
        raise KptoolError(f"train.optimizer_options do not fit {cfg['optimizer']}: {e}") from None


def _build_scheduler(optimizer: torch.optim.Optimizer, cfg: dict[str, Any]):
    opts = cfg["scheduler_options"]
    try:
        if cfg["scheduler"] == "step":
            return torch.optim.lr_scheduler.StepLR(optimizer, **{"step_size": 40, "gamma": 0.5, **opts})
        if cfg["scheduler"] == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, **{"T_max": cfg["epochs"], **opts})
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    except TypeError as e:
        raise KptoolError(f"train.scheduler_options do not fit {cfg['scheduler']}: {e}") from None


def _check_run_folder(out: Path, force: bool) -> list[Path]:
    """A new run needs an empty (or absent) folder; with ``force``, the previous run's files to remove
    (removed only once everything else has been checked)."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return []
    if not force:
        raise OutputError(f"{out}: folder is not empty (use --resume to continue the run in it, "
                          f"or --force to start over)")
    checkpoints = sorted((out / "checkpoints").glob("*.pt")) if (out / "checkpoints").is_dir() else []
    return [out / name for name in RUN_FILES] + checkpoints


def _check_points(dataset: PreparedDataset, points: int) -> None:
    counts = {r.get("num_points") for r in dataset.records}
    if counts != {points}:
        found = ", ".join(str(c) for c in sorted(c for c in counts if c is not None))
        raise InputError(dataset.root, f"{dataset.split} shapes have {found} points but the config trains on "
                                       f"data.points={points} (prepare with --points {points}, "
                                       f"or --set data.points=...)")


def _is_better(value: float, best: dict[str, Any] | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best["value"] if mode == "max" else value < best["value"]


def _best_rule(rule: dict[str, str], values: dict[str, float]) -> dict[str, str]:
    """``train.best``, or the validation loss (lower is better) when the split cannot give its value."""
    return rule if rule["metric"] in values else {"metric": "loss", "mode": "min"}


def _format_metrics(values: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in values.items())


def _after_training(model: nn.Module, ckpt_dir: Path, train_set: PreparedDataset, dev: torch.device,
                    batch_size: int, say: Callable[[str], None]) -> None:
    """A model's ``after_training(train_set, device, batch_size) -> meta`` step, once per kept checkpoint.

    Each checkpoint gets it with its own weights (e.g. an embedding model's database of
    set means, which must match them); ``last.pt`` goes last, so the model ends with the
    final weights. What the step returns is recorded under the checkpoint's ``meta``.
    """
    paths = sorted(p for p in ckpt_dir.glob("*.pt") if p.name != "last.pt") + [ckpt_dir / "last.pt"]
    for path in paths:
        if not path.is_file():
            continue
        state = load_checkpoint(path)
        model.load_state_dict(state["model"])
        state["meta"] = {**state.get("meta", {}), **model.after_training(train_set, dev, batch_size)}
        state["model"] = model.state_dict()
        save_checkpoint(path, state)
    say(f"after training: {type(model).__name__} finished {len(paths)} checkpoint(s)")


def train(config: dict[str, Any], data_dir: str | os.PathLike | None, out_dir: str | os.PathLike,
          device: str | torch.device = "auto", resume: bool = False, force: bool = False,
          progress=None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``config["model"]`` on the train split of a prepared dataset (or of a rendered one: image models).

    Args:
        config: a resolved config (:func:`kptool.train.resolve_config`). With
            ``resume`` only the keys in ``RESUMABLE_KEYS`` may differ from the run's.
        data_dir: prepared dataset folder (``kptool render`` folder for image models, see
            :mod:`kptool.train.data`); with ``resume`` it may be ``None`` (the run's).
        out_dir: run folder (see the module docstring).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``; under ``torchrun`` on CUDA
            each process uses ``cuda:LOCAL_RANK``.
        resume: continue from ``out_dir/checkpoints/last.pt`` exactly where it stopped.
        force: start over in a non-empty run folder (removes its previous run files).
        progress: a ``rich.progress.Progress`` to show batches and the loss in, or ``None``.
        log: called with one-line messages (epoch summaries), or ``None``.

    Returns a summary dict: run folder, epochs and steps done, last train and
    validation metrics, best checkpoint. Raises :class:`TrainingInterrupted` after
    Ctrl-C (checkpoint saved) and :class:`TrainingDiverged` on a NaN/inf loss.
    """
    from kptool.device import resolve_device
    from kptool.models import build_model
    from kptool.viz import plot_training_curves

    say = log or (lambda message: None)
    info = dd.dist_info()
    dev = dd.setup(info, device if isinstance(device, torch.device) else resolve_device(str(device)))
    say_main = say if info.is_main else (lambda message: None)
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    try:
        state, stale = None, []
        if resume:
            state = load_checkpoint(ckpt_dir / "last.pt")
            bad = [k for k in config_changes(validate_config(state["config"]), config)
                   if k not in RESUMABLE_KEYS and k not in ("name", "description")]
            if bad:
                raise KptoolError(f"cannot change {', '.join(bad)} when resuming {out} (start a new run instead)")
            data_dir = data_dir or state.get("data_dir")
            if state["epoch"] >= config["train"]["epochs"]:
                raise KptoolError(f"{out}: run already finished {state['epoch']} epochs; "
                                  f"pass a larger --epochs to train longer")
        else:
            stale = _check_run_folder(out, force)
        if data_dir is None:
            raise KptoolError("no prepared dataset given (--data)")
        tcfg = config["train"]
        check_optimizer_and_scheduler(tcfg)
        _seed_everything(tcfg["seed"])
        try:
            model = build_model(config["model"]).to(dev)
        except KptoolError as e:
            if state is None:
                raise
            raise InputError(ckpt_dir / "last.pt", f"its model cannot be built ({e})") from None
        # prepared shapes, or rendered images for a model that reads images (kptool.train.data)
        check_data_kind(data_dir, model, config)
        images = reads_images(model)
        train_set = open_split(data_dir, "train", model, config)
        if not images:
            train_set = label_subset(train_set, tcfg["label_fraction"], tcfg["seed"])
        what = "views" if images else "shapes"
        if len(train_set) < 2:
            raise InputError(data_dir, f"the train split has {len(train_set)} {what}; training needs at least 2")
        if not images:
            _check_points(train_set, config["data"]["points"])
        val_set = None
        if tcfg["val_every"] > 0:
            val_set = open_split(data_dir, tcfg["val_split"], model, config)
            if len(val_set) == 0:
                say_main(f"note: the {tcfg['val_split']} split is empty: no validation, no best.pt")
                val_set = None
            elif not images:
                _check_points(val_set, config["data"]["points"])
        if tcfg["init"] and state is None:
            copied = init_backbone(model, tcfg["init"])
            say_main(f"backbone initialised from {tcfg['init']} ({copied} tensors)")
        check_batch_size(tcfg, model)
        check_model_fits_data(model, config)
        for split_set in (train_set, val_set):
            if split_set is not None:
                check_shapes(split_set)
        torch_data = train_set.torch_dataset(model.inputs)   # checks the fields (extras tables) before writing
        if val_set is not None:
            val_set.torch_dataset(model.inputs)
        paired = bool(getattr(model, "paired", False))
        optimizer = build_optimizer(model, tcfg)
        scheduler = _build_scheduler(optimizer, tcfg)
        step_fn = dd.wrap(model, info, dev)

        epoch, batch_done, step = 0, 0, 0
        running: dict[str, float] = {}
        best, history = None, []
        if state is not None:
            check_resumable(ckpt_dir / "last.pt", state, model, optimizer, scheduler)   # loads the states
            epoch, batch_done, step = state["epoch"], state["batch"], state["step"]
            running, best, history = dict(state["running"]), state["best"], list(state["history"])
            set_rng_state(state["rng"])
            say_main(f"resuming {out} at epoch {epoch + 1}" + (f", batch {batch_done + 1}" if batch_done else ""))
        dd.barrier(info)   # every process has checked the run folder before rank 0 writes into it
        if info.is_main:   # everything is checked: now the run folder may change
            for f in stale:
                f.unlink(missing_ok=True)
            write_text(out / "config.yaml", dump_config(config))

        def checkpoint(interrupted: bool = False) -> dict[str, Any]:
            return {"format": CHECKPOINT_FORMAT, "version": VERSION, "config": config,
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epoch, "batch": batch_done, "step": step,
                    "running": dict(running), "rng": rng_state(), "best": best, "history": history,
                    "interrupted": interrupted, "data_dir": str(Path(data_dir).resolve()),
                    # how the data was normalised: detection on raw files must do the same
                    "frame": train_set.manifest.get("frame", {}),
                    "world_size": info.world_size}

        task = progress.add_task("training", total=None, status="") if progress is not None and info.is_main \
            else None
        model.train()
        with _StopRequest(say) as stop:
            while epoch < tcfg["epochs"]:
                started = time.perf_counter()
                batches = epoch_batches(len(train_set), tcfg["batch_size"], epoch, tcfg["seed"], paired,
                                        info.rank, info.world_size)
                if not batches:
                    raise KptoolError(f"train.batch_size={tcfg['batch_size']} leaves no batch: the train split "
                                      f"has {len(train_set)} shapes for {info.world_size} process(es)")
                loader = torch.utils.data.DataLoader(
                    torch_data, batch_sampler=batches[batch_done:], collate_fn=collate_shapes,
                    num_workers=tcfg["num_workers"],
                    # a private generator: the global RNG stays untouched, so resumed runs match
                    generator=torch.Generator().manual_seed(tcfg["seed"] * 100_003 + epoch))
                if task is not None:
                    progress.reset(task, total=len(batches), completed=batch_done,
                                   description=f"epoch {epoch + 1}/{tcfg['epochs']}")
                for batch in loader:
                    if dd.any_process(stop.requested, info, dev):
                        if info.is_main:
                            save_checkpoint(ckpt_dir / "last.pt", checkpoint(interrupted=True))
                        raise TrainingInterrupted(
                            f"interrupted at epoch {epoch + 1}, batch {batch_done + 1}; checkpoint saved in "
                            f"{ckpt_dir / 'last.pt'}; continue with: kptool train --resume --out {out}")
                    loss, parts = step_fn(batch_to(batch, dev, non_blocking=True))
                    names = ["loss", *(k for k in parts if k != "loss")]
                    values = dd.all_mean(torch.stack([loss.detach().float()] + [
                        torch.as_tensor(float(parts[k]), device=dev) for k in names[1:]]), info).tolist()
                    if not all(math.isfinite(v) for v in values):
                        bad = ", ".join(f"{k}={v}" for k, v in zip(names, values) if not math.isfinite(v))
                        kept = (f"the last good checkpoint is {ckpt_dir / 'last.pt'} (epoch {epoch})"
                                if (ckpt_dir / "last.pt").is_file() else "no checkpoint was saved yet")
                        raise TrainingDiverged(
                            f"loss became non-finite ({bad}) at epoch {epoch + 1}, batch {batch_done + 1} "
                            f"(step {step + 1}); {kept}; try a lower --lr or train.grad_clip")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if tcfg["grad_clip"]:
                        nn.utils.clip_grad_norm_(model.parameters(), tcfg["grad_clip"])
                    optimizer.step()
                    step += 1
                    batch_done += 1
                    for k, v in zip(names, values):
                        running[k] = running.get(k, 0.0) + v
                    running["batches"] = running.get("batches", 0.0) + 1
                    if task is not None:
                        progress.update(task, completed=batch_done, status=f"loss {values[0]:.4g}")

                n = running.pop("batches")
                record: dict[str, Any] = {"epoch": epoch + 1, "step": step,
                                          "lr": optimizer.param_groups[0]["lr"],
                                          "train": {k: v / n for k, v in running.items()}}
                scheduler.step()
                epoch, batch_done, running = epoch + 1, 0, {}
                last_epoch = epoch == tcfg["epochs"]
                improved = False
                if info.is_main and val_set is not None and (epoch % tcfg["val_every"] == 0 or last_epoch):
                    record["val"] = validate(model, val_set, dev, tcfg["batch_size"], tcfg["val_metrics"])
                    rule = _best_rule(tcfg["best"], record["val"])
                    if rule is not tcfg["best"] and not any("val" in r for r in history):   # once: first validation
                        say(f"note: validation gives no {tcfg['best']['metric']!r} (values: "
                            f"{', '.join(record['val'])}); best.pt follows the validation loss")
                    if rule["metric"] in record["val"] and _is_better(record["val"][rule["metric"]], best,
                                                                      rule["mode"]):
                        best = {"metric": rule["metric"], "value": record["val"][rule["metric"]], "epoch": epoch}
                        improved = True
                record["time_s"] = round(time.perf_counter() - started, 3)
                history.append(record)
                if info.is_main:
                    ckpt = checkpoint()
                    save_checkpoint(ckpt_dir / "last.pt", ckpt)
                    if improved:
                        save_checkpoint(ckpt_dir / "best.pt", ckpt)
                    if tcfg["keep_every"] and epoch % tcfg["keep_every"] == 0:
                        save_checkpoint(ckpt_dir / f"epoch-{epoch:03d}.pt", ckpt)
                    write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history))
                    plot_training_curves({out.resolve().name: history}, out / "curves.png",
                                         metric=_best_rule(tcfg["best"], record.get("val", {}))["metric"])
                    val_text = f" | val {_format_metrics(record['val'])}" if "val" in record else ""
                    say(f"epoch {epoch}/{tcfg['epochs']}: {_format_metrics(record['train'])}{val_text}"
                        + (" (best)" if improved else ""))
        if info.is_main and hasattr(model, "after_training"):
            _after_training(model, ckpt_dir, train_set, dev, tcfg["batch_size"], say_main)
        return {"run": str(out), "epochs": epoch, "steps": step, "world_size": info.world_size,
                "train": history[-1]["train"] if history else {},
                "val": next((r["val"] for r in reversed(history) if "val" in r), {}),
                "best": best,
                "checkpoint": str(ckpt_dir / ("best.pt" if best is not None else "last.pt"))}
    finally:
        dd.teardown(info)
