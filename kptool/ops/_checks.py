"""Input validation shared by the ops.

Wrong shapes or dtypes handed to an op are programming errors, so they raise
``ValueError``/``TypeError`` (not :class:`kptool.errors.KptoolError`) with a
message that names the argument, what was expected and what was given.
"""

from __future__ import annotations

import torch


def check_points(name: str, t, batch: int | None = None, channels: int | None = 3) -> None:
    """``t`` must be a floating ``(B, N, channels)`` tensor (``channels=None``: any)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    want = "(B, N, C)" if channels is None else f"(B, N, {channels})"
    if t.dim() != 3 or (channels is not None and t.shape[-1] != channels):
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    if batch is not None and t.shape[0] != batch:
        raise ValueError(f"{name} has batch size {t.shape[0]}, expected {batch}")
    if t.shape[1] == 0:
        raise ValueError(f"{name} has no points (shape {tuple(t.shape)})")


def check_same_device(**tensors: torch.Tensor) -> None:
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        raise ValueError("tensors must be on one device, got " + ", ".join(f"{n} on {d}" for n, d in devices.items()))


def check_lengths(name: str, lengths, batch: int, size: int, device: torch.device) -> torch.Tensor:
    """Return per-cloud lengths as an int64 ``(B,)`` tensor on ``device``.

    ``None`` means every cloud uses all ``size`` points. Lengths must lie in
    ``[1, size]``: a cloud needs at least one point for any of the ops to be defined.
    """
    if lengths is None:
        return torch.full((batch,), size, dtype=torch.int64, device=device)
    lengths = torch.as_tensor(lengths, device=device)
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise TypeError(f"{name} must be integer, got {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(lengths.shape)}")
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 1 or hi > size:
        raise ValueError(f"{name} must lie in [1, {size}], got values in [{lo}, {hi}]")
    return lengths.to(torch.int64)


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value
