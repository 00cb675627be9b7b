"""Choosing the torch device: ``--device auto|cpu|cuda|cuda:N`` everywhere."""

from __future__ import annotations

from kptool.errors import KptoolError


def resolve_device(name: str = "auto"):
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as given."""
    import torch

    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise KptoolError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise KptoolError(f"device {name!r} requested but CUDA is not available (use --device cpu or auto)")
    return dev
