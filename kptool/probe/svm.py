"""The linear-SVM probe of self-supervised features (the protocol of OcCo's ``train_svm.py``).

A linear SVM is fitted on the train split's features as they are (no scaling), C = 1,
and scored on the test split: overall accuracy, per-class accuracy and the confusion
matrix. Optionally C is chosen by stratified cross-validation on the train split only.
The accuracy comes with its 95 % Wilson interval: with a few dozen test shapes, two
accuracies closer than that interval's half-width are not separated by the test set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kptool.errors import KptoolError
from kptool.probe.features import FeatureSet

SOLVERS = ("svc", "liblinear")
DEFAULT_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)


@dataclass
class ProbeReport:
    """What :func:`linear_svm_probe` measured (JSON-ready through :meth:`to_json`)."""

    accuracy: float
    accuracy_ci95: tuple[float, float]
    mean_class_accuracy: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]          # rows: true class, columns: predicted, in ``classes`` order
    classes: list[str]
    C: float
    C_from: str                         # "fixed" or "cv"
    solver: str
    train_size: int
    test_size: int
    feature_dim: int
    cv_accuracy: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _classifier(solver: str, C: float, seed: int):
    from sklearn.svm import SVC, LinearSVC

    if solver == "svc":
        return SVC(kernel="linear", C=C)
    return LinearSVC(C=C, dual="auto", max_iter=20000, random_state=seed)


def choose_c(x: np.ndarray, y: np.ndarray, grid: tuple[float, ...], folds: int, solver: str,
             seed: int) -> tuple[float, dict[str, float]]:
    """The C of ``grid`` with the best mean accuracy in stratified ``folds``-fold CV; also every C's accuracy."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    smallest = int(np.bincount(y)[np.unique(y)].min())
    if smallest < 2:
        raise KptoolError("choosing C by cross-validation needs at least 2 training shapes per class")
    cv = StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=seed)
    search = GridSearchCV(_classifier(solver, 1.0, seed), {"C": list(grid)}, cv=cv, scoring="accuracy")
    search.fit(x, y)
    scores = {f"{c:g}": float(s) for c, s in zip(search.cv_results_["param_C"], search.cv_results_["mean_test_score"])}
    return float(search.best_params_["C"]), scores


def wilson_interval(correct: int, total: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (scipy's binomial test)."""
    from scipy.stats import binomtest

    ci = binomtest(correct, total).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def linear_svm_probe(fs: FeatureSet, C: float = 1.0, cv: bool = False, c_grid: tuple[float, ...] = DEFAULT_C_GRID,
                     folds: int = 5, solver: str = "svc", seed: int = 0, test_split: str = "test") -> ProbeReport:
    """Fit a linear SVM on the train split of ``fs``, score it on ``test_split``.

    Args:
        fs: the features (see :mod:`kptool.probe.features`); unlabelled shapes (-1) are left out.
        C: the SVM's C when not chosen by cross-validation (reference: 1).
        cv: choose C from ``c_grid`` by stratified ``folds``-fold CV on the train split.
        solver: ``svc`` (libsvm, ``SVC(kernel="linear")`` as the reference) or ``liblinear``
            (``LinearSVC``: squared hinge, one-vs-rest; much faster on large sets).
    """
    if solver not in SOLVERS:
        raise KptoolError(f"unknown SVM solver {solver!r} (expected {', '.join(SOLVERS)})")
    if not C > 0:
        raise KptoolError(f"C must be positive, got {C}")
    x_train, y_train = fs.select("train")
    x_test, y_test = fs.select(test_split)
    if len(np.unique(y_train)) < 2:
        raise KptoolError(f"the train split has {len(x_train)} labelled shapes in {len(np.unique(y_train))} class(es): "
                          f"a classifier needs at least 2 classes")
    if len(x_test) == 0:
        raise KptoolError(f"the {test_split} split has no labelled shapes to score the SVM on")
    scores: dict[str, float] = {}
    if cv:
        C, scores = choose_c(x_train, y_train, tuple(c_grid), folds, solver, seed)
    from sklearn.metrics import confusion_matrix

    clf = _classifier(solver, C, seed).fit(x_train, y_train)
    pred = clf.predict(x_test)
    k = len(fs.classes)
    conf = confusion_matrix(y_test, pred, labels=list(range(k)))
    per_class = {fs.classes[c]: {"accuracy": float(conf[c, c] / conf[c].sum()), "count": int(conf[c].sum())}
                 for c in range(k) if conf[c].sum()}
    correct = int((pred == y_test).sum())
    return ProbeReport(
        accuracy=correct / len(y_test), accuracy_ci95=wilson_interval(correct, len(y_test)),
        mean_class_accuracy=float(np.mean([v["accuracy"] for v in per_class.values()])),
        per_class=per_class, confusion=conf.tolist(), classes=list(fs.classes), C=float(C),
        C_from="cv" if cv else "fixed", solver=solver, train_size=len(y_train), test_size=len(y_test),
        feature_dim=int(fs.features.shape[1]), cv_accuracy=scores)
