"""Classical keypoint detectors used as baselines: ISS, Harris 3D, farthest points, random.

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
from kptool.baselines.harris import harris3d_keypoints
from kptool.baselines.iss import iss_saliency, model_resolution
from kptool.baselines.sampling import farthest_points, random_points
from kptool.errors import KptoolError

BASELINES = ("iss", "harris3d", "fps", "random")
DEFAULT_NUM_KEYPOINTS = 10  # for fps and random, which have no natural count

_PARAMS = {
    "iss": ("salient_radius", "non_max_radius", "gamma_21", "gamma_32", "min_neighbors"),
    "harris3d": ("radius", "threshold", "k"),
    "fps": ("start_index",),
    "random": (),
}


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
    if name not in BASELINES:
        raise KptoolError(f"unknown baseline {name!r}: expected one of {', '.join(BASELINES)}")
    unknown = sorted(set(params) - set(_PARAMS[name]))
    if unknown:
        raise KptoolError(f"{name}: unknown parameter(s) {', '.join(unknown)} "
                          f"(accepted: {', '.join(_PARAMS[name]) or 'none'})")
    if num_keypoints is not None and num_keypoints < 1:
        raise KptoolError(f"num_keypoints must be at least 1, got {num_keypoints}")
    if name == "iss":
        return Baseline(name, partial(iss_saliency, **params), num_keypoints)
    if name == "harris3d":
        return Baseline(name, partial(harris3d_keypoints, **params), num_keypoints)
    k = DEFAULT_NUM_KEYPOINTS if num_keypoints is None else num_keypoints
    if name == "fps":
        return Baseline(name, partial(farthest_points, k=k, **params), k)
    return Baseline(name, partial(random_points, k=k, seed=seed), k)


__all__ = ["BASELINES", "DEFAULT_NUM_KEYPOINTS", "Baseline", "get_baseline", "iss_saliency",
           "harris3d_keypoints", "model_resolution", "farthest_points", "random_points", "select"]
