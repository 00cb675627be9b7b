"""`kptool detect` on raw files in their own frames: invariance to origin and units, folder runs, warnings."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from kptool.cli.main import main
from kptool.data.transform import canonical_frame, detection_frame
from kptool.detect import detect_files, get_detector
from kptool.errors import InputWarning
from kptool.failures import EXIT_SOME_FAILED
from kptool.io import load_shape

FURNITURE_CHAIR = "furniture/chair/blend-swap-cc-0-chair/model.obj"


def write_obj(path, vertices, faces):
    lines = [f"v {x!r} {y!r} {z!r}" for x, y, z in np.asarray(vertices, dtype=np.float64).tolist()]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in np.asarray(faces).tolist()]
    path.write_text("\n".join(lines) + "\n")
    return path


def box_obj(path, size=(1.0, 2.0, 1.0), offset=(0.0, 0.0, 0.0)):
    import trimesh

    box = trimesh.creation.box(extents=size, transform=trimesh.transformations.translation_matrix(offset))
    return write_obj(path, box.vertices, box.faces)


def test_canonical_and_detection_frame_hand_worked():
    points = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0], [1.0, 1.0, 12.0]])   # box 3 x 4 x 12: diagonal 13
    c = canonical_frame(points)
    assert c.scale == pytest.approx(1 / 13)
    np.testing.assert_allclose(c.apply(points).min(axis=0), -np.array([3, 4, 12]) / 26)
    np.testing.assert_allclose(c.apply(points).max(axis=0), np.array([3, 4, 12]) / 26)
    # skeleton-merger of the centred box: the longest half-side (6/13) becomes 1, no offset left
    frame = detection_frame(points, "skeleton-merger")
    np.testing.assert_allclose(frame.apply(points)[:, 2], [-1, -1, 1], atol=1e-12)
    # moving and rescaling the input changes the transform, not the cloud it gives
    moved = points * 0.01 + [1.0, 0.5, -2.0]
    np.testing.assert_allclose(detection_frame(moved, "skeleton-merger").apply(moved), frame.apply(points),
                               atol=1e-12)


def test_real_chair_keypoints_follow_translation_and_scale(shared_data, tmp_path):
    """The issue's case: a chair in centimetres on the floor, and the same chair in metres moved away."""
    source = shared_data / FURNITURE_CHAIR
    if not source.is_file():
        pytest.skip(f"furniture sample data not found at {source}")
    shape = load_shape(source)
    moved_vertices = shape.vertices * 0.01 + np.array([1.0, 0.5, -2.0])
    original = write_obj(tmp_path / "chair_cm.obj", shape.vertices, shape.faces)
    moved = write_obj(tmp_path / "chair_m.obj", moved_vertices, shape.faces)
    for detector in (get_detector(category="chair", device="cpu"), get_detector("fps", num_keypoints=10)):
        a, b = detect_files(detector, [original, moved])
        expected = a.keypoints.astype(np.float64) * 0.01 + [1.0, 0.5, -2.0]
        diagonal = float(np.linalg.norm(np.ptp(moved_vertices, axis=0)))
        deviation = np.abs(b.keypoints - expected).max() / diagonal
        assert deviation < 1e-4, (detector.name, deviation)
        # and the keypoints sit on the chair, not piled up: they span most of its height
        height = np.ptp(shape.vertices[:, 1])
        assert np.ptp(a.keypoints[:, 1]) > 0.5 * height, detector.name


def test_folder_goes_on_past_bad_files(tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    box_obj(folder / "a.obj")
    (folder / "sub" / "broken.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99999999999999999999999\n")
    (folder / "sub" / "b.obj").write_text((folder / "a.obj").read_text())
    (folder / "LICENSE.txt").write_text("Creative Commons Attribution 3.0\n")   # not a point table: left out
    out = tmp_path / "out" / "kp.json"
    code = main(["detect", str(folder), "--method", "fps", "--keypoints", "4", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == EXIT_SOME_FAILED == 3
    assert "1 files failed" in err and "broken.obj: line 4: face index out of range" in err
    assert "left out 1 .txt files" in err and "Traceback" not in err
    preds = json.loads(out.read_text())
    assert [s["id"] for s in preds["shapes"]] == ["a.obj", "sub/b.obj"]
    failures = json.loads((out.parent / "failures.json").read_text())
    assert len(failures) == 1 and failures[0]["source"].endswith("broken.obj")
    assert "face index out of range" in failures[0]["error"]

    # --strict: the first failure is fatal and nothing is written
    out2 = tmp_path / "strict" / "kp.json"
    code = main(["detect", str(folder), "--method", "fps", "--keypoints", "4", "--out", str(out2), "--strict"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "broken.obj" in err
    assert not out2.parent.exists()

    # nothing readable at all: an error, not an empty result
    (folder / "a.obj").unlink()
    (folder / "sub" / "b.obj").write_text("f 1 2 3\n")
    code = main(["detect", str(folder), "--method", "fps", "--keypoints", "4", "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert code == 2 and "none of its 2 shape files could be read" in err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("existing", ["png", "json", "ply", "failures"])
def test_every_output_checked_before_any_is_written(tmp_path, capsys, existing):
    folder = tmp_path / "in"
    folder.mkdir()
    box_obj(folder / "a.obj")
    box_obj(folder / "b.obj", offset=(5, 0, 0))
    if existing == "failures":
        (folder / "c.obj").write_text("garbage\n")
    png, out = tmp_path / "kp.png", tmp_path / ("kp" if existing == "ply" else "kp.json")
    blocker = {"png": png, "json": out, "ply": out / "b.keypoints.ply", "failures": tmp_path / "failures.json"}
    blocker[existing].parent.mkdir(parents=True, exist_ok=True)
    blocker[existing].write_bytes(b"the user's file")
    args = ["detect", str(folder), "--method", "fps", "--keypoints", "4", "--out", str(out), "--png", str(png)]
    code = main(args + (["--format", "ply"] if existing == "ply" else []))
    err = capsys.readouterr().err
    assert code == 2 and "already exists (use --force to overwrite)" in err
    assert blocker[existing].read_bytes() == b"the user's file"
    written = sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and p.parent != folder)
    assert written == [blocker[existing].name], written
    code = main(args + (["--format", "ply"] if existing == "ply" else []) + ["--force"])
    assert code == (EXIT_SOME_FAILED if existing == "failures" else 0)
    assert blocker[existing].read_bytes() != b"the user's file"


def test_warnings_for_inputs_unlike_the_training_data(tmp_path, capsys):
    standing = box_obj(tmp_path / "standing.obj", size=(0.46, 0.74, 0.48))     # a chair's proportions, y up
    lying = box_obj(tmp_path / "lying.obj", size=(0.46, 0.48, 0.74))           # the same, z up
    detector = get_detector(category="chair", device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detect_files(detector, [standing])
        assert not [w for w in caught if issubclass(w.category, InputWarning)]
        detect_files(detector, [lying])
        detect_files(detector, [standing], up="z")
    messages = [str(w.message) for w in caught if issubclass(w.category, InputWarning)]
    assert len(messages) == 2
    assert "lying.obj" in messages[0] and "try --up z" in messages[0]
    assert "standing.obj" in messages[1] and "try --up y" in messages[1]
    # a cloud with far fewer points than the model's 2048 is used whole, with a warning on the command line
    np.savetxt(tmp_path / "sparse.xyz", np.random.default_rng(0).random((300, 3)))
    code = main(["detect", str(tmp_path / "sparse.xyz"), "--category", "chair", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0 and "warning:" in captured.err and "has 300 points, far fewer than the 2048" in captured.err
    assert len(json.loads(captured.out)["shapes"][0]["keypoints"]) == 10
