"""Shape classification accuracy of ``class_logits`` predictions against the shapes' class labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from kptool.errors import KptoolError
from kptool.metrics.registry import EvalContext, Metric, register_metric


@register_metric("class-accuracy")
class ClassAccuracy(Metric):
    """Overall and mean per-class accuracy of the argmax of class logits (classes: the dataset's class list)."""

    kind = "class_logits"

    def check(self, ctx: EvalContext) -> None:
        if not any(s.category for s in ctx.shapes):
            raise KptoolError(f"{self.name} needs class labels, and the evaluated shapes have none")

    def compute(self, ctx: EvalContext) -> dict[str, Any]:
        classes = ctx.dataset.class_names
        logits = ctx.of_kind(self.kind, self.name)
        truth = np.array([classes.index(s.category or "") for s in ctx.shapes])
        pred = np.array([int(np.argmax(v)) for v in logits])
        per_class = {classes[c]: float((pred[truth == c] == c).mean()) for c in np.unique(truth)}
        return {"accuracy": float((pred == truth).mean()), "mean_class_accuracy": float(np.mean(list(
            per_class.values()))), "per_class": per_class, "num_shapes": int(len(truth))}

    def scalars(self, result):
        return {"class_accuracy": result["accuracy"], "mean_class_accuracy": result["mean_class_accuracy"]}

    def rows(self, result):
        return [("classification accuracy", result["accuracy"], f"{result['num_shapes']} shapes"),
                ("mean class accuracy", result["mean_class_accuracy"], f"{len(result['per_class'])} classes")]
