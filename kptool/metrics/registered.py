"""The metrics ``kptool eval`` and training validation use, by name (definitions: docs/metrics.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kptool.errors import KptoolError
from kptool.metrics.registry import EvalContext, Metric, TableSpec, curve_json, register_metric, write_csv

FRAMES = ("prepared", "original")


def _check_frame(frame: str | None) -> str | None:
    if frame is not None and frame not in FRAMES:
        raise KptoolError(f"unknown --frame {frame!r}: expected prepared or original")
    return frame


def _scales(shapes, frame: str) -> list[float] | None:
    """Per-shape prepared-to-original scale when distances are measured in the original frame."""
    return [s.meta["transform"].scale for s in shapes] if frame == "original" else None


def _annotated(shapes) -> list[np.ndarray]:
    return [np.zeros((0, 3)) if s.keypoints is None else s.keypoints for s in shapes]


@register_metric("das")
class DualAlignment(Metric):
    """Dual alignment score: forward, backward and their mean (Skeleton Merger's definition)."""

    needs = ("keypoints",)

    def compute(self, ctx: EvalContext) -> dict[str, Any]:
        from kptool.metrics.alignment import dual_alignment_score

        ids = [np.zeros(0, np.int64) if s.keypoint_ids is None else s.keypoint_ids for s in ctx.shapes]
        result = dual_alignment_score(ctx.of_kind("keypoints", self.name), _annotated(ctx.shapes), ids)
        names = ctx.dataset.manifest.get("keypoint_names", {})
        breakdown = result.breakdown()
        for slot in breakdown["by_slot"]:
            for label in slot["labels"]:
                label["name"] = names.get(str(label["id"]))
        for entry in breakdown["by_id"]:
            entry["name"] = names.get(str(entry["id"]))
        return {**result.to_dict(), **breakdown}

    def scalars(self, result: dict[str, Any]) -> dict[str, float]:
        return {"das": float(result["das"]), "das_forward": float(result["forward"]),
                "das_backward": float(result["backward"])}

    def rows(self, result):
        return [("DAS (mean)", result["das"], "mean of forward and backward"),
                ("  forward alignment", result["forward"], ""), ("  backward alignment", result["backward"], "")]

    def tables(self, result):
        rows = []
        for s in result["by_slot"]:
            labels = ", ".join((f"{lab['name']} ({lab['id']})" if lab["name"] else f"id {lab['id']}")
                               + f" {100 * lab['share']:.0f}%" for lab in s["labels"][:3])
            more = len(s["labels"]) - 3
            rows.append((str(s["slot"]), f"{100 * s['forward']:.1f}", labels + (f", +{more} more" if more > 0 else ""),
                         f"{s['mean_distance']:.3f}"))
        return [TableSpec("forward alignment per keypoint slot (per id: das_by_id.csv)",
                          [("slot", "right"), ("forward (%)", "right"), ("nearest annotation: share of shapes", "left"),
                           ("mean distance", "right")], rows)]

    def file_names(self) -> list[str]:
        return ["das_by_slot.csv", "das_by_id.csv"]

    def write(self, result: dict[str, Any], out: Path) -> list[Path]:
        return [write_csv(out / "das_by_slot.csv", ["slot", "forward", "mean_distance", "id", "name", "share"],
                          [(s["slot"], s["forward"], s["mean_distance"], lab["id"], lab["name"] or "", lab["share"])
                           for s in result["by_slot"] for lab in s["labels"]]),
                write_csv(out / "das_by_id.csv", ["id", "name", "backward", "occurrences", "mean_distance", "slot",
                                                  "share"],
                          [(i["id"], i["name"] or "", i["backward"], i["occurrences"], i["mean_distance"], sl["slot"],
                            sl["share"]) for i in result["by_id"] for sl in i["slots"]])]


@register_metric("miou")
class KeypointMIoU(Metric):
    """Keypoint mIoU curve: Euclidean (Skeleton Merger) and, with geodesic tables, geodesic (KeypointNet).

    Args:
        threshold: the distance at which the value is quoted.
        frame: frame distances are measured in (default original: the papers' numbers).
    """

    needs = ("keypoints",)

    def __init__(self, threshold: float = 0.1, frame: str | None = None):
        self.threshold = float(threshold)
        self.frame = _check_frame(frame) or "original"

    def compute(self, ctx: EvalContext) -> dict[str, Any]:
        from kptool.data.geodesics import KEYPOINT_TABLE
        from kptool.metrics import KEYPOINTNET_THRESHOLDS, SKELETON_MERGER_THRESHOLDS, geodesic_miou_curve, miou_curve
        from kptool.metrics._common import nearest_index

        keypoints = ctx.of_kind("keypoints", self.name)
        points = [s.points for s in ctx.shapes]
        scales = _scales(ctx.shapes, self.frame)
        curve = miou_curve(keypoints, _annotated(ctx.shapes), np.union1d(SKELETON_MERGER_THRESHOLDS, [self.threshold]),
                           points=points, scales=scales)
        result: dict[str, Any] = {"frame": self.frame, "threshold": self.threshold,
                                  "euclidean": {"at_threshold": curve.at(self.threshold),
                                                **curve_json(curve, "threshold", "iou")}}
        dataset = ctx.dataset
        if KEYPOINT_TABLE not in dataset.manifest.get("extras", {}):
            result["geodesic_skipped"] = "the dataset has no geodesic tables (run `kptool prepare geodesics`)"
            return result
        tables = [dataset.extra_or_none(dataset.index_of(s.id), KEYPOINT_TABLE) for s in ctx.shapes]
        if any(t is None for t in tables):
            result["geodesic_skipped"] = "some shapes have no geodesic table (run `kptool prepare geodesics`)"
            return result
        snapped = [nearest_index(k, np.asarray(p, np.float64)) for k, p in zip(keypoints, points)]
        geo = geodesic_miou_curve(snapped, tables, np.union1d(KEYPOINTNET_THRESHOLDS, [self.threshold]),
                                  scales=scales)
        result["geodesic"] = {"at_threshold": geo.at(self.threshold), **curve_json(geo, "threshold", "iou")}
        return result

    def scalars(self, result):
        out = {"miou": float(result["euclidean"]["at_threshold"])}
        if "geodesic" in result:
            out["miou_geodesic"] = float(result["geodesic"]["at_threshold"])
        return out

    def rows(self, result):
        t, frame = result["threshold"], result["frame"]
        rows = [(f"mIoU @ {t:g}", result["euclidean"]["at_threshold"], f"Euclidean, {frame} frame")]
        if "geodesic" in result:
            rows.append((f"geodesic mIoU @ {t:g}", result["geodesic"]["at_threshold"], f"KeypointNet, {frame} frame"))
        else:
            rows.append(("geodesic mIoU", None, result["geodesic_skipped"]))
        return rows

    def tables(self, result):
        x, y = result["euclidean"]["threshold"], result["euclidean"]["iou"]
        rows = [(f"{x[i]:.4f}", f"{100 * y[i]:.2f}") for i in sorted(set(range(0, len(x), 5)) | {len(x) - 1})]
        return [TableSpec("mIoU curve (full curves in the CSV files)",
                          [("threshold", "right"), ("Euclidean IoU (%)", "right")], rows)]

    def file_names(self) -> list[str]:
        return ["miou_euclidean.csv", "miou_geodesic.csv", "miou.png"]

    def write(self, result: dict[str, Any], out: Path) -> list[Path]:
        from kptool.viz import plot_curves

        e = result["euclidean"]
        files = [write_csv(out / "miou_euclidean.csv", ["threshold", "iou"], zip(e["threshold"], e["iou"]))]
        plotted = {"Euclidean (Skeleton Merger)": (e["threshold"], e["iou"])}
        if "geodesic" in result:
            g = result["geodesic"]
            files.append(write_csv(out / "miou_geodesic.csv", ["threshold", "iou"], zip(g["threshold"], g["iou"])))
            plotted["geodesic (KeypointNet)"] = (g["threshold"], g["iou"])
        files.append(plot_curves(plotted, out / "miou.png", f"distance threshold ({result['frame']} frame)", "IoU",
                                 "keypoint mIoU"))
        return files


@register_metric("part-corr")
class PartCorrespondence(Metric):
    """Part correspondence ratio on part-labelled shapes (ShapeNet-Part style)."""

    needs = ("point_labels",)

    def compute(self, ctx: EvalContext) -> dict[str, Any]:
        from kptool.metrics.parts import part_correspondence_ratio

        keypoints = ctx.of_kind("keypoints", self.name)
        labelled = [i for i, s in enumerate(ctx.shapes) if s.point_labels is not None]
        result = part_correspondence_ratio([keypoints[i] for i in labelled], [ctx.shapes[i].points for i in labelled],
                                           [ctx.shapes[i].point_labels for i in labelled])
        return {**result.to_dict(), "num_shapes": len(labelled)}

    def scalars(self, result):
        return {"part_corr": float(result["ratio"])}

    def rows(self, result):
        return [("part correspondence", result["ratio"], f"{result['num_shapes']} part-labelled shapes")]

    def file_names(self) -> list[str]:
        return ["part_correspondence.csv"]

    def write(self, result, out):
        return [write_csv(out / "part_correspondence.csv", ["keypoint", "ratio"], enumerate(result["per_index"]))]


REPEATABILITY_UNITS = {"noise": "noise sigma (prepared frame)",
                       "rotation-up": "rotation about the up axis (degrees)",
                       "rotation-so3": "rotation about a random axis (degrees)",
                       "decimation": "share of points dropped", "translation": "translation (prepared frame)",
                       "scale": "scale factor"}


@register_metric("repeatability")
class Repeatability(Metric):
    """Repeatability under noise, rotation and decimation: detect again and count keypoints that stay.

    Args:
        threshold: largest distance a keypoint may move.
        frame: frame distances are measured in (default prepared).
        perturbations: some of :data:`kptool.metrics.PERTURBATIONS` (default all).
        levels: levels of the one perturbation (default per perturbation, docs/metrics.md).
        seed: seeds the perturbations.
    """

    redetects = True

    def __init__(self, threshold: float = 0.1, frame: str | None = None, perturbations: list[str] | None = None,
                 levels: list[float] | None = None, seed: int = 0):
        from kptool.metrics.repeatability import PERTURBATIONS

        self.threshold, self.seed = float(threshold), int(seed)
        self.frame = _check_frame(frame) or "prepared"
        self.perturbations = list(perturbations or PERTURBATIONS)
        bad = [p for p in self.perturbations if p not in PERTURBATIONS]
        if bad:
            raise KptoolError(f"unknown --perturbation {bad[0]!r}: expected one of {', '.join(PERTURBATIONS)}")
        if levels is not None and len(self.perturbations) != 1:
            raise KptoolError("--levels needs exactly one --perturbation (their units differ)")
        self.levels = levels

    def compute(self, ctx: EvalContext) -> dict[str, Any]:
        from kptool.metrics.repeatability import repeatability

        detector = ctx.detector
        result: dict[str, Any] = {"frame": self.frame, "threshold": self.threshold, "detector": detector.name,
                                  "ordered": bool(detector.ordered)}
        for p in self.perturbations:
            ctx.log(f"repeatability under {p} ({len(ctx.shapes)} shapes)...")
            curve = repeatability(detector, [s.points for s in ctx.shapes], p, self.levels, self.threshold, self.seed,
                                  scales=_scales(ctx.shapes, self.frame),
                                  normalize=getattr(detector, "normalize", "skeleton-merger"))
            result[p] = curve_json(curve, "level", "repeatability")
        return result

    def _curves(self, result):
        return {p: c for p, c in result.items() if isinstance(c, dict)}

    def scalars(self, result):
        return {f"repeatability_{p}": float(np.mean(c["repeatability"])) for p, c in self._curves(result).items()}

    def rows(self, result):
        return [(f"repeatability ({p})", float(np.mean(c["repeatability"])),
                 f"mean over {len(c['repeatability'])} levels; moved < {result['threshold']:g}, {result['detector']}")
                for p, c in self._curves(result).items()]

    def tables(self, result):
        return [TableSpec(f"repeatability under {p}", [("level", "right"), ("repeatable (%)", "right")],
                          [(f"{lv:g}", f"{100 * v:.2f}") for lv, v in zip(c["level"], c["repeatability"])])
                for p, c in self._curves(result).items()]

    def file_names(self) -> list[str]:
        return [f"repeatability_{p}.{ext}" for p in self.perturbations for ext in ("csv", "png")]

    def write(self, result, out):
        from kptool.viz import plot_curves

        files = []
        for p, c in self._curves(result).items():
            files.append(write_csv(out / f"repeatability_{p}.csv", ["level", "repeatability"],
                                   zip(c["level"], c["repeatability"])))
            files.append(plot_curves({result["detector"]: (c["level"], c["repeatability"])},
                                     out / f"repeatability_{p}.png", REPEATABILITY_UNITS[p],
                                     f"repeatability (moved < {result['threshold']:g})", f"repeatability under {p}"))
        return files


@register_metric("part-miou")
class PartSegmentationIoU(Metric):
    """Part segmentation mIoU of per-point logits (instance mIoU, PointNet's ShapeNet-Part protocol).

    Column j of ``point_logits`` scores part label j. Per shape, the IoU of every part of
    the category (the dataset's ``part_names``, else the labels seen) is averaged, a part
    absent from both the annotation and the prediction counting 1; shapes are averaged.
    """

    kind = "point_logits"
    needs = ("point_labels",)

    def compute(self, ctx: EvalContext) -> dict[str, Any]:
        logits = ctx.of_kind("point_logits", self.name)
        labelled = [i for i, s in enumerate(ctx.shapes) if s.point_labels is not None]
        names = ctx.dataset.manifest.get("part_names") or {}
        parts = sorted(int(k) for k in names) or sorted(
            set(np.concatenate([ctx.shapes[i].point_labels for i in labelled]).tolist()) - {0})
        per_shape = []
        for i in labelled:
            truth = np.asarray(ctx.shapes[i].point_labels)
            pred = np.asarray(logits[i]).argmax(axis=-1)
            if pred.shape != truth.shape:
                raise KptoolError(f"part-miou: shape {ctx.shapes[i].id!r} has {truth.shape[0]} labelled points but "
                                  f"{pred.shape[0]} rows of point_logits")
            ious = []
            for part in parts:
                union = np.sum((truth == part) | (pred == part))
                ious.append(1.0 if union == 0 else float(np.sum((truth == part) & (pred == part)) / union))
            per_shape.append(float(np.mean(ious)))
        return {"miou": float(np.mean(per_shape)), "parts": parts, "num_shapes": len(labelled),
                "per_shape": dict(zip([ctx.shapes[i].id for i in labelled], per_shape))}

    def scalars(self, result):
        return {"part_miou": result["miou"]}

    def rows(self, result):
        return [("part segmentation mIoU", result["miou"],
                 f"{result['num_shapes']} shapes, {len(result['parts'])} parts")]

    def file_names(self) -> list[str]:
        return ["part_miou.csv"]

    def write(self, result, out):
        return [write_csv(out / "part_miou.csv", ["shape", "miou"], result["per_shape"].items())]
