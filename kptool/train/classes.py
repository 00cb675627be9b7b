"""The class list of a classification run: taken from the training data, checked, recorded.

A model section with ``num_classes`` (the classifier) learns the dataset's classes: the
sorted class names of the whole prepared set (``PreparedDataset.class_names``, the index
of a ``class_label``). ``num_classes: auto`` becomes that count; a number must match it.
The names go into ``model.class_names``, so the run's config.yaml, every checkpoint and
exported weights say which logit is which class.
"""

from __future__ import annotations

import copy
from typing import Any

from kptool.errors import InputError


def _listing(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def fit_classes(model_cfg: dict[str, Any], dataset) -> dict[str, Any]:
    """``model_cfg`` with ``num_classes`` and ``class_names`` set from ``dataset``'s classes.

    Model sections without ``num_classes`` come back unchanged. Raises :class:`InputError`
    (naming the data folder) when the data has unlabelled shapes or fewer than two classes,
    when a numeric ``num_classes`` or a recorded ``class_names`` (resumed run) disagrees.
    """
    if "num_classes" not in model_cfg:
        return model_cfg
    names = list(dataset.class_names)
    if "" in names:
        raise InputError(dataset.root, "has shapes without a class label; a classifier needs every shape "
                                       "labelled (docs/formats.md, \"Class labels\")")
    if len(names) < 2:
        raise InputError(dataset.root, f"has {len(names)} class ({_listing(names)}); a classifier needs at least 2")
    wanted = model_cfg["num_classes"]
    if wanted not in ("auto", None) and wanted != len(names):
        raise InputError(dataset.root, f"has {len(names)} classes ({_listing(names)}) but model.num_classes is "
                                       f"{wanted} (leave it at auto to take the data's)")
    recorded = model_cfg.get("class_names")
    if recorded is not None and list(recorded) != names:
        raise InputError(dataset.root, f"has the classes {_listing(names)}, but the run was trained on "
                                       f"{_listing(list(recorded))}")
    out = copy.deepcopy(model_cfg)
    out["num_classes"], out["class_names"] = len(names), names
    return out
