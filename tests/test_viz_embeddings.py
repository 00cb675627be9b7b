"""Embedding pictures: one colour projection shared by every shape of a picture; PNG files."""

import numpy as np
import pytest

from kptool.errors import KptoolError
from kptool.viz import embedding_colors, plot_correspondences, plot_embeddings


def test_one_projection_for_all_shapes():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(200, 16))
    a, b = embedding_colors([e, e[::-1]])
    assert a.shape == (200, 3) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_allclose(a, b[::-1])             # the same embedding has the same colour on both shapes
    # colours follow the main directions of the embeddings: points far apart in the first
    # principal direction get different colours
    line = np.outer(np.linspace(-1, 1, 50), np.eye(8)[0])
    (c,) = embedding_colors([line])
    assert np.abs(c[0] - c[-1]).max() == pytest.approx(1.0)


def test_pictures_are_written(tmp_path):
    rng = np.random.default_rng(1)
    shapes = [rng.normal(size=(100, 3)) for _ in range(3)]
    embeddings = [p @ rng.normal(size=(3, 8)) for p in shapes]
    out = plot_embeddings(shapes, embeddings, tmp_path / "e.png", titles=["a", "b", "c"])
    assert out.read_bytes()[:4] == b"\x89PNG"
    out = plot_correspondences(shapes[0], shapes[1], embeddings[0], embeddings[1], [0, 5, 9], tmp_path / "c.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(KptoolError, match="one embedding per point"):
        plot_embeddings(shapes, [e[:10] for e in embeddings], tmp_path / "x.png")
    with pytest.raises(KptoolError, match="indices"):
        plot_correspondences(shapes[0], shapes[1], embeddings[0], embeddings[1], [100], tmp_path / "y.png")
