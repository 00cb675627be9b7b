"""Shape classification accuracy of ``class_logits`` predictions against the shapes' class labels.

Scores are matched to classes by name: score ``j`` is class ``ctx.class_names[j]`` (the
predicting model's classes, recorded when it was trained), or the evaluated dataset's
``j``-th class when the predictions do not name theirs. A model's prediction counts as
right when its class name equals the shape's label, so a classifier can be evaluated on
another prepared set with some of its classes.
"""

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
        classes = list(ctx.class_names or ctx.dataset.class_names)
        logits = ctx.of_kind(self.kind, self.name)
        widths = {len(np.ravel(v)) for v in logits}
        if widths != {len(classes)}:
            raise KptoolError(f"{self.name}: the predictions hold {', '.join(map(str, sorted(widths)))} class scores "
                              f"per shape for {len(classes)} classes ({', '.join(classes[:6])}...)")
        truth = np.array([s.category or "" for s in ctx.shapes])
        pred = np.array([classes[int(np.argmax(v))] for v in logits])
        per_class = {name: float((pred[truth == name] == name).mean()) for name in sorted(set(truth))}
        return {"accuracy": float((pred == truth).mean()), "mean_class_accuracy": float(np.mean(list(
            per_class.values()))), "per_class": per_class, "num_shapes": int(len(truth)),
            "unknown_to_model": sorted(set(truth) - set(classes))}

    def scalars(self, result):
        return {"class_accuracy": result["accuracy"], "mean_class_accuracy": result["mean_class_accuracy"]}

    def rows(self, result):
        return [("classification accuracy", result["accuracy"], f"{result['num_shapes']} shapes"),
                ("mean class accuracy", result["mean_class_accuracy"], f"{len(result['per_class'])} classes"
                 + (f" ({', '.join(result['unknown_to_model'])} unknown to the model)"
                    if result.get("unknown_to_model") else ""))]
