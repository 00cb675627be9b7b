"""Metrics as registered objects, shared by ``kptool eval`` and training validation.

A metric is a subclass of :class:`Metric` registered in :data:`METRICS`. It scores one
kind of prediction (``kind``: a model output kind such as ``keypoints`` or
``point_logits``) against what the shapes carry (``needs``: ``keypoints``,
``point_labels``...). :meth:`Metric.compute` returns a JSON-able result;
:meth:`Metric.scalars` its headline numbers (what training validation logs),
:meth:`Metric.rows` / :meth:`Metric.tables` what ``kptool eval`` prints, and
:meth:`Metric.write` its CSV and PNG files. Constructor arguments are the metric's
options (``--threshold``, ``--frame``...), so ``METRICS.build({"name": "miou",
"threshold": 0.05})`` configures one.
"""

from __future__ import annotations

import csv
import io
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kptool.errors import KptoolError
from kptool.registry import Registry

METRICS = Registry("metric")


@dataclass
class EvalContext:
    """What a metric computes on: the shapes and, per shape, the predictions of its kind.

    Attributes:
        dataset: the :class:`~kptool.data.prepared.PreparedDataset` (split view) the shapes come from.
        shapes: the evaluated :class:`~kptool.data.Shape` objects, prepared frame.
        predicted: ``{kind: [per-shape array]}`` aligned with ``shapes`` (keypoints ``(K, 3)``
            float64 in the prepared frame; ``point_logits`` ``(N, J)``; ...).
        detector: a :class:`~kptool.detect.Detector` for metrics that detect again, or None.
        log: called with progress messages.
        class_names: the class of each ``class_logits`` score (the predicting model's), or None
            (then the dataset's class list).
    """

    dataset: Any
    shapes: list
    predicted: dict[str, list[np.ndarray]] = field(default_factory=dict)
    detector: Any = None
    log: Callable[[str], None] = lambda message: None
    class_names: list[str] | None = None

    def of_kind(self, kind: str, metric: str) -> list[np.ndarray]:
        if kind not in self.predicted:
            have = ", ".join(self.predicted) or "none"
            raise KptoolError(f"{metric} scores {kind} predictions; these predictions have {have}")
        return self.predicted[kind]


@dataclass
class TableSpec:
    """A table for a terminal: title, ``(column, justify)`` pairs and rows of strings."""

    title: str
    columns: list[tuple[str, str]]
    rows: list[tuple[str, ...]]


class Metric:
    """Base of every registered metric (see the module docstring)."""

    name = ""
    kind = "keypoints"
    needs: tuple[str, ...] = ()
    redetects = False            # detects again with ctx.detector (repeatability)

    def check(self, ctx: EvalContext) -> None:
        """KptoolError when the shapes lack what the metric needs (or it has no detector)."""
        if self.redetects and ctx.detector is None:
            raise KptoolError(f"{self.name} needs --method or --checkpoint to detect again")
        for need in self.needs:
            if not any(getattr(s, need) is not None and len(getattr(s, need)) for s in ctx.shapes):
                what = {"keypoints": "keypoint annotations", "point_labels": "per-point part labels"}.get(need, need)
                raise KptoolError(f"{self.name} needs {what}, and the evaluated shapes have none")

    def compute(self, ctx: EvalContext) -> dict[str, Any]:
        raise NotImplementedError

    def scalars(self, result: dict[str, Any]) -> dict[str, float]:
        """The headline values, flat (``{"das": 0.8, "das_forward": ...}``)."""
        raise NotImplementedError

    def rows(self, result: dict[str, Any]) -> list[tuple[str, float | None, str]]:
        """Summary rows: (label, value as a fraction or None, notes)."""
        return [(k, v, "") for k, v in self.scalars(result).items()]

    def tables(self, result: dict[str, Any]) -> list[TableSpec]:
        """Detail tables printed after the summary."""
        return []

    def file_names(self) -> list[str]:
        """The files :meth:`write` writes (an output folder refuses to overwrite only these)."""
        return []

    def write(self, result: dict[str, Any], out: Path) -> list[Path]:
        """Write the metric's CSV/PNG files into ``out``; returns them."""
        return []


def register_metric(name: str) -> Callable[[type[Metric]], type[Metric]]:
    """Class decorator: register a :class:`Metric` subclass as ``name``."""
    def add(cls: type[Metric]) -> type[Metric]:
        cls.name = name
        METRICS.add(name, cls)
        return cls
    return add


def build_metric(name: str, **options: Any) -> Metric:
    """Metric ``name`` with those ``options`` its constructor takes (others are ignored: ``eval all``)."""
    cls = METRICS.get(name)
    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted and v is not None})


def write_csv(path: Path, header: list[str], rows) -> Path:
    """A CSV file written atomically."""
    from kptool.io.atomic import write_text

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return write_text(path, buf.getvalue())


def curve_json(curve, x_name: str, y_name: str) -> dict[str, list[float]]:
    return {x_name: curve.x.tolist(), y_name: curve.y.tolist()}
