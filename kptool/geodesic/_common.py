"""Input checks, torch <-> numpy, solver caching and the unreachable warning, shared by the solvers."""

from __future__ import annotations

import atexit
import hashlib
import warnings
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from kptool.errors import KptoolError


class UnreachableWarning(UserWarning):
    """Some targets lie on another connected part than their source; their distance is ``inf``."""


def to_numpy(x: Any, dtype=None) -> np.ndarray:
    """A numpy copy/view of an array-like or a (CPU or CUDA) torch tensor."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)


def like(out: np.ndarray, ref: Any):
    """Return ``out`` as a tensor on ``ref``'s device and float dtype when ``ref`` is a tensor."""
    if hasattr(ref, "detach") and hasattr(ref, "device"):
        import torch

        dtype = ref.dtype if ref.is_floating_point() else torch.float32
        return torch.as_tensor(out, device=ref.device).to(dtype)
    return out


def check_points(points: np.ndarray, what: str) -> np.ndarray:
    p = np.ascontiguousarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise KptoolError(f"{what} must have shape (N, 3), got {p.shape}")
    if len(p) == 0:
        raise KptoolError(f"{what} is empty")
    if not np.isfinite(p).all():
        raise KptoolError(f"{what} contain NaN or infinite coordinates")
    return p


def check_indices(index: np.ndarray, size: int, what: str) -> np.ndarray:
    i = np.asarray(index)
    if i.ndim != 1:
        raise KptoolError(f"{what} must be a 1-D array of indices, got shape {i.shape}")
    i = i.astype(np.int64)
    if len(i) and (i.min() < 0 or i.max() >= size):
        raise KptoolError(f"{what} must lie in [0, {size}), got values in [{i.min()}, {i.max()}]")
    return i


def warn_unreachable(dist: np.ndarray, parts: int, where: str) -> None:
    n = int(np.isinf(dist).sum())
    if n:
        warnings.warn(f"{n} of {dist.size} source-target pairs are unreachable ({where} has {parts} "
                      f"connected parts); their geodesic distance is inf", UnreachableWarning, stacklevel=3)


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


class SolverCache:
    """The few most recently used solvers, keyed by the content of their geometry.

    Building a solver (a sparse factorisation for the heat method) costs far more
    than one distance query, and callers often ask for distances on the same shape
    again (one keypoint at a time, keypoints then all pairs), so keep a handful.
    """

    def __init__(self, size: int = 4):
        self.size = size
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        # Free native solvers before interpreter teardown; otherwise nanobind reports them as leaks on exit.
        atexit.register(self.clear)

    def get(self, key: tuple, build: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = build()
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()
