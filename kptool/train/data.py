"""What a run trains on: a prepared shape dataset or a rendered image dataset, as its model reads.

A model whose declared fields include image fields (:data:`kptool.data.batches.IMAGE_FIELDS`,
e.g. ``image``) trains on the views of a ``kptool render`` folder
(:class:`~kptool.render.images.RenderedImages`, resized to ``data.image_size``); every other
model on the shapes of a ``kptool prepare`` folder. Handing one kind of folder to a model of
the other kind is one clear error before anything is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kptool.data.batches import BATCH_FIELDS, IMAGE_FIELDS
from kptool.errors import KptoolError

PREPARED, RENDERS = "kptool-prepared", "kptool-renders"


def reads_images(model) -> bool:
    """True when the model's declared fields are those of rendered images."""
    fields = (*model.inputs, *model.predict_inputs)
    return any(f in IMAGE_FIELDS and f not in BATCH_FIELDS for f in fields)


def data_format(data_dir: str | os.PathLike) -> str | None:
    """The ``format`` tag of a dataset folder's manifest (None when there is none to read)."""
    try:
        manifest = json.loads((Path(data_dir) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):   # unreadable: the dataset's own reader says why
        return None
    return manifest.get("format") if isinstance(manifest, dict) else None


def check_data_kind(data_dir: str | os.PathLike, model, config: dict[str, Any]) -> None:
    """KptoolError when ``data_dir`` is the other kind of dataset than the model trains on."""
    name = config.get("name") or config["model"]["name"]
    kind = data_format(data_dir)
    if reads_images(model) and kind == PREPARED:
        raise KptoolError(f"{data_dir}: a prepared shape dataset, but {name} trains on rendered images: render it "
                          f"first (kptool render {data_dir} --out RENDERS) and pass --data RENDERS")
    if not reads_images(model) and kind == RENDERS:
        raise KptoolError(f"{data_dir}: a rendered image dataset, but {name} trains on prepared shapes: pass "
                          f"the prepared dataset it was rendered from")


def open_split(data_dir: str | os.PathLike, split: str, model, config: dict[str, Any]):
    """The ``split`` of the run's dataset: :class:`RenderedImages` for image models, else :class:`PreparedDataset`."""
    if reads_images(model):
        from kptool.render.images import RenderedImages

        if config["train"]["label_fraction"] != 1:
            raise KptoolError("train.label_fraction applies to prepared shape datasets; rendered images train on "
                              "every view (render fewer shapes instead)")
        return RenderedImages(data_dir, split, config["data"]["image_size"])
    from kptool.data.prepared import PreparedDataset

    return PreparedDataset(data_dir, split)

