"""A rendered dataset (``kptool render``) as a ``torch.utils.data.Dataset`` of single views.

``RenderedImages(root, split, size, fields)`` has one item per (shape, view) of the shapes of
``split`` (the split each shape had in the prepared dataset the renders came from). Item ``i``
is ``{"index": i, "id": shape id, "view": view number, "split": split, <field>: value, ...}``
with the requested fields of :data:`kptool.data.batches.IMAGE_FIELDS` (all by default), plus
the shape's annotated ``keypoints`` ``(K, 3)`` and ``keypoint_ids`` ``(K,)``, and any
``extras/<name>`` table of the prepared dataset the renders came from (e.g. the voxel grids of
``kptool prepare voxels``, one numpy array per item). Batches are made by
:func:`kptool.data.batches.collate_shapes` (the keypoint fields stay lists: their count varies).

With ``size`` the views are resized to ``size x size``: the RGB image by area-weighted
(antialiased) bilinear resampling, the silhouette as "at least half of the pixel's area
covered", depth and normals by the nearest source pixel centre; the intrinsics and the 2D
keypoints follow (pixel centres at integer coordinates: ``u' = (u + 1/2) s'/s - 1/2``).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kptool.data.batches import EXTRA_PREFIX, IMAGE_FIELDS, read_npz
from kptool.data.prepared import SPLITS, extra_path
from kptool.errors import InputError
from kptool.io.atomic import safe_join
from kptool.io.safe_load import parse_json
from kptool.render.dataset import FORMAT, VERSION, rgb_file

SHAPE_FIELDS = ("keypoints", "keypoint_ids")           # per shape, shared with prepared-dataset batches
FIELDS = (*IMAGE_FIELDS, *SHAPE_FIELDS)
CAMERA_KEYS = {"azimuth": "azimuth", "elevation": "elevation", "distance": "distance", "rotation": "R",
               "translation": "t"}
# what each field reads from views/<id>.npz
NPZ_KEYS = {"silhouette": ("silhouette",), "depth": ("depth",), "normal_map": ("normals",),
            "intrinsics": ("K",), "camera_target": ("target",), "keypoints_2d": ("keypoints_2d", "keypoints"),
            "keypoint_visible": ("keypoint_visible", "keypoints"), "keypoints": ("keypoints",),
            "keypoint_ids": ("keypoint_ids",), **{f: (k,) for f, k in CAMERA_KEYS.items()}}


def read_render_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """The checked ``manifest.json`` of a rendered dataset; InputError naming the folder otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "no such rendered dataset folder")
    path = root / "manifest.json"
    if not path.is_file():
        raise InputError(root, "not a rendered dataset (no manifest.json; run `kptool render`, or it was "
                               "interrupted: run the same command again to finish it)")
    manifest = parse_json(path.read_bytes(), path, "rendered-dataset manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        what = "a prepared shape dataset" if isinstance(manifest, dict) and manifest.get("format") == \
            "kptool-prepared" else "not a rendered dataset"
        raise InputError(root, f"{what}, not renders (no \"format\": \"{FORMAT}\" in manifest.json; "
                               f"make one with `kptool render`)")
    if manifest.get("version") != VERSION:
        raise InputError(path, f"unsupported rendered-dataset version {manifest.get('version')!r}")
    size = manifest.get("options", {}).get("sampling", {}).get("size")
    if not isinstance(size, int) or size < 1:
        raise InputError(path, f"options.sampling.size must be a positive integer, got {size!r}")
    records = manifest.get("shapes")
    if not isinstance(records, list):
        raise InputError(path, "\"shapes\" must be a list of shape records")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not all(isinstance(rec.get(k), str) and rec[k] for k in ("id", "split", "file")):
            raise InputError(path, f"shape record {i} lacks id, split or file")
        if rec["split"] not in SPLITS:
            raise InputError(path, f"shape {rec['id']!r}: unknown split {rec['split']!r}")
        views = rec.get("views")
        if not isinstance(views, int) or isinstance(views, bool) or views < 1:
            raise InputError(path, f"shape {rec['id']!r}: views must be a positive integer, got {views!r}")
        file = Path(rec["file"])
        if file.is_absolute() or ".." in file.parts:
            raise InputError(path, f"shape {rec['id']!r}: file {rec['file']!r} is outside the rendered dataset folder")
    return manifest


def resize_rgb(images, size: int):
    """``(N, 3, H, W)`` float tensor -> ``(N, 3, size, size)``: antialiased bilinear (area-weighted when
    shrinking), clamped to [0, 1]; how every image is resized for a model (datasets and predictors)."""
    import torch.nn.functional as F

    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)


def _resize(array: np.ndarray, size: int, mode: str):
    """``(C, S, S)`` -> ``(C, size, size)`` torch float tensor."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    if mode == "image":
        return resize_rgb(x, size)[0]
    if mode == "area":
        return F.interpolate(x, size=(size, size), mode="area")[0]
    return F.interpolate(x, size=(size, size), mode="nearest-exact")[0]


class RenderedImages:
    """``torch.utils.data.Dataset`` of the views of a rendered dataset (see the module docstring).

    Args:
        root: the folder ``kptool render`` wrote.
        split: ``"train"``, ``"val"``, ``"test"``, ``"all"`` or ``None`` (= all).
        size: resize every view to ``size x size`` pixels (``None``: as rendered).
        fields: what items hold (:data:`FIELDS`; default all). Only the arrays they need are read.
    """

    def __init__(self, root: str | os.PathLike, split: str | None = None, size: int | None = None,
                 fields: Sequence[str] | None = None):
        self.root = Path(root)
        self.manifest = read_render_manifest(self.root)
        if split not in (None, "all", *SPLITS):
            raise InputError(None, f"unknown split {split!r}: expected one of {', '.join(SPLITS)} or all")
        self.split = None if split == "all" else split
        self.fields = tuple(dict.fromkeys(FIELDS if fields is None else fields))
        unknown = [f for f in self.fields if f not in FIELDS and not f.startswith(EXTRA_PREFIX)]
        if unknown:
            raise InputError(None, f"unknown image field(s) {', '.join(map(repr, unknown))} (known: {', '.join(FIELDS)})")
        self.render_size = int(self.manifest["options"]["sampling"]["size"])
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= 4096):
            raise InputError(None, f"image size must be an integer between 8 and 4096 pixels, got {size!r}")
        self.size = self.render_size if size is None else size
        self.records = [r for r in self.manifest["shapes"] if self.split is None or r["split"] == self.split]
        self.items = [(s, v) for s, rec in enumerate(self.records) for v in range(rec["views"])]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]

    def index_of(self, shape_id: str, view: int) -> int:
        """The item index of a shape's view (ValueError when absent)."""
        s = self.ids.index(shape_id)
        if not 0 <= view < self.records[s]["views"]:
            raise ValueError(f"shape {shape_id!r} has {self.records[s]['views']} views, not a view {view}")
        return self.items.index((s, view))

    def torch_dataset(self, fields: Sequence[str]) -> "RenderedImages":
        """The same views holding only ``fields`` (what the training loop and validation ask for)."""
        unknown = [f for f in fields if f not in FIELDS and not f.startswith(EXTRA_PREFIX)]
        if unknown:
            raise InputError(self.root, f"is a rendered image dataset; it has no {', '.join(map(repr, unknown))} "
                                        f"(image fields: {', '.join(FIELDS)}, extras/<name>)")
        for f in fields:
            if f.startswith(EXTRA_PREFIX):
                self._check_extra(f[len(EXTRA_PREFIX):])
        out = copy.copy(self)
        out.fields = tuple(dict.fromkeys(fields))
        return out

    def select(self, indices: Sequence[int]) -> "RenderedImages":
        """The views at ``indices`` (item numbers of this dataset), in that order."""
        out = copy.copy(self)
        out.items = [self.items[int(i)] for i in indices]
        return out

    @property
    def prepared_root(self) -> Path:
        """The prepared dataset the renders were made from (the manifest's ``dataset``)."""
        return Path(self.manifest.get("dataset") or "")

    def _check_extra(self, name: str) -> None:
        """InputError unless the prepared dataset has the table ``extras/<name>`` for every shape."""
        for rec in self.records:
            if not extra_path(self.prepared_root, name, rec["id"]).is_file():
                raise InputError(self.prepared_root, f"shape {rec['id']!r} has no '{name}' table, which the field "
                                                     f"'extras/{name}' needs (the renders' prepared dataset; "
                                                     f"kptool prepare voxels makes voxel tables)")

    def check(self) -> None:
        """Every shape's views file is readable with all its views and every image file exists (InputError
        naming the first that is not): a broken file fails before training, not in the middle of an epoch."""
        for rec in self.records:
            path = safe_join(self.root, rec["file"])
            if not path.is_file():
                raise InputError(path, f"missing views file of shape {rec['id']!r} (re-run `kptool render`)")
            views = len(read_npz(path, ("azimuth",)).get("azimuth", ()))
            if views != rec["views"]:
                raise InputError(path, f"has {views} cameras, the manifest says {rec['views']} views")
            for v in range(rec["views"]):
                image = safe_join(self.root, rgb_file(rec["id"], v))
                if not image.is_file():
                    raise InputError(image, f"missing rendered image of shape {rec['id']!r}")

    def read_image(self, shape_id: str, view: int) -> np.ndarray:
        """``(S, S, 3)`` uint8 RGB of a view as rendered; InputError naming the file."""
        from PIL import Image, UnidentifiedImageError

        path = safe_join(self.root, rgb_file(shape_id, view))
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as e:
            raise InputError(path, f"unreadable rendered image ({e.__class__.__name__}: {e})") from None
        if rgb.shape[:2] != (self.render_size, self.render_size):
            raise InputError(path, f"image is {rgb.shape[1]} x {rgb.shape[0]}, the manifest says "
                                   f"{self.render_size} x {self.render_size}")
        return rgb

    def _arrays(self, rec: dict[str, Any]) -> dict[str, np.ndarray]:
        keys = sorted({k for f in self.fields for k in NPZ_KEYS.get(f, ())})
        if not keys:
            return {}
        path = safe_join(self.root, rec["file"])
        if not path.is_file():
            raise InputError(path, f"missing views file of shape {rec['id']!r} (re-run `kptool render` to finish)")
        arrays = read_npz(path, keys)
        missing = [k for k in keys if k not in arrays]
        if missing:
            raise InputError(path, f"views file lacks {', '.join(missing)}")
        for k in ("silhouette", "depth", "normals", "keypoints_2d", "azimuth", "R"):
            if k in arrays and len(arrays[k]) != rec["views"]:
                raise InputError(path, f"'{k}' has {len(arrays[k])} views, the manifest says {rec['views']}")
        return arrays

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        s, view = self.items[i]
        rec = self.records[s]
        arrays = self._arrays(rec)
        scale = self.size / self.render_size
        resize = self.size != self.render_size
        item: dict[str, Any] = {"index": i, "id": rec["id"], "view": view, "split": rec["split"]}
        for f in self.fields:
            if f == "image":
                rgb = self.read_image(rec["id"], view).transpose(2, 0, 1).astype(np.float32) / 255.0
                item[f] = _resize(rgb, self.size, "image") if resize else torch.from_numpy(rgb)
            elif f == "silhouette":
                sil = arrays["silhouette"][view][None]
                item[f] = (_resize(sil, self.size, "area")[0] >= 0.5) if resize else torch.from_numpy(sil[0].copy())
            elif f == "depth":
                depth = arrays["depth"][view][None].astype(np.float32)
                item[f] = _resize(depth, self.size, "nearest")[0] if resize else torch.from_numpy(depth[0])
            elif f == "normal_map":
                normals = arrays["normals"][view].transpose(2, 0, 1).astype(np.float32)
                item[f] = _resize(normals, self.size, "nearest") if resize else torch.from_numpy(normals)
            elif f == "intrinsics":
                K = arrays["K"].astype(np.float64).copy()
                K[:2, :2] *= scale
                K[:2, 2] = (K[:2, 2] + 0.5) * scale - 0.5
                item[f] = torch.from_numpy(K.astype(np.float32))
            elif f == "keypoints_2d":
                uv = (arrays["keypoints_2d"][view].astype(np.float64) + 0.5) * scale - 0.5
                item[f] = torch.from_numpy(uv.astype(np.float32).reshape(-1, 2))
            elif f == "keypoint_visible":
                item[f] = torch.from_numpy(arrays["keypoint_visible"][view].astype(bool).reshape(-1))
            elif f in ("keypoints", "keypoint_ids"):
                value = arrays[f]
                item[f] = torch.from_numpy(np.ascontiguousarray(value, np.int64 if f == "keypoint_ids" else np.float32))
            elif f.startswith(EXTRA_PREFIX):
                item[f] = np.load(extra_path(self.prepared_root, f[len(EXTRA_PREFIX):], rec["id"]), allow_pickle=False)
            elif f == "camera_target":
                item[f] = torch.from_numpy(arrays["target"].astype(np.float32).reshape(3))
            else:
                item[f] = torch.from_numpy(np.asarray(arrays[CAMERA_KEYS[f]][view], dtype=np.float32))
        return item
