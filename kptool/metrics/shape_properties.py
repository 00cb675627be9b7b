"""Paper 001's keypoint properties and registration curve as registered metrics (definitions: docs/metrics.md).

``kptool eval coverage|model-error|correspondence|inclusivity|symmetry-error|definition``
score any ordered keypoint predictions; ``model-error`` and ``symmetry-error`` also need
what a shape-basis model writes beside its keypoints (the ``nodes`` and the
``symmetry_normal`` details of the predictions file), and ``symmetry-error`` a dataset
that knows its symmetry plane: without them the metric says so instead of a number.
``kptool eval registration --checkpoint RUN`` runs the Fig. 5 experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kptool.errors import KptoolError
from kptool.metrics.registry import EvalContext, Metric, TableSpec, register_metric, write_csv


def _keypoints(ctx: EvalContext, name: str) -> list[np.ndarray]:
    return [np.asarray(k, np.float64) for k in ctx.of_kind("keypoints", name)]


def _clouds(ctx: EvalContext) -> list[np.ndarray]:
    return [np.asarray(s.points, np.float64) for s in ctx.shapes]


def _detail(ctx: EvalContext, detail: str, metric: str, what: str) -> list[np.ndarray]:
    values = ctx.predicted.get(detail)
    if values is None or any(v is None for v in values):
        raise KptoolError(f"{metric} needs {what}, and these predictions have none")
    return values


class _PerShape(Metric):
    """A per-shape property averaged over shapes (a fraction unless ``unit`` says otherwise)."""

    label = ""
    unit = "fraction"
    note = ""

    def values(self, ctx: EvalContext) -> list[float]:
        raise NotImplementedError

    def compute(self, ctx: EvalContext) -> dict[str, Any]:
        per_shape = self.values(ctx)
        return {"value": float(np.mean(per_shape)), "per_shape": dict(zip([s.id for s in ctx.shapes], per_shape))}

    def scalars(self, result):
        return {self.name.replace("-", "_"): float(result["value"])}

    def rows(self, result):
        value = result["value"]
        if self.unit != "fraction":
            return [(self.label, None, f"{value:.3f} {self.unit}; {self.note}")]
        return [(self.label, value, self.note)]

    def file_names(self) -> list[str]:
        return [f"{self.name}.csv"]

    def write(self, result, out: Path) -> list[Path]:
        return [write_csv(out / f"{self.name}.csv", ["id", self.name.replace("-", "_")], result["per_shape"].items())]


@register_metric("coverage")
class Coverage(_PerShape):
    """Share of the cloud's bounding-box volume inside the keypoints' box (paper 001)."""

    label, note = "coverage", "keypoints' box / cloud's box volume"

    def values(self, ctx):
        from kptool.metrics.properties import box_coverage

        return [box_coverage(k, c) for k, c in zip(_keypoints(ctx, self.name), _clouds(ctx))]


@register_metric("inclusivity")
class Inclusivity(_PerShape):
    """Share of keypoints within 0.015 (authors' frame, longest side 2) of the cloud (paper 001)."""

    label, note = "inclusivity", "keypoints within 0.015 x longest side / 2 of a point"

    # Not called ``threshold``: ``eval all`` hands its --threshold (mIoU's, 0.1) to every metric
    # that takes one, which turned this into a different metric.
    def __init__(self, inclusivity_threshold: float | None = None):
        from kptool.metrics.properties import INCLUSIVITY_THRESHOLD

        self.threshold = INCLUSIVITY_THRESHOLD if inclusivity_threshold is None else float(inclusivity_threshold)

    def values(self, ctx):
        from kptool.metrics.properties import inclusivity

        return [inclusivity(k, c, self.threshold) for k, c in zip(_keypoints(ctx, self.name), _clouds(ctx))]


@register_metric("model-error")
class ModelError(_PerShape):
    """Chamfer(nodes, keypoints) / longest bounding-box side: shape-basis models only (paper 001)."""

    label, note = "model error", "Chamfer(nodes, keypoints) / longest side"

    def values(self, ctx):
        from kptool.metrics.properties import model_error

        nodes = _detail(ctx, "nodes", self.name, "the nodes of a shape-basis model (a node branch)")
        return [model_error(n, k, c) for n, k, c in zip(nodes, _keypoints(ctx, self.name), _clouds(ctx))]


@register_metric("symmetry-error")
class SymmetryError(_PerShape):
    """Angle between the predicted and the true symmetry plane normals, degrees (paper 001)."""

    label, unit, note = "symmetry error", "degrees", "predicted vs true plane normal"

    def values(self, ctx):
        from kptool.metrics.properties import symmetry_error_deg

        normals = _detail(ctx, "symmetry_normal", self.name, "a predicted symmetry plane (shape-basis models)")
        if any(s.symmetry_plane is None for s in ctx.shapes):
            raise KptoolError(f"{self.name} needs the true symmetry plane, and the evaluated shapes have none")
        return [symmetry_error_deg(n, s.symmetry_plane[:3]) for n, s in zip(normals, ctx.shapes)]


@register_metric("definition")
class Definition(_PerShape):
    """N': keypoints left after the authors' NMS (clusters within 0.2 merged), per shape (paper 001)."""

    label, unit, note = "definition N'", "keypoints", "after merging clusters within 0.2 x longest side / 2"

    def values(self, ctx):
        from kptool.metrics.properties import frame_scale, nms_merge

        return [float(len(nms_merge(k, scale=frame_scale(c))[0]))
                for k, c in zip(_keypoints(ctx, self.name), _clouds(ctx))]

    def compute(self, ctx):
        result = super().compute(ctx)
        counts, freq = np.unique(list(result["per_shape"].values()), return_counts=True)
        return {**result, "mode": int(counts[freq.argmax()]), "constant": len(counts) == 1}

    def scalars(self, result):
        return {"definition": float(result["value"]), "definition_mode": float(result["mode"])}

    def rows(self, result):
        same = "the same on every shape" if result["constant"] else "varies between shapes"
        return [(self.label, None, f"mean {result['value']:.2f}, most often {result['mode']} ({same})")]


@register_metric("correspondence")
class Correspondence(Metric):
    """Share of keypoints in their slot's K-means cluster across shapes (paper 001, Fig. 3)."""

    def compute(self, ctx):
        from kptool.metrics.properties import correspondence

        keypoints = _keypoints(ctx, self.name)
        if len({len(k) for k in keypoints}) != 1:
            raise KptoolError(f"{self.name} needs the same number of ordered keypoints on every shape")
        if len(keypoints) < 2:
            raise KptoolError(f"{self.name} needs at least two shapes")
        result = correspondence(np.stack(keypoints), _clouds(ctx))
        return {"value": result.score, "per_slot": result.per_slot.tolist(), "groups": result.groups.tolist()}

    def scalars(self, result):
        return {"correspondence": float(result["value"])}

    def rows(self, result):
        return [("correspondence", result["value"], f"{max(result['groups']) + 1} keypoint groups, K-means")]

    def file_names(self):
        return ["correspondence.csv"]

    def write(self, result, out):
        return [write_csv(out / "correspondence.csv", ["slot", "group", "share"],
                          [(i, g, s) for i, (g, s) in enumerate(zip(result["groups"], result["per_slot"]))])]


@register_metric("registration")
class Registration(Metric):
    """Rotation error of keypoint registration to 3 aligned training templates vs misalignment (Fig. 5).

    Args:
        angles: misalignment angles about the up axis, degrees (default 0, 15, ..., 90).
        templates: aligned training shapes registered to.
        seed: picks the templates.
    """

    redetects = True

    def __init__(self, angles: list[float] | None = None, templates: int = 3, seed: int = 0):
        from kptool.metrics.registration_curve import DEFAULT_ANGLES

        self.angles = [float(a) for a in (angles or DEFAULT_ANGLES)]
        self.templates, self.seed = int(templates), int(seed)

    def compute(self, ctx):
        from kptool.data.prepared import PreparedDataset
        from kptool.metrics.registration_curve import pick_templates, registration_curve

        if not getattr(ctx.detector, "ordered", False):
            raise KptoolError(f"{self.name} needs an ordered detector (--checkpoint)")
        train = PreparedDataset(ctx.dataset.root, "train")
        picked = pick_templates(len(train), self.templates, self.seed)
        ctx.log(f"registration: {len(ctx.shapes)} shapes x {len(self.angles)} angles to templates "
                f"{', '.join(train.ids[i] for i in picked)}")
        curve = registration_curve(ctx.detector.detect_batch, [s.points for s in ctx.shapes],
                                   [train[i].points for i in picked], self.angles)
        return {"angles": curve.angles.tolist(), "mean": curve.mean.tolist(), "median": curve.median.tolist(),
                "templates": [train.ids[i] for i in picked], "method": getattr(ctx.detector, "name", "")}

    def scalars(self, result):
        out = {"registration_error": float(np.mean(result["mean"]))}
        out.update({f"registration_error_{a:g}": float(m) for a, m in zip(result["angles"], result["mean"])})
        return out

    def rows(self, result):
        return [("registration error (mean over angles)", None, f"{np.mean(result['mean']):.2f} degrees")]

    def tables(self, result):
        rows = [(f"{a:g}", f"{m:.2f}", f"{d:.2f}") for a, m, d in zip(result["angles"], result["mean"],
                                                                          result["median"])]
        return [TableSpec("relative rotation error against misalignment (registration.csv, registration.png)",
                          [("misalignment (deg)", "right"), ("mean error (deg)", "right"),
                           ("median error (deg)", "right")], rows)]

    def file_names(self):
        return ["registration.csv", "registration.png"]

    def write(self, result, out):
        from kptool.viz import plot_curves

        rows = list(zip(result["angles"], result["mean"], result["median"]))
        return [write_csv(out / "registration.csv", ["misalignment_deg", "mean_error_deg", "median_error_deg"], rows),
                plot_curves({result["method"] or "keypoints": (result["angles"], result["mean"])},
                            out / "registration.png", "misalignment about the up axis (degrees)",
                            "relative rotation error (degrees)", "registration to aligned templates")]
