"""Pictures: files are real PNGs; the palette gives one stable colour per index."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kptool.errors import KptoolError
from kptool.viz import keypoint_colors, plot_curves, plot_keypoint_grid, plot_keypoints, plot_training_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_keypoint_colors_are_distinct_and_stable():
    for k in (3, 10, 20, 30):
        c = keypoint_colors(k)
        assert c.shape == (k, 3) and len({tuple(x) for x in c}) == k
    np.testing.assert_array_equal(keypoint_colors(4), keypoint_colors(10)[:4])
    # pictures and coloured PLY files give keypoint i the same colour, whatever K
    from kptool.io import keypoint_colors as file_colors

    for k in (4, 13, 25):
        np.testing.assert_array_equal(np.round(keypoint_colors(k) * 255).astype(np.uint8), file_colors(k))


def test_plots_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.random((200, 3))
    paths = [
        plot_keypoints(p, p[:5], tmp_path / "one.png", title="t"),
        plot_keypoint_grid([p, p * 2, p + 1], [p[:5], p[5:10], p[:0]], tmp_path / "grid.png", cols=2,
                           titles=["a", "b", "c"]),
        plot_curves({"x": ([0, 1], [0.2, 0.8]), "y": ([0, 1], [0.5, 0.4])}, tmp_path / "c.png", "t", "v", "c"),
    ]
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000
    assert sorted(f.name for f in tmp_path.iterdir()) == ["c.png", "grid.png", "one.png"]  # no temp files left


def _png_width(path) -> int:
    with Image.open(path) as image:     # Pillow comes with matplotlib
        assert image.format == "PNG"
        return image.width


def test_training_curves_add_a_das_panel_only_when_validated_with_keypoints(tmp_path):
    scored = [{"epoch": e, "train": {"loss": 1.0 / e}, "val": {"loss": 1.2 / e, "das": 0.5 + 0.1 * e}}
              for e in range(1, 5)]
    unscored = [{"epoch": e, "train": {"loss": 1.0 / e}} for e in range(1, 5)]
    two = plot_training_curves({"mutual": scored, "merger": scored[:2]}, tmp_path / "two.png", title="t")
    one = plot_training_curves({"run": unscored}, tmp_path / "one.png")
    assert _png_width(two) > 1.5 * _png_width(one)


def test_plot_errors(tmp_path):
    with pytest.raises(KptoolError):
        plot_training_curves({"run": []}, tmp_path / "t.png")
    with pytest.raises(KptoolError):
        plot_keypoint_grid([np.zeros((3, 3))], [], tmp_path / "g.png")
    with pytest.raises(KptoolError):
        plot_keypoints(np.zeros((3, 2)), np.zeros((0, 3)), tmp_path / "k.png")
