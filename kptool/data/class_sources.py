"""Prepare sources whose shapes carry a class label (for classification and the SVM probe).

The label is ``Shape.category``; ``kptool prepare`` writes it into each shape's
manifest record as ``category`` and the dataset's class list is the sorted set of
those names (docs/formats.md). Besides ModelNet (``sources.ModelNetSource``):

- :class:`SyntheticSetSource`: several built-in categories pooled into one set;
- :class:`ClassFolderSource`: a folder with one subfolder per class;
- :class:`FurnitureSource`: the SweetHome3D furniture set (``catalog.csv``: class and
  a fixed train/test split).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kptool.data.shape import Shape
from kptool.data.sources import FolderSource, Item, SyntheticSource, _require_dir
from kptool.errors import InputError, KptoolError

SPLIT_FOLDERS = ("train", "val", "test")


def parse_categories(value: str) -> list[str]:
    """``"all"`` -> every built-in category; ``"chair,table"`` -> that list (checked, order kept)."""
    from kptool.data.synthetic import CATEGORIES

    if value.strip().lower() == "all":
        return list(CATEGORIES)
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in CATEGORIES]
    if not names or unknown:
        raise KptoolError(f"--category: unknown built-in categor{'ies' if len(unknown) > 1 else 'y'} "
                          f"{', '.join(map(repr, unknown)) or repr(value)} (available: {', '.join(CATEGORIES)}, all)")
    if len(set(names)) != len(names):
        raise KptoolError(f"--category lists a category twice: {value!r}")
    return names


def _class_filter(category: str | None) -> set[str] | None:
    """``--category`` of the labelled sources: a comma list of classes to keep (None = all)."""
    if category is None:
        return None
    return {c.strip().lower() for c in category.split(",") if c.strip()}


@dataclass
class SyntheticSetSource:
    """Several built-in categories pooled into one labelled set: ``count`` shapes of each.

    Shape ``i`` of category ``c`` is the same as in ``kptool prepare synthetic -c c``
    with the same seed (same id ``c-00000i``, same geometry).
    """

    categories: tuple[str, ...]
    count: int
    seed: int = 0
    kind: str = "synthetic-set"
    default_up: str = "y"

    def _one(self, category: str) -> SyntheticSource:
        return SyntheticSource(category, self.count, self.seed)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "category": ",".join(self.categories), "categories": list(self.categories),
                "count": self.count, "seed": self.seed}

    def items(self) -> list[Item]:
        # the class in extra: splits are drawn per category (sources.assign_splits)
        return [Item(it.id, it.path, extra={**it.extra, "class": c}) for c in self.categories
                for it in self._one(c).items()]

    def load(self, item: Item) -> Shape:
        return self._one(item.extra["class"]).load(item)


@dataclass
class ClassFolderSource:
    """A folder with one subfolder per class: ``<class>/**/<shape file>``.

    A split folder right under the class (``<class>/train/...``, ``val``, ``test``)
    gives the shape's split, as in ModelNet's layout; other shapes are split by
    ``--splits``. Files directly in the root have no class and are refused.
    ``category`` keeps only the listed classes (comma-separated).
    """

    root: str
    category: str | None = None
    kind: str = "class-folders"
    default_up: str = "y"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": str(Path(self.root).resolve()), "category": self.category}

    def items(self) -> list[Item]:
        root = Path(self.root)
        keep = _class_filter(self.category)
        out = []
        for it in FolderSource(self.root).items():
            rel = Path(it.path).relative_to(root)
            if len(rel.parts) < 2:
                raise InputError(root / rel, "is not inside a class subfolder (expected <class>/<file>)")
            label = rel.parts[0]
            if keep is not None and label.lower() not in keep:
                continue
            split = rel.parts[1] if len(rel.parts) > 2 and rel.parts[1] in SPLIT_FOLDERS else None
            out.append(Item(id=it.id, path=it.path, split=split, extra={"class": label}))
        if not out:
            raise InputError(root, f"no shape files in the classes {self.category!r}")
        return out

    def load(self, item: Item) -> Shape:
        shape = FolderSource(self.root).load(item)
        shape.category = item.extra["class"]
        return shape


CATALOG = "catalog.csv"
CATALOG_COLUMNS = ("id", "category", "split", "file")
ATTRIBUTION = ("name", "source_library", "creator", "license")


@dataclass
class FurnitureSource:
    """The SweetHome3D furniture set: ``catalog.csv`` (id, category, split, file, licence
    columns) and ``<class>/<id>/model.obj``; y-up, centimetres, fixed train/test split.

    Each shape keeps its catalog name, library, creator and licence in ``meta`` (CC-BY
    models must be attributed when shown). ``category`` keeps only the listed classes.
    """

    root: str
    category: str | None = None
    kind: str = "furniture"
    default_up: str = "y"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": str(Path(self.root).resolve()), "category": self.category}

    def _catalog(self) -> list[dict[str, str]]:
        root = _require_dir(Path(self.root), "furniture root")
        path = root / CATALOG
        if not path.is_file():
            raise InputError(root, f"not a furniture layout: no {CATALOG}")
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in CATALOG_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(path, f"lacks the column(s) {', '.join(missing)}")
            rows = list(reader)
        for n, row in enumerate(rows, start=2):
            if row["split"] not in SPLIT_FOLDERS:
                raise InputError(path, f"line {n}: split {row['split']!r} is not one of {', '.join(SPLIT_FOLDERS)}")
            if not row["id"] or not row["category"] or not row["file"]:
                raise InputError(path, f"line {n}: empty id, category or file")
            if root.resolve() not in (root / row["file"]).resolve().parents:
                raise InputError(path, f"line {n}: file {row['file']!r} points outside {root}")
        return rows

    def items(self) -> list[Item]:
        root = Path(self.root)
        keep = _class_filter(self.category)
        items = []
        for row in self._catalog():
            if keep is not None and row["category"].lower() not in keep:
                continue
            extra = {"class": row["category"], **{k: row[k] for k in ATTRIBUTION if row.get(k)}}
            items.append(Item(id=row["id"], path=str(root / row["file"]), split=row["split"], extra=extra))
        if not items:
            raise InputError(root / CATALOG, f"no models in the classes {self.category!r}")
        return items

    def load(self, item: Item) -> Shape:
        from kptool.io import load_shape

        path = Path(item.path)
        if not path.is_file():
            raise InputError(path, "listed in catalog.csv but missing")
        shape = load_shape(path)
        shape.id = item.id
        shape.category = item.extra["class"]
        shape.meta.update({"source": item.path, **{k: v for k, v in item.extra.items() if k in ATTRIBUTION}})
        return shape
