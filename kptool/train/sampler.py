"""Which shapes go into which batch, epoch by epoch, on which process.

The batches of an epoch are a pure function of ``(seed, epoch, rank, world_size)``,
so a resumed run re-creates them exactly and skips the ones already done.

Paired models (``model.paired``, skeleton-mutual) see batches ``[a_1..a_h, b_1..b_h]``
where shape ``a_i`` is paired with ``b_i``: as in the authors' code, every epoch
the shuffled training set is split into halves ``a`` and ``b`` paired by index.
Under ``torchrun`` the pairs (or shapes) are dealt round-robin to the processes,
each getting the same number so that every process runs the same number of steps.
"""

from __future__ import annotations

import torch

from kptool.errors import KptoolError


def epoch_batches(num_shapes: int, batch_size: int, epoch: int, seed: int, paired: bool = False,
                  rank: int = 0, world_size: int = 1) -> list[list[int]]:
    """Dataset indices of every batch of one epoch, for one process.

    Args:
        num_shapes: size of the dataset.
        batch_size: shapes per batch (per process); even when ``paired``.
        epoch: 0-based epoch; with ``seed`` it seeds the shuffle.
        paired: pair shape ``i`` of a batch with shape ``i + len(batch) // 2``.
        rank, world_size: this process's share under distributed training.

    Batches are full except the last one; a last batch of a single shape is
    dropped because BatchNorm cannot train on one sample.
    """
    if paired and batch_size % 2:
        raise KptoolError(f"train.batch_size must be even for a paired model, got {batch_size}")
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(num_shapes, generator=g).tolist()
    if paired:
        half = num_shapes // 2
        units = list(zip(perm[:half], perm[half:2 * half]))   # one unit = one (a, b) pair
        per_batch = batch_size // 2
    else:
        units = [(i,) for i in perm]
        per_batch = batch_size
    share = len(units) // world_size
    mine = units[rank::world_size][:share]
    batches = []
    for start in range(0, len(mine), per_batch):
        chunk = mine[start:start + per_batch]
        # a paired batch lists all first halves, then all second halves
        batch = [u[j] for j in range(len(chunk[0])) for u in chunk]
        if len(batch) > 1:
            batches.append(batch)
    return batches


def eval_batches(num_shapes: int, batch_size: int, paired: bool = False) -> list[list[int]]:
    """Fixed batches for validation, the same every epoch so losses compare across epochs."""
    if not paired:
        return [list(range(s, min(s + batch_size, num_shapes))) for s in range(0, num_shapes, batch_size)]
    return epoch_batches(num_shapes, batch_size, epoch=0, seed=0, paired=True)
