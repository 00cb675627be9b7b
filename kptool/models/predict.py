"""A model's predictions for every shape of a prepared dataset split (validation, ``kptool detect``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kptool.data.batches import batch_to, collate_shapes


def predict_dataset(model, dataset, device: torch.device, batch_size: int = 16) -> dict[str, dict[str, np.ndarray]]:
    """``{output kind or detail: {shape id: array}}`` for every shape of ``dataset``, in its order.

    Batches hold the model's ``predict_inputs`` fields; each output is split per shape
    (keypoints ``(K, 3)``, embeddings ``(N, D)``, class logits ``(C,)``...) as float32 numpy.
    """
    data = dataset.torch_dataset(model.predict_inputs)
    out: dict[str, dict[str, np.ndarray]] = {kind: {} for kind in (*model.outputs, *model.details)}
    for start in range(0, len(data), batch_size):
        batch = collate_shapes([data[i] for i in range(start, min(start + batch_size, len(data)))])
        predicted: dict[str, Any] = model.predict(batch_to(batch, device))
        for kind, values in predicted.items():
            for sid, value in zip(batch["id"], values.float().cpu().numpy()):
                out[kind][sid] = value
    return out
