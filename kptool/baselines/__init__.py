"""Classical keypoint detectors used as baselines: ISS, Harris 3D, farthest points, random;
and per-point embeddings without training: SHOT and random embeddings (:mod:`kptool.baselines.embeddings`).

``get_baseline(name, num_keypoints, seed, **params)`` returns a
:class:`~kptool.detect.base.Detector` whose keypoints are points of the input
cloud, in the cloud's frame, unordered. ISS and Harris 3D find a varying number
of keypoints; with ``num_keypoints`` they return exactly that many: the detected
ones by decreasing saliency (ISS: smallest eigenvalue; Harris: response), padded
if needed with the undetected points of highest saliency.
"""

from __future__ import annotations

from functools import partial

from kptool.baselines.detector import Baseline, select
from kptool.baselines.embeddings import EmbeddingBaseline, embedding_baseline
from kptool.baselines.harris import harris3d_keypoints
from kptool.baselines.iss import iss_saliency, model_resolution
from kptool.baselines.sampling import farthest_points, random_points
from kptool.errors import KptoolError
from kptool.registry import Registry

DEFAULT_NUM_KEYPOINTS = 10  # for fps and random, which have no natural count

# Classical detection methods by name; each entry builds a Baseline from
# (num_keypoints, seed, **params) and says which params it takes.
BASELINES = Registry("baseline")


@BASELINES.register("iss")
def _iss(num_keypoints: int | None, seed: int, **params) -> Baseline:
    """ISS (Zhong 2009): salient points (smallest scatter eigenvalue) after non-maximum suppression."""
    return Baseline("iss", partial(iss_saliency, **params), num_keypoints)


@BASELINES.register("harris3d")
def _harris3d(num_keypoints: int | None, seed: int, **params) -> Baseline:
    """Harris 3D (Sipiran and Bustos 2011): corner response of local quadric fits."""
    return Baseline("harris3d", partial(harris3d_keypoints, **params), num_keypoints)


@BASELINES.register("fps")
def _fps(num_keypoints: int | None, seed: int, **params) -> Baseline:
    """Farthest point sampling: k points spread over the cloud."""
    k = DEFAULT_NUM_KEYPOINTS if num_keypoints is None else num_keypoints
    return Baseline("fps", partial(farthest_points, k=k, **params), k)


@BASELINES.register("random")
def _random(num_keypoints: int | None, seed: int) -> Baseline:
    """k points of the cloud drawn uniformly at random (seeded)."""
    k = DEFAULT_NUM_KEYPOINTS if num_keypoints is None else num_keypoints
    return Baseline("random", partial(random_points, k=k, seed=seed), k)


@BASELINES.register("shot")
def _shot(num_keypoints: int | None, seed: int, **params) -> EmbeddingBaseline:
    """SHOT descriptors (Tombari et al. 2010) as 352-d per-point embeddings (no keypoints: kptool eval mge)."""
    return embedding_baseline("shot", **params)


@BASELINES.register("random-embedding")
def _random_embedding(num_keypoints: int | None, seed: int, **params) -> EmbeddingBaseline:
    """Seeded standard normal per-point embeddings (128-d): the floor of kptool eval mge."""
    return embedding_baseline("random-embedding", seed=seed, **params)


_PARAMS = {
    "iss": ("salient_radius", "non_max_radius", "gamma_21", "gamma_32", "min_neighbors"),
    "harris3d": ("radius", "threshold", "k"),
    "fps": ("start_index",),
    "random": (),
    "shot": ("radius",),
    "random-embedding": ("dim",),
}
EMBEDDING_METHODS = ("shot", "random-embedding")   # predict embeddings, not keypoints


def get_baseline(name: str, num_keypoints: int | None = None, seed: int = 0, **params) -> Baseline:
    """A baseline detector by name.

    Args:
        name: one of ``BASELINES``.
        num_keypoints: keypoints per cloud; None = all that ISS / Harris find, and
            ``DEFAULT_NUM_KEYPOINTS`` for fps / random.
        seed: seeds ``random`` (the other methods are deterministic).
        params: method parameters: iss ``salient_radius, non_max_radius, gamma_21,
            gamma_32, min_neighbors`` (Open3D's names and defaults); harris3d
            ``radius, threshold, k``; fps ``start_index``.
    """
    build = BASELINES.get(name)   # KptoolError naming the known ones
    unknown = sorted(set(params) - set(_PARAMS[name]))
    if unknown:
        raise KptoolError(f"{name}: unknown parameter(s) {', '.join(unknown)} "
                          f"(accepted: {', '.join(_PARAMS[name]) or 'none'})")
    if num_keypoints is not None and num_keypoints < 1:
        raise KptoolError(f"num_keypoints must be at least 1, got {num_keypoints}")
    if num_keypoints is not None and name in EMBEDDING_METHODS:
        raise KptoolError(f"{name} gives per-point embeddings: it takes no number of keypoints")
    return build(num_keypoints, seed, **params)


__all__ = ["BASELINES", "DEFAULT_NUM_KEYPOINTS", "EMBEDDING_METHODS", "Baseline", "EmbeddingBaseline", "get_baseline", "iss_saliency",
           "harris3d_keypoints", "model_resolution", "farthest_points", "random_points", "select"]
