"""Rebuild the embedding database of a trained embedding model from another annotated set (``kptool embed-db``)."""

from __future__ import annotations

import os
from typing import Any

from kptool.errors import InputError


def rebuild_database(checkpoint: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
                     split: str = "train", device: str = "auto", force: bool = False,
                     batch_size: int = 8) -> dict[str, Any]:
    """Write a copy of ``checkpoint`` whose database (per set id, the mean embedding) comes from ``data``.

    Args:
        checkpoint: a run folder (its best.pt, else last.pt) or a .pt file of a ``dense-embedding`` model.
        data: a prepared dataset with keypoint annotations (correspondence sets).
        out: the new checkpoint file (refused when it exists, unless ``force``).
        split: the split of ``data`` whose annotated shapes make the database.

    Returns what the checkpoint's ``meta["embedding_database"]`` now records, plus ``"sets"`` and ``"out"``.
    """
    from kptool.data.prepared import PreparedDataset
    from kptool.device import resolve_device
    from kptool.io.atomic import check_writable
    from kptool.models import build_model
    from kptool.models.embedding import DenseEmbedding
    from kptool.train.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint

    target = check_writable(out, force)
    path = find_checkpoint(checkpoint)
    state = load_checkpoint(path)
    model = build_model(state["config"]["model"])
    if not isinstance(model, DenseEmbedding):
        raise InputError(path, f"holds a {state['config']['model'].get('name')!r} model; an embedding database "
                               f"needs a dense-embedding one (presets embed-*)")
    model.load_state_dict(state["model"])
    model.to(resolve_device(device))
    meta = model.after_training(PreparedDataset(data, split), next(model.parameters()).device, batch_size)
    state["model"] = model.state_dict()
    state["meta"] = {**state.get("meta", {}), **meta}
    save_checkpoint(target, state)
    return {**meta["embedding_database"], "sets": model.num_keypoints, "out": str(target)}
