"""Registration of one shape to another through their ordered keypoints.

Ordered keypoints are correspondences by index, so a similarity transform (scale,
rotation, translation) between two shapes is a least-squares fit of one keypoint set
onto the other (Umeyama 1991). The rotation is the Kabsch/Wahba solution of
``scipy.spatial.transform.Rotation.align_vectors`` on the centred sets; scale and
translation follow in closed form. Used by ``kptool register`` and by the
registration experiment of Fernandez-Labrador et al. (Fig. 5, ``kptool eval registration``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kptool.errors import KptoolError


@dataclass(frozen=True)
class Similarity:
    """``x -> scale * R x + t``; ``rotation`` ``(3, 3)``, ``translation`` ``(3,)``."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def apply(self, points) -> np.ndarray:
        """``(N, 3)`` points mapped by the transform."""
        return self.scale * np.asarray(points, np.float64) @ self.rotation.T + self.translation

    def matrix(self) -> np.ndarray:
        """``(4, 4)`` homogeneous matrix."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.rotation
        m[:3, 3] = self.translation
        return m


def similarity_transform(source, target, with_scale: bool = True) -> Similarity:
    """The similarity minimising ``sum_i |s R source_i + t - target_i|^2`` (Umeyama).

    ``source``, ``target`` ``(K, 3)`` with row i of one corresponding to row i of the
    other; K >= 3 points not all on one line. ``with_scale=False`` fixes s = 1.
    """
    from scipy.spatial.transform import Rotation

    src, dst = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if src.ndim != 2 or src.shape[1] != 3 or src.shape != dst.shape:
        raise KptoolError(f"registration needs two (K, 3) keypoint sets of equal K, got {src.shape} and {dst.shape}")
    if len(src) < 3 or not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise KptoolError("registration needs at least 3 finite keypoints per shape")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    if np.linalg.matrix_rank(a, tol=1e-9 * max(np.abs(a).max(), 1e-300)) < 2:
        raise KptoolError("registration: the source keypoints are collinear or coincide; the rotation is undefined")
    rot = Rotation.align_vectors(b, a)[0].as_matrix()           # rotation taking a onto b
    scale = float(np.sum(b * (a @ rot.T)) / np.sum(a * a)) if with_scale else 1.0
    return Similarity(scale=scale, rotation=rot, translation=mu_d - scale * rot @ mu_s)


def rotation_error(rotations, references) -> np.ndarray:
    """``(N,)`` geodesic angles in radians, ``acos((tr(R^T R_ref) - 1) / 2)``, between ``(N, 3, 3)`` rotations."""
    trace = np.einsum("nij,nij->n", np.asarray(rotations, np.float64), np.asarray(references, np.float64))
    return np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0))


def rotation_error_deg(rotation, reference) -> float:
    """Geodesic angle between two ``(3, 3)`` rotations, in degrees."""
    return float(np.degrees(rotation_error(np.asarray(rotation)[None], np.asarray(reference)[None])[0]))


def rotation_about_up(angle_deg: float) -> np.ndarray:
    """``(3, 3)`` rotation by ``angle_deg`` about the up axis y (right-handed)."""
    a = np.radians(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@dataclass
class FileRegistration:
    """:func:`register_files`' result, in the two files' own frames.

    Attributes:
        transform: source frame -> target frame.
        source_keypoints, target_keypoints: ``(K, 3)`` ordered keypoints of each file.
        aligned: ``(V, 3)`` the source's points (mesh vertices) mapped into the target's frame.
        faces: ``(F, 3)`` the source's faces, or None for a point cloud.
        rms: root mean square keypoint residual after the fit, in the target's units.
    """

    transform: Similarity
    source_keypoints: np.ndarray
    target_keypoints: np.ndarray
    aligned: np.ndarray
    faces: np.ndarray | None
    rms: float

    def up_angle_deg(self) -> float:
        """Angle of the rotation's turn about the up axis (y), in degrees."""
        r = self.transform.rotation
        return float(np.degrees(np.arctan2(r[0, 2], r[0, 0])))


def register_files(detector, source, target, points: int | None = None, up: str = "y",
                   with_scale: bool = True) -> FileRegistration:
    """Register the ``source`` shape file onto ``target`` through the detector's ordered keypoints.

    Both files are detected as ``kptool detect`` does (each in its own frame); the
    similarity from the source's keypoints to the target's is applied to the source.
    """
    from pathlib import Path

    from kptool.detect import detect_files
    from kptool.io.shapes import load_shape

    if not getattr(detector, "ordered", False):
        raise KptoolError(f"{getattr(detector, 'name', 'this detector')} gives unordered keypoints: registration "
                          f"needs an ordered detector (a trained model)")
    src, dst = detect_files(detector, [Path(source), Path(target)], points=points, up=up)
    fit = similarity_transform(src.keypoints, dst.keypoints, with_scale)
    residual = fit.apply(src.keypoints) - dst.keypoints
    shape = load_shape(source, up=up)
    faces = shape.faces if shape.has_mesh else None
    return FileRegistration(transform=fit, source_keypoints=src.keypoints, target_keypoints=dst.keypoints,
                            aligned=fit.apply(src.input_points), faces=faces,
                            rms=float(np.sqrt((residual ** 2).sum(1).mean())))


def write_aligned(path, result: FileRegistration, overwrite: bool = False):
    """Write the aligned source as ``.ply``: a mesh when the source had faces, else a point cloud."""
    import trimesh

    from kptool.io.atomic import atomic_path
    from kptool.io.writers import write_points_ply

    if result.faces is None:
        return write_points_ply(path, result.aligned, overwrite=overwrite)
    data = trimesh.Trimesh(result.aligned, result.faces, process=False).export(file_type="ply")
    with atomic_path(path, overwrite) as tmp:
        tmp.write_bytes(data)
    return path
