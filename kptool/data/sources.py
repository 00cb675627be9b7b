"""Where ``kptool prepare`` reads shapes from: one class per source layout.

A source lists its shapes as :class:`Item` records (cheap: ids and paths) in a
fixed order, knows the official split of an item when the dataset has one, and
loads one item into a :class:`~kptool.data.Shape` in its original frame. Sources
are small picklable dataclasses so worker processes can load items themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kptool.core.shape import Shape
from kptool.data.categories import resolve_category, synset_of
from kptool.errors import InputError, KptoolError
from kptool.io.safe_load import parse_json
from kptool.registry import Registry

# What `kptool prepare <source>` reads, by name (`kptool list sources`).
SOURCES = Registry("prepare source")


@dataclass(frozen=True)
class Item:
    """One shape to prepare: its id, where it comes from, and its official split (if any)."""

    id: str
    path: str
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def _require_dir(path: Path, what: str) -> Path:
    if not path.exists():
        raise InputError(path, f"no such folder ({what})")
    if not path.is_dir():
        raise InputError(path, f"is not a folder ({what})")
    return path


def _read_split_lists(files: dict[str, Path], parse) -> dict[str, str]:
    """``{shape key: split}`` from official split files; ``parse(entry) -> key``."""
    splits: dict[str, str] = {}
    for split, path in files.items():
        if not path.is_file():
            continue
        data = path.read_bytes()
        entries = parse_json(data, path, "JSON split list") if path.suffix == ".json" else data.decode(
            "utf-8", errors="replace").split()
        if not isinstance(entries, list):
            raise InputError(path, "a split list must be a JSON list of shape names")
        for entry in entries:
            splits[parse(entry)] = split
    return splits


@SOURCES.register("synthetic", "kptool's built-in procedural categories: chair, table, airplane, mug")
@dataclass
class SyntheticSource:
    """kptool's built-in procedural category (``kptool.data.synthetic``)."""

    category: str
    count: int
    seed: int = 0
    kind: str = "synthetic"
    default_up: str = "y"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "category": self.category, "count": self.count, "seed": self.seed}

    def items(self) -> list[Item]:
        from kptool.data.synthetic import CATEGORIES

        if self.category not in CATEGORIES:
            raise KptoolError(f"unknown built-in category {self.category!r} (available: {', '.join(CATEGORIES)})")
        if self.count < 1:
            raise KptoolError("--count must be at least 1")
        return [Item(id=f"{self.category}-{i:06d}", path=f"synthetic:{self.category}/{i}", extra={"index": i})
                for i in range(self.count)]

    def load(self, item: Item) -> Shape:
        from kptool.data.synthetic import generate_shape, shape_seed

        # Shape i depends only on (seed, i), never on --count or the worker that makes it.
        shape = generate_shape(self.category, shape_seed(self.seed, item.extra["index"]))
        shape.id = item.id
        shape.meta["source"] = item.path
        return shape


@SOURCES.register("keypointnet", "KeypointNet: annotated keypoints on ShapeNet clouds (and meshes, for geodesics)")
@dataclass
class KeypointNetSource:
    """KeypointNet: ``annotations/<category>.json``, ``pcds/<synset>/<id>.pcd``,
    optional ``meshes/<synset>/<id>.{ply,obj,off}`` and ``splits/{train,val,test}.txt``.

    A shape is prepared when its cloud or its mesh is present; with both, the
    cloud gives the points (annotation ``point_index`` refers to it) and the
    mesh is kept for geodesics.
    """

    root: str
    category: str
    kind: str = "keypointnet"
    default_up: str = "y"

    def describe(self) -> dict[str, Any]:
        name, synset = resolve_category(self.category)
        return {"kind": self.kind, "root": str(Path(self.root).resolve()), "category": name, "synset": synset}

    def _annotation_file(self) -> Path:
        root = _require_dir(Path(self.root), "KeypointNet root")
        name, _ = resolve_category(self.category)
        path = root / "annotations" / f"{name}.json"
        if not path.is_file():
            have = sorted(p.stem for p in (root / "annotations").glob("*.json")) if (root / "annotations").is_dir() else []
            raise InputError(root, f"not a KeypointNet layout: no annotations/{name}.json "
                                   f"(found: {', '.join(have) or 'no annotations folder'})")
        return path

    def items(self) -> list[Item]:
        from kptool.io import read_keypointnet_annotations

        root = Path(self.root)
        synset = synset_of(self.category)
        annotations = read_keypointnet_annotations(self._annotation_file())
        official = _read_split_lists({s: root / "splits" / f"{s}.txt" for s in ("train", "val", "test")},
                                     lambda e: e.strip())
        items = []
        for model_id in sorted(annotations):
            pcd = root / "pcds" / synset / f"{model_id}.pcd"
            meshes = [root / "meshes" / synset / f"{model_id}{s}" for s in (".ply", ".obj", ".off")]
            mesh = next((m for m in meshes if m.is_file()), None)
            if not pcd.is_file() and mesh is None:
                continue
            items.append(Item(id=model_id, path=str(pcd if pcd.is_file() else mesh),
                              split=official.get(f"{synset}-{model_id}"),
                              extra={"pcd": str(pcd) if pcd.is_file() else None,
                                     "mesh": str(mesh) if mesh else None,
                                     "annotation": annotations[model_id]}))
        if not items:
            raise InputError(root, f"no clouds or meshes found for the {len(annotations)} annotated "
                                   f"{self.category} shapes (expected pcds/{synset}/<id>.pcd or meshes/{synset}/<id>.ply)")
        return items

    def load(self, item: Item) -> Shape:
        from kptool.io import load_mesh, load_shape

        ann = item.extra["annotation"]
        if item.extra["pcd"]:
            shape = ann.apply(load_shape(item.extra["pcd"]))
            shape.meta["points_source"] = "cloud"
            if item.extra["mesh"]:
                shape.vertices, shape.faces = load_mesh(item.extra["mesh"])
                shape.meta["mesh"] = _mesh_path(item.extra["mesh"])
        else:
            # Mesh only: keypoints by their xyz (ShapeNetCore.v2 frame = the mesh's); no cloud indices.
            shape = load_shape(item.extra["mesh"])
            shape.keypoints = ann.keypoints.astype(np.float32)
            shape.keypoint_ids = ann.semantic_ids.copy()
            shape.symmetric_pairs = ann.symmetric_pairs.copy()
            shape.meta["mesh"] = _mesh_path(item.extra["mesh"])
        shape.id = item.id
        shape.meta["source"] = item.path
        return shape


@SOURCES.register("shapenet", "ShapeNetCore.v2 meshes, sampled to points")
@dataclass
class ShapeNetSource:
    """ShapeNetCore.v2: ``<synset>/<model_id>/models/model_normalized.obj`` (sampled)."""

    root: str
    category: str
    kind: str = "shapenet"
    default_up: str = "y"

    def describe(self) -> dict[str, Any]:
        name, synset = resolve_category(self.category)
        return {"kind": self.kind, "root": str(Path(self.root).resolve()), "category": name, "synset": synset}

    def items(self) -> list[Item]:
        root = _require_dir(Path(self.root), "ShapeNetCore.v2 root")
        synset = synset_of(self.category)
        folder = root / synset
        if not folder.is_dir():
            raise InputError(root, f"not a ShapeNetCore.v2 layout: no {synset}/ folder for {self.category}")
        items = []
        for model_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            model = model_dir / "models" / "model_normalized.obj"
            if model.is_file():
                items.append(Item(id=model_dir.name, path=str(model)))
        if not items:
            raise InputError(folder, "no <model_id>/models/model_normalized.obj files found")
        return items

    def load(self, item: Item) -> Shape:
        from kptool.io import load_shape

        shape = load_shape(item.path)
        shape.id = item.id
        shape.meta["source"] = item.path
        shape.meta["mesh"] = _mesh_path(item.path)
        return shape


@SOURCES.register("shapenet-part", "ShapeNet-Part benchmark: points with per-point part labels and official splits")
@dataclass
class ShapeNetPartSource:
    """ShapeNet-Part benchmark: ``<synset>/points/<id>.pts`` + ``points_label/<id>.seg``,
    official splits in ``train_test_split/shuffled_{train,val,test}_file_list.json``."""

    root: str
    category: str
    kind: str = "shapenet-part"
    default_up: str = "y"

    def describe(self) -> dict[str, Any]:
        name, synset = resolve_category(self.category)
        return {"kind": self.kind, "root": str(Path(self.root).resolve()), "category": name, "synset": synset}

    def items(self) -> list[Item]:
        root = _require_dir(Path(self.root), "ShapeNet-Part root")
        synset = synset_of(self.category)
        points_dir = root / synset / "points"
        if not points_dir.is_dir():
            raise InputError(root, f"not a ShapeNet-Part layout: no {synset}/points/ folder for {self.category}")
        split_dir = root / "train_test_split"
        official = _read_split_lists(
            {s: split_dir / f"shuffled_{s}_file_list.json" for s in ("train", "val", "test")},
            lambda e: str(e).rstrip("/").split("/")[-1])
        items = []
        for pts in sorted(points_dir.glob("*.pts")):
            seg = root / synset / "points_label" / f"{pts.stem}.seg"
            items.append(Item(id=pts.stem, path=str(pts), split=official.get(pts.stem),
                              extra={"seg": str(seg) if seg.is_file() else None}))
        if not items:
            raise InputError(points_dir, "no .pts files found")
        return items

    def load(self, item: Item) -> Shape:
        from kptool.io import read_shapenet_part

        shape = read_shapenet_part(item.path, item.extra["seg"])
        shape.id = item.id
        shape.meta["source"] = item.path
        return shape


MODELNET_POINTS_FROM = ("surface", "vertices")


@SOURCES.register("modelnet", "ModelNet10/40 meshes, one class per dataset")
@dataclass
class ModelNetSource:
    """ModelNet10/40: ``<class>/{train,test}/<name>.off``; ``--category`` picks one class.

    ``points_from``: ``surface`` samples each mesh area-weighted (kptool's default);
    ``vertices`` takes the mesh's own vertices as the cloud, as the shape-basis authors
    did (a mesh with fewer vertices than ``--points`` then fails and is listed). The
    choice is recorded in the manifest's ``source``.
    """

    root: str
    category: str | None = None
    points_from: str = "surface"
    kind: str = "modelnet"
    default_up: str = "z"

    def __post_init__(self) -> None:
        if self.points_from not in MODELNET_POINTS_FROM:
            raise KptoolError(f"--points-from must be one of {', '.join(MODELNET_POINTS_FROM)}, "
                              f"got {self.points_from!r}")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": str(Path(self.root).resolve()), "category": self.category,
                "points_from": self.points_from}

    def items(self) -> list[Item]:
        root = _require_dir(Path(self.root), "ModelNet root")
        classes = sorted(p for p in root.iterdir() if p.is_dir() and ((p / "train").is_dir() or (p / "test").is_dir()))
        if self.category is not None:
            classes = [c for c in classes if c.name.lower() == self.category.lower()]
            if not classes:
                raise InputError(root, f"no ModelNet class folder named {self.category!r}")
        if not classes:
            raise InputError(root, "not a ModelNet layout: expected <class>/train/*.off and <class>/test/*.off")
        items = []
        for cls in classes:
            for split in ("train", "test"):
                for off in sorted((cls / split).glob("*.off")):
                    items.append(Item(id=off.stem, path=str(off), split=split, extra={"class": cls.name}))
        if not items:
            raise InputError(root, "no .off files found under <class>/train or <class>/test")
        return items

    def load(self, item: Item) -> Shape:
        from kptool.io import load_shape

        shape = load_shape(item.path)
        shape.id = item.id
        shape.category = item.extra["class"]
        shape.meta["source"] = item.path
        shape.meta["class"] = item.extra["class"]
        shape.meta["mesh"] = _mesh_path(item.path)
        if self.points_from == "vertices":
            # the cloud is the mesh's vertices (the mesh is kept for pictures and geodesics)
            shape.points = np.asarray(shape.vertices, dtype=np.float64)
            shape.meta["points_source"] = "cloud"
        return shape


@SOURCES.register("folder", "any folder of meshes and point clouds, searched recursively (e.g. your own scans)")
@dataclass
class FolderSource:
    """Any folder of meshes and clouds (searched recursively), e.g. a user's own scans."""

    root: str
    category: str | None = None
    correspondences: str | None = None   # a kptool-correspondences JSON file (kptool.io.correspondences)
    kind: str = "folder"
    default_up: str = "y"

    def describe(self) -> dict[str, Any]:
        out = {"kind": self.kind, "root": str(Path(self.root).resolve()), "category": self.category}
        if self.correspondences:
            from kptool.io.correspondences import read_correspondences

            out["correspondences"] = {"file": str(Path(self.correspondences).resolve()),
                                      "sets": read_correspondences(self.correspondences).sets}
        return out

    def items(self) -> list[Item]:
        root = _require_dir(Path(self.root), "input folder")
        from kptool.io.shapes import SUFFIXES, shape_files

        files = shape_files(root)
        if not files:
            raise InputError(root, f"no shape files found (looked for {', '.join(SUFFIXES)})")
        items, seen = [], set()
        for f in files:
            rel = f.relative_to(root)
            sid = re.sub(r"[^A-Za-z0-9._-]+", "_", str(rel.with_suffix("")).replace("/", "__"))
            if sid in seen:  # same name, other format: keep both
                base = sid = f"{sid}_{f.suffix.lstrip('.').lower()}"
                n = 2
                while sid in seen:  # `x ply.obj` already took `x_ply`
                    sid, n = f"{base}{n}", n + 1
            seen.add(sid)
            items.append(Item(id=sid, path=str(f), extra={"names": (sid, rel.as_posix(), rel.with_suffix("").as_posix())}))
        if self.correspondences:
            self._attach(items)
        return items

    def _attach(self, items: list[Item]) -> None:
        """Give each item the correspondence points that name it (an unknown name is an error)."""
        from kptool.io.correspondences import read_correspondences

        sets = read_correspondences(self.correspondences)
        by_name = {name: it for it in items for name in it.extra["names"]}
        unknown = [k for k in sets.shape_keys() if k not in by_name]
        if unknown:
            raise InputError(self.correspondences, f"names shape(s) not in {self.root}: {', '.join(unknown[:3])}"
                                                   + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""))
        for key in sets.shape_keys():
            by_name[key].extra["correspondences"] = (sets, key)

    def load(self, item: Item) -> Shape:
        from kptool.io import load_shape

        shape = load_shape(item.path)
        if "correspondences" in item.extra:
            sets, key = item.extra["correspondences"]
            shape = sets.apply(shape, key)
        seg = Path(item.path).with_suffix(".seg")
        if shape.point_labels is None and not shape.has_mesh and seg.is_file():
            labels = np.loadtxt(seg, dtype=np.int64, ndmin=1)
            if len(labels) != shape.num_points:
                raise InputError(seg, f"has {len(labels)} labels for {shape.num_points} points")
            shape.point_labels = labels
        shape.id = item.id
        shape.meta["source"] = item.path
        if shape.has_mesh:
            shape.meta["mesh"] = _mesh_path(item.path)
        return shape


def _mesh_path(path: str) -> str:
    """The absolute path of a mesh file, kept in the prepared dataset so that renderers can
    read its materials and textures (the shape file keeps only vertices and faces)."""
    return str(Path(path).resolve())


def assign_splits(items: list[Item], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Official splits where given; the rest assigned by a seeded shuffle in ``fractions``,
    separately within each class (``item.extra["class"]``) so that every class is split alike."""
    out = {it.id: it.split for it in items if it.split}
    groups: dict[Any, list[str]] = {}
    for it in items:
        if not it.split:
            groups.setdefault(it.extra.get("class"), []).append(it.id)
    for ids in groups.values():
        rest = sorted(ids)
        order = np.random.default_rng(seed).permutation(len(rest))
        n_train = int(round(fractions[0] * len(rest)))
        n_val = int(round(fractions[1] * len(rest)))
        for rank, k in enumerate(order):
            out[rest[k]] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return out
