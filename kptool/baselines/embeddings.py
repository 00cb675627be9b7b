"""Per-point embeddings without training, the floor of paper 002's Table 2: ``random`` and ``shot``.

``embedding_baseline(name, seed, dim)`` returns a callable ``(N, 3) points -> (N, D)
float32 embeddings``:

- ``random``: i.i.d. standard normal vectors (``dim``, default 128, like the learned
  models), seeded by ``seed`` and the cloud's content, so a shape gets the same
  embedding every time;
- ``shot``: the 352-d SHOT descriptor (:mod:`kptool.baselines.shot`), support radius
  a tenth of the bounding-box diagonal.
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np

from kptool.baselines.shot import shot_descriptors
from kptool.errors import KptoolError

EMBEDDING_BASELINES = ("random", "shot")
DEFAULT_DIM = 128


def random_embeddings(points: np.ndarray, dim: int = DEFAULT_DIM, seed: int = 0) -> np.ndarray:
    """``(N, dim)`` float32 standard normal embeddings, a function of ``seed`` and the points only."""
    p = np.ascontiguousarray(points, dtype=np.float32)
    if p.ndim != 2 or p.shape[1] != 3:
        raise KptoolError(f"random embeddings: expected a (N, 3) point cloud, got shape {p.shape}")
    digest = hashlib.blake2b(p.tobytes(), digest_size=8).digest()
    rng = np.random.default_rng([seed, int.from_bytes(digest, "little")])
    return rng.standard_normal((len(p), dim)).astype(np.float32)


def embedding_baseline(name: str, seed: int = 0, dim: int = DEFAULT_DIM) -> Callable[[np.ndarray], np.ndarray]:
    """The baseline ``name`` (``random`` or ``shot``) as ``points (N, 3) -> embeddings (N, D)``."""
    if name == "random":
        if dim < 1:
            raise KptoolError(f"random embeddings need a dimension of at least 1, got {dim}")
        return lambda points: random_embeddings(points, dim, seed)
    if name == "shot":
        return shot_descriptors
    raise KptoolError(f"unknown embedding baseline {name!r}: expected one of {', '.join(EMBEDDING_BASELINES)}")
