"""Probing learned features: the features file, the linear-SVM probe and its outputs.

- :mod:`kptool.probe.features`: the features file (one global feature per shape, ids,
  labels, splits) that ``kptool features`` writes and ``kptool eval svm`` reads;
- :mod:`kptool.probe.svm`: the linear-SVM protocol (C = 1, no scaling; C by CV optional);
- :func:`evaluate_svm`: the probe plus its report, confusion-matrix and t-SNE pictures.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kptool.io.atomic import check_outputs, write_text
from kptool.probe.features import FeatureSet, read_features, write_features
from kptool.probe.svm import ProbeReport, linear_svm_probe

__all__ = ["FeatureSet", "ProbeReport", "evaluate_svm", "linear_svm_probe", "read_features", "write_features"]

REPORT, CONFUSION, TSNE = "svm.json", "confusion.png", "tsne.png"


def default_out(features_path: str | os.PathLike) -> Path:
    """Where ``kptool eval svm F.npz`` writes by default: ``F.svm/`` beside the file."""
    p = Path(features_path)
    return p.with_name(p.stem + ".svm")


def evaluate_svm(features_path: str | os.PathLike, out: str | os.PathLike | None = None, tsne: bool = True,
                 perplexity: float = 10.0, force: bool = False, **probe) -> tuple[ProbeReport, list[Path]]:
    """Run :func:`linear_svm_probe` (``probe`` are its keyword arguments) on a features file and write
    ``svm.json``, ``confusion.png`` and (with ``tsne``) ``tsne.png`` of the test split into ``out``.

    Only these files are refused when they exist (``force`` replaces them).
    """
    from kptool.viz.probe import plot_confusion, plot_tsne

    fs = read_features(features_path)
    out = Path(out) if out is not None else default_out(features_path)
    names = [REPORT, CONFUSION] + ([TSNE] if tsne else [])
    check_outputs([out / n for n in names], overwrite=force)
    report = linear_svm_probe(fs, **probe)
    title = f"linear SVM (C={report.C:g}): {100 * report.accuracy:.1f} % on {report.test_size} test shapes"
    written = [plot_confusion(report.confusion, report.classes, out / CONFUSION, title)]
    if tsne:
        x, y = fs.select(probe.get("test_split", "test"))
        written.append(plot_tsne(x, y, fs.classes, out / TSNE, perplexity=perplexity, seed=probe.get("seed", 0)))
    doc = {"features": str(features_path), "source": fs.meta, **report.to_json()}
    written.insert(0, write_text(out / REPORT, json.dumps(doc, indent=1)))
    return report, written
