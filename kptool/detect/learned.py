"""Detectors from trained weights: run folders, checkpoints, and the shipped default weights."""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kptool.errors import InputError, KptoolError


class CheckpointDetector:
    """A trained keypoint model behind the :class:`~kptool.detect.base.Detector` protocol.

    Takes clouds in the prepared frame (the frame the model was trained in) and
    returns ordered keypoints (index = semantic slot) in the same frame.

    Attributes:
        name: the preset name the weights were trained with.
        ordered: True.
        num_keypoints: K.
        num_points: points per cloud the model was trained on (``data.points``).
        normalize: normalisation of the training data; raw inputs must get the same.
        category: the category the weights were made for, when known (weights files).
        config: the resolved training config.
    """

    ordered = True
    category: str | None = None

    def __init__(self, model: torch.nn.Module, config: dict[str, Any], device: torch.device,
                 normalize: str = "skeleton-merger", batch_size: int = 16):
        self.model = model.to(device).eval()
        self.config = config
        self.device = device
        self.normalize = normalize
        self.batch_size = batch_size
        self.name = str(config.get("name") or config["model"]["name"])
        self.ordered = bool(getattr(model, "ordered", True))   # USIP: keypoints in seed order, no semantics
        self.num_keypoints = getattr(model, "num_keypoints", None)
        self.num_points = int(config["data"]["points"])
        backbone = getattr(model, "backbone", None)
        self.min_points = int(getattr(backbone, "min_points", 1))

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """``(N, 3)`` cloud -> ``(K, 3)`` float32 keypoints."""
        return self.detect_batch([points])[0]

    def detect_batch(self, clouds: list[np.ndarray]) -> list[np.ndarray]:
        """Detect on many ``(N_i, 3)`` clouds, batching runs of clouds with the same N."""
        if "keypoints" not in self.model.outputs:
            raise KptoolError(f"{self.name} predicts {', '.join(self.model.outputs)}, not keypoints: run it on a "
                              f"prepared dataset to get a predictions file")
        if self.num_keypoints == 0:   # an embedding model whose database was never built
            raise KptoolError(f"{self.name} has no keypoints yet: its embedding database is empty (training did "
                              f"not finish?); build one with `kptool embed-db RUN --data DIR --out FILE.pt`")
        arrays = []
        for i, c in enumerate(clouds):
            a = np.asarray(c, dtype=np.float32)
            if a.ndim != 2 or a.shape[1] != 3 or len(a) == 0:
                raise KptoolError(f"{self.name}: cloud {i} must have shape (N, 3), got {a.shape}")
            if not np.isfinite(a).all():
                raise KptoolError(f"{self.name}: cloud {i} contains NaN or inf")
            if len(a) < self.min_points:
                # Too few points for the first set-abstraction level (e.g. a decimated cloud): repeat the
                # cloud's own points. Keypoints are convex combinations, so they stay on the shape.
                a = a[np.arange(self.min_points) % len(a)]
            arrays.append(a)
        out: list[np.ndarray] = []
        start = 0
        while start < len(arrays):
            end = start + 1
            while end < len(arrays) and end - start < self.batch_size and arrays[end].shape == arrays[start].shape:
                end += 1
            batch = torch.from_numpy(np.stack(arrays[start:end])).to(self.device)
            with torch.no_grad():
                out.extend(self.model.predict({"points": batch})["keypoints"].float().cpu().numpy())
            start = end
        return out

    def __repr__(self) -> str:
        return f"CheckpointDetector({self.name!r}, num_keypoints={self.num_keypoints}, device={self.device})"


def load_detector(checkpoint_or_run: str | os.PathLike, device: str | torch.device = "auto",
                  batch_size: int = 16) -> CheckpointDetector:
    """A detector from a run folder (its ``best.pt``, else ``last.pt``), a checkpoint or a weights file."""
    from kptool.device import resolve_device
    from kptool.models import build_model
    from kptool.train.checkpoint import find_checkpoint, load_checkpoint

    dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    path = find_checkpoint(checkpoint_or_run)
    ckpt = load_checkpoint(path)
    try:
        model = build_model(ckpt["config"]["model"])
    except KptoolError as e:
        raise InputError(path, str(e)) from None
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise InputError(path, f"weights do not fit model {ckpt['config']['model'].get('name')!r} "
                               f"({str(e).splitlines()[0]})") from None
    normalize = ckpt.get("frame", {}).get("normalize", "skeleton-merger")
    detector = CheckpointDetector(model, ckpt["config"], dev, normalize=normalize, batch_size=batch_size)
    detector.category = ckpt.get("meta", {}).get("category")   # checks raw inputs' proportions against it
    return detector


def weights_folder():
    """The folder of default weights shipped in the package (``kptool/weights``)."""
    return resources.files("kptool") / "weights"


def available_weights() -> list[str]:
    """Categories that have default weights."""
    folder = weights_folder()
    if not folder.is_dir():
        return []
    return sorted(p.name[:-3] for p in folder.iterdir() if p.name.endswith(".pt"))


def default_weights(category: str) -> Path:
    """The shipped weights file of a built-in category; a clear error when there is none."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", category):
        raise KptoolError(f"--category: {category!r} is not a category name (letters, digits, '-' and '_')")
    path = weights_folder() / f"{category}.pt"
    if not path.is_file():
        have = available_weights()
        raise KptoolError(
            f"--category: no default weights for category {category!r} "
            f"(available: {', '.join(have) if have else 'none in this installation'}); train a model with "
            f"`kptool train` and pass --checkpoint RUN (see docs/detect.md)")
    return Path(str(path))
