"""Dense semantic embeddings learned from correspondence sets (paper 002, CorresPondenceNet).

A shared point-cloud backbone (``backbone:`` section: PointNet, PointNet++ or DGCNN)
gives per-point features (a backbone with ``in_channels`` gets the coordinates as point
features too, :func:`~kptool.models.backbones.common.coordinate_features`: PointNet++'s
set abstraction sees only offsets to its centres, and an embedding must tell apart
points whose neighbourhoods look alike, such as a chair's left and right legs); a linear layer maps them to ``dim``-d embeddings (128 in the
paper), not normalised. Training reads every annotated point of every shape of a batch,
labelled by its correspondence set (``keypoint_ids``), and the set-distance rows
``extras/set_distances`` that ``kptool prepare geodesics`` writes, and minimises the
``loss:`` section's objective (``geodesic-consistency``: :mod:`kptool.losses.embedding`).

**Keypoints from embeddings.** The model carries a database: per set id, the mean
embedding of that set's annotated points over a set of annotated shapes
(:func:`build_database`). It is built from the train split when training ends
(:meth:`DenseEmbedding.after_training`, so every checkpoint of the run carries the one
that matches its weights) and ``kptool embed-db`` rebuilds it from another annotated
set. On a new shape, database entry i becomes keypoint i: the point whose embedding is
nearest to the entry, so keypoints come ordered, with the entries' set ids
(``keypoint_ids``). Paper 004's transfer uses the same rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from kptool.data.correspondences import SET_TABLE
from kptool.errors import KptoolError
from kptool.losses import LOSSES
from kptool.models.backbones import BACKBONES
from kptool.models.backbones.common import coordinate_features
from kptool.models.base import Model
from kptool.models.registry import register_model


@register_model("dense-embedding")
class DenseEmbedding(Model):
    """Per-point semantic embeddings from correspondence sets (paper 002); keypoints via a database of set means."""

    inputs = ("points", "keypoint_ids", "keypoint_point_index", f"extras/{SET_TABLE}")
    predict_inputs = ("points",)
    outputs = ("embeddings", "keypoints")

    def __init__(self, backbone: dict[str, Any] | None = None, dim: int = 128,
                 loss: dict[str, Any] | None = None):
        super().__init__()
        if int(dim) < 1:
            raise KptoolError(f"model.dim must be at least 1, got {dim}")
        self.dim = int(dim)
        self.backbone = BACKBONES.build(backbone or {"name": "pointnet"})
        if self.backbone.in_channels % 3:
            raise KptoolError(f"model.backbone.in_channels must be 0 or a multiple of 3 (the coordinates as point "
                              f"features), got {self.backbone.in_channels}")
        self.head = nn.Linear(self.backbone.out_channels, self.dim)
        self.loss = LOSSES.build(loss or {"name": "geodesic-consistency"})
        self.register_buffer("database_ids", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("database", torch.zeros(0, self.dim))

    @property
    def keypoint_ids(self) -> list[int]:
        """The set id of each keypoint slot (database order)."""
        return [int(i) for i in self.database_ids.tolist()]

    @property
    def num_keypoints(self) -> int:
        return int(self.database_ids.numel())

    def embed(self, points: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` points -> ``(B, N, dim)`` embeddings."""
        per_point, _ = self.backbone(points, coordinate_features(points, self.backbone.in_channels))
        return self.head(per_point)

    def infer(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        points = batch["points"]
        emb = self.embed(points)
        return {"embeddings": emb, "keypoints": self.keypoints_from(points, emb)}

    def keypoints_from(self, points: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """``(B, S, 3)``: for each database entry, the point whose embedding is nearest (``(B, 0, 3)`` without one)."""
        if self.num_keypoints == 0:
            return points.new_zeros(points.shape[0], 0, 3)
        nearest = torch.cdist(self.database.to(embeddings.dtype)[None].expand(len(embeddings), -1, -1),
                              embeddings).argmin(-1)                                  # (B, S)
        return torch.gather(points, 1, nearest[..., None].expand(-1, -1, 3))

    def training_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        emb = self.embed(batch["points"])
        picked, ids, rows = annotated_points(emb, batch["keypoint_ids"], batch["keypoint_point_index"],
                                             batch[f"extras/{SET_TABLE}"])
        return self.loss(picked, ids, rows)

    def after_training(self, train_set, device: torch.device, batch_size: int = 8) -> dict[str, Any]:
        """Build the database from the annotated shapes of ``train_set``; returns what to record about it."""
        db = build_database(self, train_set, device, batch_size)
        self.set_database(db["ids"], db["means"])
        return {"embedding_database": {k: v for k, v in db.items() if k not in ("ids", "means")}}

    def set_database(self, ids: np.ndarray, means: np.ndarray) -> None:
        self.database_ids = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=self.database_ids.device)
        self.database = torch.as_tensor(np.asarray(means, dtype=np.float32), device=self.database.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the database's size is the number of sets it was built from: take the stored one's
        for name in ("database_ids", "database"):
            stored = state_dict.get(prefix + name)
            if stored is not None:
                setattr(self, name, torch.empty_like(stored, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def annotated_points(embeddings: torch.Tensor, keypoint_ids: list[torch.Tensor], point_index: list[torch.Tensor],
                     set_rows: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The embeddings, set ids and set-distance rows of every annotated point of a batch.

    Args:
        embeddings: ``(B, N, D)``.
        keypoint_ids, point_index: per shape ``(K_b,)``.
        set_rows: per shape ``(K_b, I_b)`` rows of D (memory-mapped arrays); padded with NaN to the widest.

    Returns ``(P, D)``, ``(P,)``, ``(P, I)`` on the embeddings' device.
    """
    width = max((np.shape(r)[1] for r in set_rows if np.ndim(r) == 2), default=0)
    picked, ids, rows = [], [], []
    for b, (kid, idx, r) in enumerate(zip(keypoint_ids, point_index, set_rows)):
        if len(kid) == 0:
            continue
        keep = idx >= 0
        picked.append(embeddings[b, idx[keep]])
        ids.append(kid[keep])
        table = np.full((len(kid), width), np.nan, dtype=np.float32)
        table[:, :np.shape(r)[1]] = np.asarray(r)
        rows.append(torch.from_numpy(table[keep.cpu().numpy()]))
    if not picked:
        return embeddings.new_zeros(0, embeddings.shape[-1]), torch.zeros(0, dtype=torch.int64,
                                                                          device=embeddings.device), \
            embeddings.new_zeros(0, max(width, 1))
    return torch.cat(picked), torch.cat(ids).to(embeddings.device), torch.cat(rows).to(embeddings.device)


@torch.no_grad()
def build_database(model: DenseEmbedding, dataset, device: torch.device, batch_size: int = 8) -> dict[str, Any]:
    """Per set id, the mean embedding of its annotated points over the shapes of ``dataset``.

    Returns ``{"ids": (S,), "means": (S, D), "counts": {id: shapes}, "shapes": n, "dataset": root,
    "split": split}``; KptoolError when no shape of ``dataset`` is annotated.
    """
    from kptool.data.batches import batch_to, collate_shapes

    data = dataset.torch_dataset(("points", "keypoint_ids", "keypoint_point_index"))
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(data), batch_size):
            batch = batch_to(collate_shapes([data[i] for i in range(start, min(start + batch_size, len(data)))]),
                             device)
            emb = model.embed(batch["points"]).float().cpu().numpy()
            for e, kid, idx in zip(emb, batch["keypoint_ids"], batch["keypoint_point_index"]):
                for sid, i in zip(kid.tolist(), idx.tolist()):
                    if i >= 0:
                        sums[sid] = sums.get(sid, 0.0) + e[i]
                        counts[sid] = counts.get(sid, 0) + 1
    finally:
        model.train(was_training)
    if not sums:
        raise KptoolError(f"{dataset.root}: no annotated shapes in split {dataset.split or 'all'!r} to build an "
                          f"embedding database from")
    ids = np.array(sorted(sums), dtype=np.int64)
    return {"ids": ids, "means": np.stack([sums[i] / counts[i] for i in ids]).astype(np.float32),
            "counts": {str(i): counts[int(i)] for i in ids}, "shapes": len(data),
            "dataset": str(dataset.root), "split": dataset.split or "all"}
