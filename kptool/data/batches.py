"""From a prepared dataset to model batches: exactly the fields a model declares.

``TorchShapes(dataset, fields)`` is a ``torch.utils.data.Dataset`` whose item ``i`` is
``{"index": i, "id": shape id, <field>: value, ...}`` for the requested fields
(:data:`kptool.models.base.BATCH_FIELDS`, or ``extras/<name>``); :func:`collate_shapes`
stacks items into a batch and :func:`batch_to` moves one to a device.

Per-point fields (``points``, ``normals``, ``point_labels``) and per-shape ones
(``class_label``, ``symmetry_plane``) stack into ``(B, ...)`` tensors. Annotations
whose count varies (``keypoints``, ``keypoint_ids``, ``keypoint_point_index``) stay
lists of per-shape tensors (empty for a shape without annotations). Extras (per-shape
tables such as geodesic distances, possibly large) are memory-mapped numpy arrays, read
only where a model indexes them; they stay on the CPU.
"""

from __future__ import annotations

import zipfile
from typing import Any, Sequence

import numpy as np

from kptool.errors import InputError, KptoolError

# Fields a prepared dataset can put into a batch, for the models' ``inputs`` declarations.
BATCH_FIELDS: dict[str, str] = {
    "points": "(B, N, 3) float32 points, prepared frame",
    "normals": "(B, N, 3) float32 per-point normals",
    "keypoints": "B tensors (K_i, 3): annotated keypoints",
    "keypoint_ids": "B tensors (K_i,) int64: semantic ids of the annotated keypoints",
    "keypoint_point_index": "B tensors (K_i,) int64: index of each keypoint in points (-1: none)",
    "point_labels": "(B, N) int64 part labels (1-based, 0 = none)",
    "class_label": "(B,) int64 index of the shape's category in the dataset's class list",
    "symmetry_plane": "(B, 4) float32 plane n.x + d = 0 of reflective symmetry",
}
# Fields a rendered image dataset puts into a batch (kptool.render.images.RenderedImages): one item per
# (shape, view); ``keypoints`` and ``keypoint_ids`` above are shared (the shape's annotated keypoints).
IMAGE_FIELDS: dict[str, str] = {
    "image": "(B, 3, H, W) float32 RGB in [0, 1]",
    "silhouette": "(B, H, W) bool: pixel centre covered by the shape",
    "depth": "(B, H, W) float32 camera-space z, inf on the background",
    "normal_map": "(B, 3, H, W) float32 unit normals in the camera frame, 0 on the background",
    "azimuth": "(B,) float32 radians in [0, 2 pi): atan2(x, z) of the eye direction",
    "elevation": "(B,) float32 radians in [0, pi]: polar angle of the eye direction from +y",
    "distance": "(B,) float32 eye-to-target distance, prepared-frame units",
    "intrinsics": "(B, 3, 3) float32 K for the batch's image size",
    "rotation": "(B, 3, 3) float32 R (x_cam = R x + t)",
    "translation": "(B, 3) float32 t",
    "camera_target": "(B, 3) float32 look-at point, prepared frame",
    "keypoints_2d": "B tensors (K_i, 2) float32 pixel coordinates (u, v) of the annotated keypoints",
    "keypoint_visible": "B tensors (K_i,) bool: in the image and not hidden by the shape",
}
EXTRA_PREFIX = "extras/"   # "extras/<name>": the shape's table extras/<name>/<id>.npy, memory-mapped
RAGGED = ("keypoints", "keypoint_ids", "keypoint_point_index", "keypoints_2d", "keypoint_visible")
# stored key and dtype of the fields read from shape files
STORED = {"points": np.float32, "normals": np.float32, "point_labels": np.int64, "symmetry_plane": np.float32,
          "keypoints": np.float32, "keypoint_ids": np.int64, "keypoint_point_index": np.int64}
EMPTY = {"keypoints": (0, 3), "keypoint_ids": (0,), "keypoint_point_index": (0,)}


def check_field(name: str, where: str) -> str:
    """``name`` if it is a batch field of shapes or images (or ``extras/<name>``); KptoolError naming ``where``
    otherwise."""
    if name in BATCH_FIELDS or name in IMAGE_FIELDS or (name.startswith(EXTRA_PREFIX) and len(name) > len(EXTRA_PREFIX)):
        return name
    raise KptoolError(f"{where}: unknown batch field {name!r} (known: {', '.join(BATCH_FIELDS)}, "
                      f"{', '.join(IMAGE_FIELDS)}, extras/<name>)")


class TorchShapes:
    """A ``torch.utils.data.Dataset`` of the given fields of a :class:`~kptool.data.prepared.PreparedDataset`.

    Only the requested arrays are read from each shape file. A shape that lacks a
    field other than the keypoint annotations raises :class:`~kptool.errors.InputError`
    naming the shape and the field.
    """

    def __init__(self, dataset, fields: Sequence[str] = ("points",)):
        self.dataset = dataset
        self.fields = tuple(check_field(f, "batch") for f in dict.fromkeys(fields))
        images_only = [f for f in self.fields if f in IMAGE_FIELDS and f not in BATCH_FIELDS]
        if images_only:
            raise InputError(dataset.root, f"is a prepared shape dataset, but {', '.join(images_only)} come(s) from "
                                           f"rendered images (`kptool render` it and use the renders)")
        for f in self.fields:
            if f.startswith(EXTRA_PREFIX) and f[len(EXTRA_PREFIX):] not in dataset.manifest.get("extras", {}):
                raise InputError(dataset.root, f"has no '{f[len(EXTRA_PREFIX):]}' tables, which field {f!r} needs")

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        rec = self.dataset.records[i]
        stored = [f for f in self.fields if f in STORED]
        arrays = self.dataset.read_arrays(i, stored)
        item: dict[str, Any] = {"index": i, "id": rec["id"]}
        for f in self.fields:
            if f in STORED:
                value = arrays.get(f)
                if value is None:
                    if f not in EMPTY:
                        raise InputError(self.dataset.root, f"shape {rec['id']!r} has no {f} (a batch field "
                                                            f"the model needs)")
                    value = np.zeros(EMPTY[f])
                item[f] = torch.from_numpy(np.ascontiguousarray(value, dtype=STORED[f]))
            elif f == "class_label":
                item[f] = torch.tensor(self.dataset.class_index(i), dtype=torch.int64)
            else:
                item[f] = self.dataset.extra(i, f[len(EXTRA_PREFIX):])
        return item


def collate_shapes(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into a batch: equal-sized tensors -> ``(B, ...)``; ragged fields and extras stay lists."""
    import torch

    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if key in RAGGED or key.startswith(EXTRA_PREFIX):
            out[key] = values
        elif isinstance(values[0], torch.Tensor) and all(v.shape == values[0].shape for v in values):
            out[key] = torch.stack(values)
        elif isinstance(values[0], int):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out


def batch_to(batch: dict[str, Any], device, non_blocking: bool = False) -> dict[str, Any]:
    """The batch with every tensor (and list of tensors) on ``device``; extras stay memory-mapped on the CPU."""
    import torch

    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=non_blocking)
        elif isinstance(value, list) and value and all(isinstance(v, torch.Tensor) for v in value):
            value = [v.to(device, non_blocking=non_blocking) for v in value]
        out[key] = value
    return out


def read_npz(path, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (all when None) of an ``.npz`` file that has them; InputError for a bad file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in (z.files if keys is None else keys) if k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(path, f"unreadable prepared shape file ({e})") from None
