"""Distributed training under ``torchrun``: process group, DDP wrapper, collective checks.

``torchrun --nproc_per_node N -m kptool.cli.main train ...`` sets ``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK`` (and the rendezvous address); the training loop then
runs one process per GPU (NCCL) or per CPU worker (gloo). Without those
variables everything here is a no-op and the run is a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """The process's place in a ``torchrun`` job (rank 0 of 1 when not launched by it)."""
    return DistInfo(rank=int(os.environ.get("RANK", 0)), local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                    world_size=int(os.environ.get("WORLD_SIZE", 1)))


def setup(info: DistInfo, device: torch.device) -> torch.device:
    """Join the process group; returns this process's device (``cuda:LOCAL_RANK`` on GPUs)."""
    if not info.enabled:
        return device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def teardown(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


class LossModule(nn.Module):
    """``forward(batch)`` = ``model.training_loss(batch)`` (the whole batch dict, already on the device).

    DistributedDataParallel only synchronises gradients of what runs through its
    ``forward``; wrapping the model in this module makes the training objective
    that forward, whatever method of the model computes it.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict):
        return self.model.training_loss(batch)


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """The module a training step calls: :class:`LossModule`, inside DDP when distributed."""
    loss_module = LossModule(model)
    if not info.enabled:
        return loss_module
    from torch.nn.parallel import DistributedDataParallel

    # find_unused_parameters: a model may leave some parameters out of its loss
    # (e.g. the mutual-reconstruction branch of an unpaired configuration).
    return DistributedDataParallel(loss_module, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=True)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def all_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over processes (the tensor itself when single-process)."""
    if not info.enabled:
        return values
    import torch.distributed as dist

    out = values.clone()
    dist.all_reduce(out)
    return out / info.world_size


def any_process(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on any of them (Ctrl-C reaching only some)."""
    if not info.enabled:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
