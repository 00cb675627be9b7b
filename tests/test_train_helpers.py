"""Tiny models and datasets for the training and detection tests (not a test module).

The models follow the model contract of kptool.models.base (inputs, outputs,
training_loss(batch), infer(batch), paired) at a size that trains in milliseconds, and have hooks
the tests pull: raise SIGINT or return NaN at a given training_loss call.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch
from torch import nn

from kptool.data.prepared import save_shape, write_manifest
from kptool.data.shape import Shape
from kptool.data.transform import Transform
from kptool.models import Model, register_model


class TinyKeypoints(Model):
    """Per-point MLP -> softmax over points per keypoint -> keypoints = convex combinations."""

    paired = False
    # test hooks (class attributes so that a resumed run does not fire them again)
    sigint_at_call: int | None = None
    nan_at_call: int | None = None
    calls = 0

    def __init__(self, num_keypoints: int = 4, width: int = 16):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.net = nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, num_keypoints))

    def forward(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        weights = torch.softmax(self.net(points), dim=1)              # (B, N, K)
        return {"keypoints": weights.transpose(1, 2) @ points}         # (B, K, 3)

    def infer(self, batch):
        return self(batch["points"])

    def training_loss(self, batch):
        points = batch["points"]
        kp = self(points)["keypoints"]
        coverage = torch.cdist(points, kp).min(dim=2).values.mean()
        loss = coverage
        parts = {"coverage": coverage.item()}
        if self.paired:
            h = points.shape[0] // 2
            mutual = (kp[:h] - kp[h:]).square().sum(-1).mean()
            loss = loss + 0.1 * mutual
            parts["mutual"] = mutual.item()
        if self.training:
            TinyKeypoints.calls += 1
            if TinyKeypoints.calls == TinyKeypoints.sigint_at_call:
                signal.raise_signal(signal.SIGINT)
            if TinyKeypoints.calls == TinyKeypoints.nan_at_call:
                loss = loss * float("nan")
        return loss, parts


class TinyPairedKeypoints(TinyKeypoints):
    paired = True


register_model("test-tiny")(TinyKeypoints)
register_model("test-tiny-paired")(TinyPairedKeypoints)


def reset_hooks() -> None:
    TinyKeypoints.sigint_at_call = TinyKeypoints.nan_at_call = None
    TinyKeypoints.calls = 0


@pytest.fixture(autouse=True)
def fresh_hooks():
    """Every test starts and ends with no SIGINT/NaN hook armed (import into the test module)."""
    reset_hooks()
    yield
    reset_hooks()


def tiny_config(name: str = "test-tiny", points: int = 64, **train) -> dict:
    return {"name": "tiny", "model": {"name": name, "num_keypoints": 3, "width": 8},
            "train": {"epochs": 2, "batch_size": 4, "optimizer": "adam", "lr": 0.01, "optimizer_options": {},
                      **train},
            "data": {"points": points}}


def box_shape(rng: np.random.Generator, points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random box surface in [-1, 1]; keypoints = 3 of its corners with fixed semantic ids."""
    half = rng.uniform(0.3, 1.0, size=3)
    p = rng.uniform(-1, 1, size=(points, 3)) * half
    face = rng.integers(0, 3, size=points)
    p[np.arange(points), face] = np.sign(rng.uniform(-1, 1, size=points)) * half[face]
    corners = np.array([[1, 1, 1], [-1, 1, 1], [1, -1, -1]]) * half
    return p.astype(np.float32), corners.astype(np.float32), np.arange(3)


def make_dataset(root, n_train: int = 8, n_val: int = 4, n_test: int = 3, points: int = 64,
                 keypoints: bool = True, seed: int = 0):
    """A prepared dataset folder with box shapes (identity transforms)."""
    rng = np.random.default_rng(seed)
    records = []
    for split, count in (("train", n_train), ("val", n_val), ("test", n_test)):
        for i in range(count):
            pts, kp, ids = box_shape(rng, points)
            shape = Shape(points=pts, id=f"{split}{i:02d}")
            if keypoints:
                shape.keypoints, shape.keypoint_ids = kp, ids
            save_shape(root, shape, Transform.identity())
            records.append({"id": shape.id, "split": split, "file": f"shapes/{shape.id}.npz", "num_points": points,
                            "num_keypoints": 3 if keypoints else 0, "has_mesh": False})
    write_manifest(root, {"format": "kptool-prepared", "version": 1, "category": "box", "shapes": records,
                          "extras": {}})
    return root
