"""Self-supervised pretext objectives on per-point logits, registered in :data:`kptool.losses.LOSSES`.

A pretext objective is built from a model's ``loss:`` section; ``num_logits`` tells the
model how many per-point scores its head must give, and
``objective(logits_of, points) -> (loss, parts)`` runs the network (``logits_of``:
``(B, N, 3)`` points -> ``(B, N, num_logits)``) on what the pretext feeds it.
"""

from __future__ import annotations

from typing import Callable

import torch

from kptool.errors import KptoolError
from kptool.losses.gmm import DEFAULT_RIDGE, gmm_nll
from kptool.losses.jigsaw import jigsaw_loss, jigsaw_shuffle
from kptool.losses.registry import LOSSES

LogitsOf = Callable[[torch.Tensor], torch.Tensor]


@LOSSES.register("gmm-nll")
class GMMLikelihood:
    """ParAE (paper 003): the points' negative log-likelihood under the mixture their own logits imply.

    Args:
        partitions: J, the number of mixture components (paper: 32).
        ridge: added to each covariance's diagonal, in squared prepared-frame units.
    """

    def __init__(self, partitions: int = 32, ridge: float = DEFAULT_RIDGE):
        if int(partitions) < 1 or not float(ridge) >= 0:
            raise KptoolError(f"gmm-nll: partitions must be >= 1 and ridge >= 0, got {partitions}, {ridge}")
        self.num_logits, self.ridge = int(partitions), float(ridge)

    def __call__(self, logits_of: LogitsOf, points: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        nll = gmm_nll(points, logits_of(points).float(), self.ridge).mean()
        return nll, {"loss": nll.item(), "nll": nll.item()}


@LOSSES.register("jigsaw3d")
class Jigsaw3D:
    """Jigsaw3D (Sauder & Sievers 2019): say which of the k^3 permuted cells each point came from.

    Args:
        cells_per_axis: k (reference: 3, i.e. 27 classes).
    """

    def __init__(self, cells_per_axis: int = 3):
        if int(cells_per_axis) < 1:
            raise KptoolError(f"jigsaw3d: cells_per_axis must be >= 1, got {cells_per_axis}")
        self.cells_per_axis = int(cells_per_axis)
        self.num_logits = self.cells_per_axis ** 3

    def __call__(self, logits_of: LogitsOf, points: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        puzzle = jigsaw_shuffle(points, self.cells_per_axis)
        logits = logits_of(puzzle.points)
        loss = jigsaw_loss(logits.float(), puzzle.labels).mean()
        accuracy = (logits.argmax(-1) == puzzle.labels).float().mean()
        return loss, {"loss": loss.item(), "cell_accuracy": accuracy.item()}
