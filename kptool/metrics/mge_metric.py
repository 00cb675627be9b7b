"""``kptool eval mge``: mean geodesic error of dense embeddings (:mod:`kptool.metrics.mge`) as a registered metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kptool.errors import KptoolError
from kptool.metrics.registry import EvalContext, Metric, TableSpec, register_metric, write_csv

FRAMES = ("prepared", "original")
PICTURE_SHAPES = 8   # shapes coloured by their embeddings in embeddings.png


@register_metric("mge")
class MeanGeodesicError(Metric):
    """Mean geodesic error of dense embeddings over correspondence sets (paper 002), and its Euclidean variant."""

    kind = "embeddings"
    needs = ("keypoints",)

    def __init__(self, frame: str = "prepared", unreachable: str = "max"):
        from kptool.metrics.mge import UNREACHABLE_POLICIES

        if frame not in FRAMES:
            raise KptoolError(f"unknown --frame {frame!r}: expected prepared or original")
        if unreachable not in UNREACHABLE_POLICIES:
            raise KptoolError(f"unknown --unreachable {unreachable!r}: expected {' or '.join(UNREACHABLE_POLICIES)}")
        self.frame, self.unreachable = frame, unreachable

    def compute(self, ctx: EvalContext) -> dict[str, Any]:
        from kptool.data.geodesics import KEYPOINT_TABLE
        from kptool.metrics.mge import mean_geodesic_error

        embeddings = ctx.of_kind("embeddings", self.name)
        shapes = ctx.shapes
        ids = [np.zeros(0, np.int64) if s.keypoint_ids is None else s.keypoint_ids for s in shapes]
        index = [np.zeros(0, np.int64) if s.keypoint_point_index is None else s.keypoint_point_index for s in shapes]
        for s, e in zip(shapes, embeddings):
            if len(e) != s.num_points:
                raise KptoolError(f"shape {s.id}: {len(e)} embeddings for {s.num_points} points")
        scale = [s.meta["transform"].scale if self.frame == "original" else 1.0 for s in shapes]
        keypoints = [np.zeros((0, 3)) if s.keypoints is None else s.keypoints / c for s, c in zip(shapes, scale)]
        result: dict[str, Any] = {"frame": self.frame, "shapes": len(shapes)}
        # what write() draws (kept on the object: the result stays JSON)
        self._drawn = [(s.id, s.points, e, idx) for s, e, idx in zip(shapes[:PICTURE_SHAPES], embeddings, index)]
        euclid = mean_geodesic_error(embeddings, ids, index, points=[s.points / c for s, c in zip(shapes, scale)],
                                     keypoints=keypoints, euclidean=True)
        result["euclidean"] = euclid.to_json()
        if KEYPOINT_TABLE in ctx.dataset.manifest.get("extras", {}):
            tables = [ctx.dataset.extra_or_none(ctx.dataset.index_of(s.id), KEYPOINT_TABLE) for s in shapes]
            annotated = [t for t, k in zip(tables, ids) if len(k)]
            if all(t is not None for t in annotated):
                tables = [np.zeros((0, s.num_points)) if t is None else np.asarray(t) / c
                          for s, t, c in zip(shapes, tables, scale)]
                geo = mean_geodesic_error(embeddings, ids, index, tables, unreachable=self.unreachable)
                result["geodesic"] = geo.to_json()
                result["surface"] = ctx.dataset.manifest["extras"][KEYPOINT_TABLE].get("surface")
        if "geodesic" not in result:
            result["geodesic_skipped"] = "the dataset has no geodesic tables (run `kptool prepare geodesics`)"
        return result

    def scalars(self, result: dict[str, Any]) -> dict[str, float]:
        out = {"mge_euclidean": float(result["euclidean"]["mge"])}
        if "geodesic" in result:
            out["mge"] = float(result["geodesic"]["mge"])
        return out

    def rows(self, result):
        # mGE is a distance, not a fraction: its value goes in the notes
        rows = []
        if "geodesic" in result:
            g = result["geodesic"]
            rows.append(("mGE (geodesic)", None, f"{g['mge']:.4f} in the {result['frame']} frame; {g['sets']} sets, "
                                                 f"{g['pairs']} pairs, {g['unreachable_pairs']} unreachable "
                                                 f"(scored: {g['unreachable_policy']})"))
        else:
            rows.append(("mGE (geodesic)", None, result["geodesic_skipped"]))
        e = result["euclidean"]
        rows.append(("mGE (Euclidean)", None, f"{e['mge']:.4f} in the {result['frame']} frame"))
        return rows

    def tables(self, result):
        g = result.get("geodesic", result["euclidean"])
        what = "geodesic" if "geodesic" in result else "Euclidean"
        return [TableSpec(f"{what} error per correspondence set ({result['frame']} frame)",
                          [("set", "right"), ("error", "right"), ("pairs", "right")],
                          [(k, f"{v:.4f}", str(g["pairs_per_set"][k])) for k, v in g["per_set"].items()])]

    def file_names(self) -> list[str]:
        return ["mge_by_set.csv", "embeddings.png", "correspondences.png"]

    def write(self, result: dict[str, Any], out: Path) -> list[Path]:
        from kptool.viz import plot_correspondences, plot_embeddings

        e, g = result["euclidean"], result.get("geodesic")
        rows = [(k, "" if g is None else g["per_set"].get(k, ""), v, e["pairs_per_set"][k])
                for k, v in e["per_set"].items()]
        files = [write_csv(out / "mge_by_set.csv", ["set", "geodesic", "euclidean", "pairs"], rows)]
        drawn = getattr(self, "_drawn", [])
        if drawn:
            files.append(plot_embeddings([d[1] for d in drawn], [d[2] for d in drawn], out / "embeddings.png",
                                         titles=[d[0][:16] for d in drawn]))
        if len(drawn) >= 2 and len(drawn[0][3]):
            (a, pa, ea, idx), (b, pb, eb, _) = drawn[:2]
            files.append(plot_correspondences(pa, pb, ea, eb, idx, out / "correspondences.png",
                                              titles=(a[:16], b[:16])))
        return files
