"""Per-point embeddings without training, the floor of paper 002's Table 2: ``random`` and ``shot``.

:func:`embedding_baseline` returns an :class:`EmbeddingBaseline`, whose
``embed(points (N, 3)) -> (N, D) float32`` gives

- ``random-embedding``: i.i.d. standard normal vectors (``dim``, default 128, like the learned
  models), seeded by ``seed`` and the cloud's content, so a shape gets the same
  embedding every time;
- ``shot``: the 352-d SHOT descriptor (:mod:`kptool.baselines.shot`), support radius
  ``radius`` (default a tenth of the bounding-box diagonal).

They predict embeddings, not keypoints: run them on a prepared dataset (predictions of
kind ``embeddings``) and score them with ``kptool eval mge``.
"""

from __future__ import annotations

import hashlib
from functools import partial
from typing import Callable

import numpy as np

from kptool.baselines.shot import shot_descriptors
from kptool.errors import KptoolError

EMBEDDING_BASELINES = ("random-embedding", "shot")
DEFAULT_DIM = 128


def random_embeddings(points: np.ndarray, dim: int = DEFAULT_DIM, seed: int = 0) -> np.ndarray:
    """``(N, dim)`` float32 standard normal embeddings, a function of ``seed`` and the points only."""
    p = np.ascontiguousarray(points, dtype=np.float32)
    if p.ndim != 2 or p.shape[1] != 3:
        raise KptoolError(f"random embeddings: expected a (N, 3) point cloud, got shape {p.shape}")
    digest = hashlib.blake2b(p.tobytes(), digest_size=8).digest()
    rng = np.random.default_rng([seed, int.from_bytes(digest, "little")])
    return rng.standard_normal((len(p), dim)).astype(np.float32)


class EmbeddingBaseline:
    """A method that gives every point an embedding (no keypoints).

    Attributes:
        name: the method name; ordered: False (it has no keypoint slots).
    """

    ordered = False

    def __init__(self, name: str, embed: Callable[[np.ndarray], np.ndarray]):
        self.name = name
        self._embed = embed

    def embed(self, points: np.ndarray) -> np.ndarray:
        """``(N, 3)`` cloud -> ``(N, D)`` float32 embeddings."""
        return np.asarray(self._embed(np.asarray(points, dtype=np.float64)), dtype=np.float32)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        raise KptoolError(f"{self.name} gives per-point embeddings, not keypoints: run it on a prepared dataset "
                          f"and score it with `kptool eval mge`")

    def detect_batch(self, clouds: list[np.ndarray]) -> list[np.ndarray]:
        return [self(c) for c in clouds]

    def __repr__(self) -> str:
        return f"EmbeddingBaseline({self.name!r})"


def embedding_baseline(name: str, seed: int = 0, dim: int = DEFAULT_DIM, radius: float | None = None
                       ) -> EmbeddingBaseline:
    """The baseline ``name`` (``random-embedding`` or ``shot``)."""
    if name == "random-embedding":
        if dim < 1:
            raise KptoolError(f"random embeddings need a dimension of at least 1, got {dim}")
        return EmbeddingBaseline(name, partial(random_embeddings, dim=dim, seed=seed))
    if name == "shot":
        return EmbeddingBaseline(name, partial(shot_descriptors, radius=radius))
    raise KptoolError(f"unknown embedding baseline {name!r}: expected one of {', '.join(EMBEDDING_BASELINES)}")
