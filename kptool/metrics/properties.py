"""The keypoint property metrics of Fernandez-Labrador et al. (ECCV 2020, Table 1).

The authors released no metric code; these are the definitions written out in
docs/metrics.md ("Keypoint properties"), one function each, applicable to any
detector with ordered keypoints. Distances follow the authors' frame (centroid-centred,
longest bounding-box side 2): on clouds in another normalisation, every length
threshold is scaled by ``frame_scale(cloud)`` = (longest bounding-box side) / 2, so
the numbers do not depend on the frame.

Per shape: ``keypoints`` ``(K, 3)``, ``cloud`` ``(N, 3)``, ``nodes`` ``(M, 3)``.
Over a set of shapes: ``(S, K, 3)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kptool.errors import KptoolError

# The paper's constants, in the authors' frame (longest side 2).
INCLUSIVITY_THRESHOLD = 0.015
MERGE_RADIUS = 0.2
REFERENCE_SIDE = 2.0


def _points(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3 or len(a) == 0:
        raise KptoolError(f"{name} must have shape (n, 3) with n >= 1, got {a.shape}")
    if not np.isfinite(a).all():
        raise KptoolError(f"{name} contains NaN or inf")
    return a


def frame_scale(cloud) -> float:
    """Longest side of the cloud's axis-aligned bounding box divided by 2 (1 in the authors' frame)."""
    c = _points(cloud, "cloud")
    return float((c.max(0) - c.min(0)).max()) / REFERENCE_SIDE


def box_coverage(keypoints, cloud) -> float:
    """Share of the cloud's bounding-box volume inside the keypoints' bounding box, in [0, 1].

    Both boxes axis-aligned in the given frame; the covered part is their intersection.
    """
    k, c = _points(keypoints, "keypoints"), _points(cloud, "cloud")
    lo, hi = c.min(0), c.max(0)
    volume = float(np.prod(hi - lo))
    if volume <= 0:
        raise KptoolError("coverage: the cloud's bounding box is flat (zero volume)")
    inter = np.clip(np.minimum(hi, k.max(0)) - np.maximum(lo, k.min(0)), 0.0, None)
    return float(np.prod(inter)) / volume


def chamfer(a, b) -> float:
    """Mean of the two directed mean nearest-neighbour (Euclidean) distances between point sets."""
    from scipy.spatial import cKDTree

    a, b = _points(a, "first set"), _points(b, "second set")
    return 0.5 * (float(cKDTree(b).query(a)[0].mean()) + float(cKDTree(a).query(b)[0].mean()))


def model_error(nodes, keypoints, cloud) -> float:
    """Chamfer(nodes, keypoints) divided by the cloud's longest bounding-box side (a fraction)."""
    return chamfer(nodes, keypoints) / (REFERENCE_SIDE * frame_scale(cloud))


def inclusivity(keypoints, cloud, threshold: float = INCLUSIVITY_THRESHOLD) -> float:
    """Share of keypoints within ``threshold`` (authors' frame, scaled by :func:`frame_scale`) of a cloud point."""
    from scipy.spatial import cKDTree

    k, c = _points(keypoints, "keypoints"), _points(cloud, "cloud")
    dist = cKDTree(c).query(k)[0]
    return float((dist <= threshold * frame_scale(c)).mean())


def symmetry_error_deg(predicted_normal, true_normal) -> float:
    """Angle in degrees, in [0, 90], between two plane normals (a plane has no side: n and -n agree)."""
    p, t = np.asarray(predicted_normal, np.float64), np.asarray(true_normal, np.float64)
    if p.shape != (3,) or t.shape != (3,) or not (np.linalg.norm(p) > 0 and np.linalg.norm(t) > 0):
        raise KptoolError("symmetry error: normals must be non-zero 3-vectors")
    cos = abs(p @ t) / (np.linalg.norm(p) * np.linalg.norm(t))
    return float(np.degrees(np.arccos(np.clip(cos, 0.0, 1.0))))


def nms_merge(keypoints, radius: float = MERGE_RADIUS, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The authors' non-maximum suppression: clusters of keypoints within ``radius`` replaced by their mean.

    Clusters are single-linkage at ``radius * scale`` (DBSCAN with one sample per core,
    as in the authors' inference). Returns ``merged`` ``(M, 3)`` (cluster means, in the
    order of each cluster's first keypoint) and ``labels`` ``(K,)`` (cluster of each
    keypoint). M is the paper's N' ("Definition").
    """
    from sklearn.cluster import DBSCAN

    k = _points(keypoints, "keypoints")
    raw = DBSCAN(eps=radius * scale, min_samples=1).fit(k).labels_
    _, first, labels = np.unique(raw, return_index=True, return_inverse=True)
    order = np.argsort(first)                   # clusters numbered by their first keypoint
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    labels = rank[labels.reshape(-1)]
    merged = np.stack([k[labels == j].mean(0) for j in range(len(order))])
    return merged, labels


@dataclass
class Correspondence:
    """Result of :func:`correspondence`.

    Attributes:
        score: share of keypoints in their slot group's majority cluster, in [0, 1].
        groups: ``(K,)`` slot -> group (slots that coincide on most shapes form one group).
        clusters: ``(S, K)`` K-means cluster of each keypoint.
        majority: ``(G,)`` majority cluster of each group.
        per_slot: ``(K,)`` share of each slot's keypoints in its group's majority cluster.
    """

    score: float
    groups: np.ndarray
    clusters: np.ndarray
    majority: np.ndarray
    per_slot: np.ndarray


def slot_groups(keypoints: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """``(K,)`` group of each slot: slots within ``radius[s]`` of each other on more than half the shapes join.

    ``keypoints`` ``(S, K, 3)``, ``radius`` ``(S,)``. Joining is transitive (connected components).
    """
    from scipy.sparse.csgraph import connected_components

    d = np.linalg.norm(keypoints[:, :, None] - keypoints[:, None, :], axis=-1)      # (S, K, K)
    together = (d <= radius[:, None, None]).mean(0) > 0.5
    return connected_components(together, directed=False)[1]


def correspondence(keypoints, clouds=None, radius: float = MERGE_RADIUS, seed: int = 0) -> Correspondence:
    """Order-wise correspondence across instances (the paper's "Correspondence", Fig. 3).

    ``keypoints`` ``(S, K, 3)`` ordered keypoints of S shapes in a common (aligned) frame;
    ``clouds`` (list of ``(N, 3)``) only scale ``radius`` per shape (:func:`frame_scale`).
    Slots that lie within ``radius`` of each other on more than half the shapes are one
    keypoint (a model's duplicates, merged by NMS), giving G groups. All S x K keypoints
    are clustered by K-means into G clusters; each group's majority cluster is the
    cluster most of its keypoints fall in; the score is the share of keypoints that fall
    in their group's majority cluster.
    """
    from sklearn.cluster import KMeans

    k = np.asarray(keypoints, dtype=np.float64)
    if k.ndim != 3 or k.shape[2] != 3 or k.shape[0] < 2 or k.shape[1] < 1:
        raise KptoolError(f"correspondence needs (S, K, 3) keypoints of at least 2 shapes, got {k.shape}")
    scales = np.ones(len(k)) if clouds is None else np.array([frame_scale(c) for c in clouds])
    groups = slot_groups(k, radius * scales)
    count = int(groups.max()) + 1
    flat = k.reshape(-1, 3)
    clusters = KMeans(n_clusters=min(count, len(np.unique(flat, axis=0))), n_init=10,
                      random_state=seed).fit_predict(flat).reshape(k.shape[:2])
    majority = np.array([np.bincount(clusters[:, groups == g].ravel()).argmax() for g in range(count)])
    hit = clusters == majority[groups][None, :]
    return Correspondence(score=float(hit.mean()), groups=groups, clusters=clusters, majority=majority,
                          per_slot=hit.mean(0))


def keypoint_properties(clouds, keypoints, nodes=None, normals=None, true_planes=None,
                        threshold: float = INCLUSIVITY_THRESHOLD, radius: float = MERGE_RADIUS) -> dict[str, dict]:
    """The six property metrics over S shapes; a metric that does not apply says why instead of a value.

    Args:
        clouds: S clouds ``(N_s, 3)`` in the evaluation frame.
        keypoints: S ordered keypoint sets ``(K, 3)`` (same K; ``(S, K, 3)`` array or list).
        nodes: S node sets ``(M_s, 3)`` (models with a node branch), or None.
        normals: S predicted symmetry-plane normals ``(3,)``, or None.
        true_planes: S true planes ``(4,)`` (``n . x + d = 0``) or None entries.

    Returns ``{name: {"value": float | None, "reason": str, "per_shape": list}}`` for
    ``coverage``, ``model_error``, ``correspondence``, ``inclusivity`` (fractions),
    ``symmetry_error`` (degrees) and ``definition`` (N', mean number of keypoints after
    :func:`nms_merge`; ``mode`` and ``constant`` added).
    """
    clouds = [_points(c, f"cloud {i}") for i, c in enumerate(clouds)]
    kps = [_points(k, f"keypoints {i}") for i, k in enumerate(keypoints)]
    if len(kps) != len(clouds) or not kps:
        raise KptoolError(f"{len(kps)} keypoint sets for {len(clouds)} clouds")
    out: dict[str, dict] = {}

    def put(name: str, per_shape: list | None, reason: str = "", value=None, **more) -> None:
        if per_shape is not None and value is None and per_shape:
            value = float(np.mean(per_shape))
        out[name] = {"value": value, "reason": reason, "per_shape": per_shape or [], **more}

    scales = [frame_scale(c) for c in clouds]
    put("coverage", [box_coverage(k, c) for k, c in zip(kps, clouds)])
    if nodes is None:
        put("model_error", None, "the detector predicts no nodes (a shape-basis model's node branch)")
    else:
        put("model_error", [model_error(n, k, c) for n, k, c in zip(nodes, kps, clouds)])
    if len({len(k) for k in kps}) != 1:
        put("correspondence", None, "keypoint counts differ between shapes: not an ordered detector")
    elif len(kps) < 2:
        put("correspondence", None, "needs at least two shapes")
    else:
        corr = correspondence(np.stack(kps), clouds, radius)
        put("correspondence", None, value=corr.score, per_slot=corr.per_slot.tolist(), groups=corr.groups.tolist())
    put("inclusivity", [inclusivity(k, c, threshold) for k, c in zip(kps, clouds)])
    if normals is None:
        put("symmetry_error", None, "the detector predicts no symmetry plane")
    elif true_planes is None or all(p is None for p in true_planes):
        put("symmetry_error", None, "the dataset has no true symmetry plane")
    else:
        put("symmetry_error", [symmetry_error_deg(n, np.asarray(p)[:3]) for n, p in zip(normals, true_planes)
                               if p is not None])
    counts = [len(nms_merge(k, radius, s)[0]) for k, s in zip(kps, scales)]
    values, freq = np.unique(counts, return_counts=True)
    put("definition", [float(c) for c in counts], mode=int(values[freq.argmax()]), constant=len(values) == 1)
    return out
