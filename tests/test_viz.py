"""Pictures: files are real PNGs; the palette gives one stable colour per index."""

from __future__ import annotations

import numpy as np
import pytest

from kptool.errors import KptoolError
from kptool.viz import keypoint_colors, plot_curves, plot_keypoint_grid, plot_keypoints

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_keypoint_colors_are_distinct_and_stable():
    for k in (3, 10, 20, 30):
        c = keypoint_colors(k)
        assert c.shape == (k, 3) and len({tuple(x) for x in c}) == k
    np.testing.assert_array_equal(keypoint_colors(4), keypoint_colors(10)[:4])


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


def test_plot_errors(tmp_path):
    with pytest.raises(KptoolError):
        plot_keypoint_grid([np.zeros((3, 3))], [], tmp_path / "g.png")
    with pytest.raises(KptoolError):
        plot_keypoints(np.zeros((3, 2)), np.zeros((0, 3)), tmp_path / "k.png")
