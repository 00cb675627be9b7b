"""`kptool eval svm FEATURES.npz`: the linear-SVM probe of learned features (docs/metrics.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kptool.cli.common import info, print_json, stdout
from kptool.errors import KptoolError


def _grid(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise KptoolError(f"--c-grid must be comma-separated numbers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise KptoolError(f"--c-grid values must be positive, got {text!r}")
    return values


def svm(
    features: Path = typer.Argument(..., help="Features file (kptool features writes one)."),
    c: float = typer.Option(1.0, "--c", help="The SVM's C (reference protocol: 1)."),
    cv: bool = typer.Option(False, "--cv", help="Choose C by stratified cross-validation on the train split."),
    c_grid: str = typer.Option("0.001,0.01,0.1,1,10,100", "--c-grid", help="Values of C tried by --cv."),
    folds: int = typer.Option(5, "--folds", help="--cv folds (fewer when a class has fewer training shapes)."),
    solver: str = typer.Option("svc", "--solver",
                               help="svc (libsvm SVC, linear kernel: the reference) or liblinear (LinearSVC)."),
    split: str = typer.Option("test", "--split", help="Split the SVM is scored on: test or val."),
    tsne: bool = typer.Option(True, "--tsne/--no-tsne", help="Write a t-SNE picture of that split's features."),
    perplexity: float = typer.Option(10.0, "--perplexity", help="t-SNE perplexity (paper: 10)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the CV folds, LinearSVC and t-SNE."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", show_default=False,
                                       help="Folder for svm.json, confusion.png, tsne.png [default: FEATURES "
                                            "name + '.svm'].", ),
    force: bool = typer.Option(False, "--force", help="Overwrite those files when they exist."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON only."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages on stderr."),
) -> None:
    """Fit a linear SVM on the train split's features, report accuracy on the test split."""
    from kptool.probe import evaluate_svm

    if split not in ("test", "val"):
        raise KptoolError(f"--split must be test or val, got {split!r}")
    if folds < 2:
        raise KptoolError(f"--folds must be at least 2, got {folds}")
    report, written = evaluate_svm(features, out, tsne=tsne, perplexity=perplexity, force=force, C=c, cv=cv,
                                   c_grid=_grid(c_grid), folds=folds, solver=solver, seed=seed, test_split=split)
    if as_json:
        print_json(report.to_json())
        return
    lo, hi = report.accuracy_ci95
    stdout.print(f"linear SVM ({report.solver}, C = {report.C:g}{' by CV' if report.C_from == 'cv' else ''}) on "
                 f"{report.feature_dim}-d features: trained on {report.train_size}, {split} {report.test_size}",
                 highlight=False, soft_wrap=True)
    stdout.print(f"accuracy {100 * report.accuracy:.1f} % (95 % interval {100 * lo:.1f}-{100 * hi:.1f}), "
                 f"mean class accuracy {100 * report.mean_class_accuracy:.1f} %", highlight=False, soft_wrap=True)
    width = max(len(n) for n in report.per_class)
    for name, v in report.per_class.items():
        stdout.print(f"  {name:<{width}}  {100 * v['accuracy']:5.1f} %  of {v['count']}", highlight=False,
                     soft_wrap=True)
    info(f"wrote {', '.join(str(p) for p in written)}", quiet)
