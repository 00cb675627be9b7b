"""Checkpoints and exported weights: plain dicts that ``torch.load(weights_only=True)`` reads.

A training checkpoint (``checkpoints/last.pt``, ``best.pt``, ``epoch-NNN.pt``)::

    {"format": "kptool-checkpoint", "version": 1,
     "config": {...},                 # the resolved config (plain dict)
     "model": state_dict, "optimizer": state_dict, "scheduler": state_dict,
     "epoch": 3,                      # epochs fully done
     "batch": 0,                      # batches done in epoch ``epoch`` (> 0 only after Ctrl-C)
     "step": 120,                     # optimiser steps done
     "running": {"loss": 1.2, ...},   # sums of the unfinished epoch's loss components
     "rng": {...},                    # torch, CUDA, numpy and Python RNG states
     "best": {"metric": "das", "value": 0.8, "epoch": 3} or None,
     "history": [{"epoch": 1, "train": {...}, "val": {...}, ...}, ...],
     "interrupted": false, "data_dir": "/path/to/prepared", "world_size": 1,
     "frame": {"normalize": "skeleton-merger", ...}}   # the training data's manifest "frame"

Exported weights (``kptool export-weights``, and the default weights shipped in
``kptool/weights/``) keep only what detection needs::

    {"format": "kptool-weights", "version": 1, "config": {...}, "model": state_dict, "frame": {...},
     "meta": {"category": "chair", "epoch": 80, "best": {...}, "source": "chair-mutual"}}   # the run folder's name
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kptool.errors import InputError
from kptool.io.atomic import atomic_path

CHECKPOINT_FORMAT = "kptool-checkpoint"
WEIGHTS_FORMAT = "kptool-weights"
VERSION = 1


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from, as tensors and plain values."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`; CUDA states only when the device count matches."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> Path:
    """Write atomically: a crash or Ctrl-C while saving leaves the previous file intact."""
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint or exported weights (``weights_only=True``) and check its format."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such checkpoint file")
    try:
        with warnings.catch_warnings():   # e.g. "Detected pickle protocol 4": noise about a file refused anyway
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError... for bad files
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        # torch's message suggests weights_only=False: never relay that, it would run the file's code
        if "Unsupported global" in str(e):
            raise InputError(p, "not a kptool checkpoint: it holds Python objects that only unrestricted "
                                "unpickling could load, which could run code; not loaded, for safety") from None
        if "Weights only load failed" in str(e):
            first = "damaged, or not written by torch.save"
        raise InputError(p, f"not a readable kptool checkpoint ({first})") from None
    if not isinstance(obj, dict) or obj.get("format") not in (CHECKPOINT_FORMAT, WEIGHTS_FORMAT):
        raise InputError(p, "not a kptool checkpoint (no kptool format tag; was it written by `kptool train`?)")
    if obj.get("version") != VERSION:
        raise InputError(p, f"unsupported checkpoint version {obj.get('version')!r} (this kptool reads {VERSION})")
    config = obj.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) or not config["model"].get("name"):
        raise InputError(p, "checkpoint lacks its config (with a model: section naming the model)")
    if not isinstance(obj.get("model"), dict):
        raise InputError(p, "checkpoint lacks its model weights")
    if obj["format"] == CHECKPOINT_FORMAT:
        for key in ("epoch", "batch", "step"):
            if not isinstance(obj.get(key), int) or isinstance(obj.get(key), bool) or obj[key] < 0:
                raise InputError(p, f"training checkpoint's {key!r} must be a non-negative integer, "
                                    f"got {obj.get(key)!r}")
    return obj


def export_weights(checkpoint: str | os.PathLike, out: str | os.PathLike, category: str | None = None,
                   overwrite: bool = False, half: bool = False) -> Path:
    """Write the slim weights file of a checkpoint (no optimiser, RNG or history).

    ``checkpoint`` is a ``.pt`` file or a run folder (its ``checkpoints/best.pt``,
    else ``last.pt``). With ``half``, floating-point tensors are stored as float16
    (loading casts them back into the model's float32 parameters). Returns the written path.
    """
    src = find_checkpoint(checkpoint)
    ckpt = load_checkpoint(src)
    meta = dict(ckpt.get("meta", {}))
    if ckpt["format"] == CHECKPOINT_FORMAT:
        # The run's name, not its absolute path: weights files get shared and shipped.
        source = src.parent.parent.name if src.parent.name == "checkpoints" else src.stem
        meta.update({"epoch": ckpt.get("epoch"), "best": ckpt.get("best"), "source": source})
    if category is not None:
        meta["category"] = category
    check_weights_fit(src, ckpt)
    model = ckpt["model"]
    if half:
        model = {k: v.half() if v.is_floating_point() else v for k, v in model.items()}
        meta["stored_as"] = "float16"
    weights = {"format": WEIGHTS_FORMAT, "version": VERSION, "config": ckpt["config"], "model": model,
               "frame": ckpt.get("frame", {}), "meta": meta}
    with atomic_path(out, overwrite=overwrite) as tmp:
        torch.save(weights, tmp)
    return Path(out)


def check_weights_fit(path: str | os.PathLike, ckpt: dict[str, Any]) -> None:
    """The checkpoint's weights load into the model its config describes (else InputError naming ``path``)."""
    from kptool.models import build_model
    from kptool.errors import KptoolError

    try:
        model = build_model(ckpt["config"]["model"])
    except KptoolError as e:
        raise InputError(path, f"its config does not describe a model kptool can build ({e})") from None
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise InputError(path, f"its weights do not fit the model in its config ({first[:300]})") from None


def find_checkpoint(run_or_file: str | os.PathLike) -> Path:
    """A ``.pt`` file as given; for a run folder its ``best.pt``, else ``last.pt``."""
    p = Path(run_or_file)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / "checkpoints" / name).is_file():
                return p / "checkpoints" / name
        raise InputError(p, "no checkpoints/best.pt or checkpoints/last.pt in this folder (not a kptool run?)")
    if not p.exists():
        raise InputError(p, "no such checkpoint file or run folder")
    return p
