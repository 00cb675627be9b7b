"""A rendered dataset (``kptool render``) as training data: one item per shape and view.

``RenderedViews(root, split)`` follows the dataset interface the training loop uses
(``records``, ``manifest``, ``len``, ``torch_dataset(fields)``); item ``i`` of its torch
dataset is ``{"index", "id", "view", <field>: tensor}`` for the requested fields:

- ``image`` ``(3, S, S)`` float32 RGB in [0, 1];
- ``silhouette`` ``(1, S, S)`` float32 in {0, 1};
- ``depth_map`` ``(1, S, S)`` float32: the 2.5D sketch's depth, ``(z - d) / d`` with ``z`` the
  camera-space depth and ``d`` the camera's distance to the look-at target (the shape's box
  centre), so 0 at the centre's depth and free of the shape's scale; 0 on the background;
- ``normal_map`` ``(3, S, S)`` float32: unit normals in the camera frame, 0 on the background;
- ``extras/voxels-<R>`` / ``extras/canonical-frame``: the shape's tables from the prepared
  dataset the renders came from (``kptool prepare voxels``), one numpy array per item.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kptool.data.batches import EXTRA_PREFIX, check_field
from kptool.data.prepared import extra_path
from kptool.errors import InputError
from kptool.io.atomic import safe_join
from kptool.render.dataset import FORMAT, read_views, rgb_file

IMAGE_FIELDS = ("image", "silhouette", "depth_map", "normal_map")


def is_renders(root: str | Path) -> bool:
    """True when ``root`` holds a finished ``kptool render`` dataset."""
    path = Path(root) / "manifest.json"
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def sketch_arrays(views: dict[str, np.ndarray], view: int) -> dict[str, np.ndarray]:
    """One view's 2.5D sketch from a ``views/<id>.npz``: silhouette ``(S, S)`` float32, depth ``(S, S)``
    ((z - d) / d, 0 off the shape) and normals ``(3, S, S)`` (0 off the shape)."""
    sil = views["silhouette"][view].astype(bool)
    d = float(views["distance"][view])
    depth = np.where(sil, (np.where(sil, views["depth"][view], d) - d) / d, 0.0).astype(np.float32)
    normals = np.where(sil[..., None], views["normals"][view].astype(np.float32), 0.0)
    return {"silhouette": sil.astype(np.float32), "depth": depth,
            "normals": np.ascontiguousarray(normals.transpose(2, 0, 1))}


class RenderedViews:
    """The views of one split of a rendered dataset (see the module docstring)."""

    def __init__(self, root: str | Path, split: str | None = None):
        self.root = Path(root)
        if not is_renders(self.root):
            raise InputError(self.root, "not a rendered dataset (no kptool-renders manifest.json; run kptool render)")
        self.manifest: dict[str, Any] = json.loads((self.root / "manifest.json").read_text(encoding="utf-8"))
        self.split = split
        self.records = [r for r in self.manifest["shapes"] if split is None or r["split"] == split]
        self.items = [(s, v) for s, r in enumerate(self.records) for v in range(int(r["views"]))]
        self.prepared = Path(self.manifest.get("dataset", ""))
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.item(i, IMAGE_FIELDS)

    def only(self, ids) -> "RenderedViews":
        """The views of the shapes whose id is in ``ids``."""
        out = RenderedViews.__new__(RenderedViews)
        out.__dict__.update(self.__dict__)
        out.records = [r for r in self.records if r["id"] in set(ids)]
        out.items = [(s, v) for s, r in enumerate(out.records) for v in range(int(r["views"]))]
        out._cache = OrderedDict()
        return out

    def _views(self, s: int) -> dict[str, np.ndarray]:
        """Shape ``s``'s arrays, kept for the last few shapes (items of a shape are often read together)."""
        if s not in self._cache:
            self._cache[s] = read_views(self.root, self.records[s]["id"])
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        return self._cache[s]

    def image(self, i: int) -> np.ndarray:
        """Item ``i``'s RGB image ``(S, S, 3)`` uint8."""
        from PIL import Image, UnidentifiedImageError

        s, v = self.items[i]
        path = safe_join(self.root, rgb_file(self.records[s]["id"], v))
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as e:
            raise InputError(path, f"unreadable image ({e})") from None

    def extra(self, i: int, name: str) -> np.ndarray:
        """The prepared dataset's table ``extras/<name>`` of item ``i``'s shape."""
        shape_id = self.records[self.items[i][0]]["id"]
        path = extra_path(self.prepared, name, shape_id)
        if not path.is_file():
            raise InputError(path, f"shape {shape_id!r} has no '{name}' table in {self.prepared} "
                                   f"(run kptool prepare voxels on it)")
        return np.load(path, allow_pickle=False)

    def item(self, i: int, fields: Sequence[str]) -> dict[str, Any]:
        import torch

        s, v = self.items[i]
        out: dict[str, Any] = {"index": i, "id": self.records[s]["id"], "view": v}
        if "image" in fields:
            out["image"] = torch.from_numpy(self.image(i).transpose(2, 0, 1).astype(np.float32) / 255)
        if any(f in fields for f in IMAGE_FIELDS[1:]):
            sketch = sketch_arrays(self._views(s), v)
            for field, key in (("silhouette", "silhouette"), ("depth_map", "depth"), ("normal_map", "normals")):
                if field in fields:
                    value = sketch[key]
                    out[field] = torch.from_numpy(value[None] if value.ndim == 2 else value)
        for f in fields:
            if f.startswith(EXTRA_PREFIX):
                out[f] = self.extra(i, f[len(EXTRA_PREFIX):])
        return out

    def torch_dataset(self, fields: Sequence[str] = IMAGE_FIELDS) -> "TorchViews":
        return TorchViews(self, fields)


class TorchViews:
    """``torch.utils.data.Dataset`` of the given fields of a :class:`RenderedViews`."""

    def __init__(self, views: RenderedViews, fields: Sequence[str]):
        self.views = views
        self.fields = tuple(check_field(f, "batch") for f in dict.fromkeys(fields))

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.views.item(i, self.fields)
