"""A contact sheet of a rendered dataset: RGB views with their projected keypoints.

Visible keypoints are drawn filled, hidden ones (self-occluded or outside the
image) hollow; a keypoint's colour is that of its semantic id across the sheet.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from kptool.errors import InputError
from kptool.io.atomic import atomic_path, safe_join


def plot_render_grid(roots: list[str | os.PathLike], out: str | os.PathLike, shapes: int = 4, views: int = 4,
                     title: str | None = None) -> Path:
    """One row per shape (the first ``shapes`` of each rendered dataset in ``roots``), ``views`` columns."""
    from PIL import Image

    from kptool.viz.plots import keypoint_colors, plt

    rows = []
    for root in roots:
        path = Path(root) / "manifest.json"
        if not path.is_file():
            raise InputError(root, "not a rendered dataset (no manifest.json; run `kptool render`)")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        ids = manifest.get("keypoint_ids", [])
        for rec in manifest["shapes"][:shapes]:
            rows.append((root, rec, ids))
    if not rows:
        raise InputError(roots[0] if roots else None, "no rendered shapes to show")
    fig, axes = plt.subplots(len(rows), views, figsize=(2.2 * views, 2.2 * len(rows)), squeeze=False)
    for r, (root, rec, ids) in enumerate(rows):
        with np.load(safe_join(root, rec["file"]), allow_pickle=False) as z:
            uv, visible, kp_ids = z["keypoints_2d"], z["keypoint_visible"], z["keypoint_ids"]
            azimuth, elevation = z["azimuth"], z["elevation"]
        colours = keypoint_colors(max(len(ids), 1))
        for v in range(views):
            ax = axes[r, v]
            ax.set_axis_off()
            if v >= len(azimuth):
                continue
            image = np.asarray(Image.open(safe_join(root, f"rgb/{rec['id']}/{v:02d}.png")))
            ax.imshow(image)
            for k in range(len(kp_ids)):
                c = colours[ids.index(int(kp_ids[k])) % len(colours)] if int(kp_ids[k]) in ids else (0, 0, 0)
                ax.scatter(uv[v, k, 0], uv[v, k, 1], s=22, linewidths=1.3, edgecolors=[c],
                           facecolors=[c] if visible[v, k] else "none")
            ax.set_xlim(-0.5, image.shape[1] - 0.5)
            ax.set_ylim(image.shape[0] - 0.5, -0.5)
            ax.set_title(f"az {np.degrees(azimuth[v]):.0f} el {np.degrees(elevation[v]):.0f}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return Path(out)
