"""`kptool register`: Umeyama alignment of two shape files through a model's ordered keypoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from kptool.cli.main import main
from kptool.data.synthetic import generate_shape
from kptool.detect import default_weights
from kptool.registration import register_files, rotation_about_up

WEIGHTS = str(default_weights("chair"))


def run_cli(args, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def chair_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("register")
    sh = generate_shape("chair", 3)
    trimesh.Trimesh(sh.vertices, sh.faces, process=False).export(folder / "chair.ply")
    moved = 2.5 * sh.vertices + [0.3, -1.0, 2.0]            # the same chair, larger and elsewhere
    trimesh.Trimesh(moved, sh.faces, process=False).export(folder / "moved.ply")
    return folder, sh


def test_register_recovers_scale_and_translation_of_a_copy(chair_files, capsys):
    folder, sh = chair_files
    rc, out, err = run_cli(["register", folder / "chair.ply", folder / "moved.ply", "--checkpoint", WEIGHTS,
                            "--out", folder / "aligned.ply", "--json", "--device", "cpu"], capsys)
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["scale"] == pytest.approx(2.5, rel=1e-4)
    np.testing.assert_allclose(summary["rotation"], np.eye(3), atol=1e-4)
    np.testing.assert_allclose(summary["translation"], [0.3, -1.0, 2.0], atol=1e-3)
    assert summary["keypoint_rms"] < 1e-3
    aligned = trimesh.load(folder / "aligned.ply", process=False)
    np.testing.assert_allclose(aligned.vertices, 2.5 * sh.vertices + [0.3, -1.0, 2.0], atol=1e-3)
    assert len(aligned.faces) == len(sh.faces)
    rc, _, err = run_cli(["register", folder / "chair.ply", folder / "moved.ply", "--checkpoint", WEIGHTS,
                          "--out", folder / "aligned.ply"], capsys)
    assert rc == 2 and "error:" in err and "aligned.ply" in err


def test_register_turned_copy_gives_the_turn_about_up(chair_files):
    # A model's keypoints follow a small turn only approximately; the fit must still find its sign and size.
    from kptool.detect import get_detector

    folder, sh = chair_files
    turned = sh.vertices @ rotation_about_up(15.0).T
    trimesh.Trimesh(turned, sh.faces, process=False).export(folder / "turned.ply")
    result = register_files(get_detector("checkpoint", WEIGHTS, device="cpu"), folder / "chair.ply",
                            folder / "turned.ply")
    assert 5.0 < result.up_angle_deg() < 25.0


def test_register_bad_input_is_one_error_line(chair_files, capsys, tmp_path):
    folder, _ = chair_files
    rc, _, err = run_cli(["register", tmp_path / "nope.ply", folder / "moved.ply", "--checkpoint", WEIGHTS], capsys)
    assert rc == 2 and "nope.ply: no such file" in err
    rc, _, err = run_cli(["register", folder / "chair.ply", folder / "moved.ply", "--checkpoint", WEIGHTS,
                          "--out", tmp_path / "a.obj"], capsys)
    assert rc == 2 and ".ply" in err
