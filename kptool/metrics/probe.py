"""The linear-SVM probe as a registered metric of ``global_features`` predictions.

``kptool eval svm FEATURES.npz`` fits on a train split and scores a test split; a
metric sees one split only (training validation passes the validation split), so this
one scores the features by stratified cross-validation *within* the evaluated shapes:
the reference SVM (linear kernel, C = 1, no scaling) fitted on k - 1 folds, accuracy on
the k-th, averaged. Classes with fewer than two shapes are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kptool.errors import KptoolError
from kptool.metrics.registry import EvalContext, Metric, register_metric


@register_metric("svm-cv")
class SVMProbeCV(Metric):
    """Linear-SVM probe of global features: stratified k-fold CV accuracy by class label within the shapes."""

    kind = "global_features"

    def __init__(self, folds: int = 5, C: float = 1.0):
        self.folds, self.C = int(folds), float(C)

    def _labelled(self, ctx: EvalContext) -> tuple[np.ndarray, np.ndarray, list[str]]:
        names = np.array([s.category or "" for s in ctx.shapes])
        classes, counts = np.unique(names, return_counts=True)
        kept = [c for c, n in zip(classes, counts) if n >= 2]
        keep = np.isin(names, kept)
        if len(kept) < 2:
            raise KptoolError(f"{self.name} needs at least two classes with two or more shapes each; the evaluated "
                              f"shapes have {len(classes)} class(es)")
        feats = np.stack([np.asarray(f, dtype=np.float32) for f in ctx.of_kind(self.kind, self.name)])
        return feats[keep], np.searchsorted(kept, names[keep]), kept

    def check(self, ctx: EvalContext) -> None:
        self._labelled(ctx)

    def compute(self, ctx: EvalContext) -> dict[str, Any]:
        from kptool.probe.svm import choose_c

        x, y, classes = self._labelled(ctx)
        _, scores = choose_c(x, y, (self.C,), self.folds, "svc", seed=0)
        return {"accuracy": next(iter(scores.values())), "num_shapes": int(len(y)), "classes": classes,
                "folds": int(min(self.folds, np.bincount(y).min())), "C": self.C}

    def scalars(self, result):
        return {"svm_cv_accuracy": result["accuracy"]}

    def rows(self, result):
        return [("linear-SVM CV accuracy", result["accuracy"],
                 f"{result['num_shapes']} shapes, {len(result['classes'])} classes, {result['folds']} folds")]
