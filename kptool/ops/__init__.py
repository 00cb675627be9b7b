"""Batched point-cloud ops on CPU and CUDA tensors, channel-last.

Points are ``(B, N, 3)``, features ``(B, N, C)``, indices int64; :func:`knn` also
searches in feature space (``(B, N, D)``, any D). CPU tensors run
numba kernels (compiled on first use and cached on disk, nothing compiled at
install time); CUDA tensors run chunked pure-torch code. Ragged batches pass
per-cloud ``lengths``: the first ``lengths[b]`` rows of cloud ``b`` are valid.
Plain reference implementations of every op live in :mod:`kptool.ops.reference`.

Example (one PointNet++ set-abstraction grouping and a Chamfer loss)::

    import torch
    from kptool.ops import ball_query, chamfer_distance, farthest_point_sampling, gather

    xyz = torch.rand(8, 2048, 3)                            # (B, N, 3)
    centres = gather(xyz, farthest_point_sampling(xyz, 512))  # (B, 512, 3)
    groups = gather(xyz, ball_query(centres, xyz, 0.2, 32))   # (B, 512, 32, 3)
    local = groups - centres[:, :, None, :]
    loss = chamfer_distance(centres, xyz)                    # scalar, differentiable
"""

from kptool.ops.chamfer import chamfer_distance
from kptool.ops.neighbors import KNN, ball_query, gather, knn, three_nn_interpolate
from kptool.ops.sampling import farthest_point_sampling

__all__ = ["KNN", "ball_query", "chamfer_distance", "farthest_point_sampling", "gather", "knn", "three_nn_interpolate"]
