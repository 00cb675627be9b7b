"""The features file, the linear-SVM probe, its CLI and its pictures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kptool.cli.main import main
from kptool.errors import InputError, KptoolError, OutputError
from kptool.probe import evaluate_svm
from kptool.probe.features import FeatureSet, read_features, write_features
from kptool.probe.svm import linear_svm_probe, wilson_interval


def blobs(seed: int = 0, per_class: int = 12, test_per_class: int = 4, spread: float = 0.3) -> FeatureSet:
    """Three well separated classes in 5-d, train and test drawn from the same blobs."""
    rng = np.random.default_rng(seed)
    centres = np.eye(5)[:3] * 4
    feats, labels, splits = [], [], []
    for c in range(3):
        for split, n in (("train", per_class), ("test", test_per_class)):
            feats.append(centres[c] + rng.normal(0, spread, (n, 5)))
            labels += [c] * n
            splits += [split] * n
    ids = [f"s{i}" for i in range(len(labels))]
    return FeatureSet(np.concatenate(feats), ids, np.array(labels), ["bed", "chair", "lamp"], splits,
                      {"dataset": "blobs"})


def test_features_file_round_trip_and_refuses_overwrite(tmp_path):
    fs = blobs()
    write_features(tmp_path / "f.npz", fs)
    back = read_features(tmp_path / "f.npz")
    np.testing.assert_array_equal(back.features, fs.features.astype(np.float32))
    assert (back.ids, back.classes, back.splits, back.meta) == (fs.ids, fs.classes, fs.splits, {"dataset": "blobs"})
    np.testing.assert_array_equal(back.labels, fs.labels)
    with pytest.raises(OutputError, match="already exists"):
        write_features(tmp_path / "f.npz", fs)


@pytest.mark.parametrize("change,message", [
    (lambda d: d.pop("splits"), "missing splits"),
    (lambda d: d.update(labels=np.full(len(d["labels"]), 7)), r"labels must lie in \[-1, 2\]"),
    (lambda d: d.update(features=np.full_like(d["features"], np.nan)), "NaN"),
    (lambda d: d.update(splits=np.array(["train"] * (len(d["labels"]) - 1) + ["holdout"])), "holdout"),
    (lambda d: d.update(meta=np.array("{}")), "format"),
    (lambda d: d.update(ids=d["ids"][:3]), "one entry per feature"),
])
def test_bad_features_files(tmp_path, change, message):
    write_features(tmp_path / "f.npz", blobs())
    with np.load(tmp_path / "f.npz") as z:
        data = {k: z[k] for k in z.files}
    change(data)
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(InputError, match=message):
        read_features(tmp_path / "bad.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(InputError, match="not a features file"):
        read_features(tmp_path / "text.npz")


def test_separable_classes_are_all_right():
    report = linear_svm_probe(blobs())
    assert report.accuracy == 1.0 and report.mean_class_accuracy == 1.0
    assert report.confusion == [[4, 0, 0], [0, 4, 0], [0, 0, 4]]
    assert (report.train_size, report.test_size, report.feature_dim, report.C) == (36, 12, 5, 1.0)


def test_hand_case_accuracy_and_confusion():
    # 1-d: class 0 at x < 0, class 1 at x > 0; the test 'chair' at x = -3 must be called 'bed'
    x = np.array([[-2.0], [-1.5], [-1.0], [1.0], [1.5], [2.0], [-2.5], [2.5], [-3.0]])
    fs = FeatureSet(x, [str(i) for i in range(9)], [0, 0, 0, 1, 1, 1, 0, 1, 1], ["bed", "chair"],
                    ["train"] * 6 + ["test"] * 3)
    for solver in ("svc", "liblinear"):
        report = linear_svm_probe(fs, solver=solver)
        assert report.accuracy == pytest.approx(2 / 3)
        assert report.confusion == [[1, 0], [1, 1]]
        assert report.per_class == {"bed": {"accuracy": 1.0, "count": 1}, "chair": {"accuracy": 0.5, "count": 2}}
        assert report.mean_class_accuracy == pytest.approx(0.75)


def test_unlabelled_shapes_are_left_out():
    fs = blobs()
    fs.labels[fs.splits.index("test")] = -1
    assert linear_svm_probe(fs).test_size == 11


def test_wilson_interval_hand_value():
    # p = 0.8, n = 10, z = 1.96: centre 0.71675, half-width 0.22658
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)


def test_cv_chooses_the_best_c_of_a_plain_fold_loop():
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import SVC

    fs = blobs(per_class=10, spread=2.5)           # overlapping classes: C matters
    grid = (1e-4, 0.01, 1.0)
    report = linear_svm_probe(fs, cv=True, c_grid=grid, folds=5, seed=3)
    x, y = fs.select("train")
    folds = list(StratifiedKFold(5, shuffle=True, random_state=3).split(x, y))
    plain = {c: np.mean([(SVC(kernel="linear", C=c).fit(x[a], y[a]).predict(x[b]) == y[b]).mean() for a, b in folds])
             for c in grid}
    assert report.cv_accuracy == pytest.approx({f"{c:g}": v for c, v in plain.items()})
    assert report.C == max(grid, key=lambda c: (plain[c], -grid.index(c))) and report.C_from == "cv"
    assert len(set(plain.values())) > 1


def test_probe_refuses_what_it_cannot_fit():
    fs = blobs()
    with pytest.raises(KptoolError, match="at least 2 classes"):
        linear_svm_probe(FeatureSet(fs.features[:5], fs.ids[:5], [0] * 5, fs.classes, ["train"] * 4 + ["test"]))
    with pytest.raises(KptoolError, match="no labelled shapes"):
        linear_svm_probe(fs, test_split="val")
    with pytest.raises(KptoolError, match="solver"):
        linear_svm_probe(fs, solver="rbf")


def test_evaluate_svm_writes_report_and_pictures(tmp_path):
    write_features(tmp_path / "f.npz", blobs())
    report, written = evaluate_svm(tmp_path / "f.npz")
    out = tmp_path / "f.svm"
    assert [p.name for p in written] == ["svm.json", "confusion.png", "tsne.png"]
    assert json.loads((out / "svm.json").read_text())["accuracy"] == 1.0
    assert (out / "tsne.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(OutputError, match="svm.json"):
        evaluate_svm(tmp_path / "f.npz")


def test_cli_eval_svm(tmp_path, capsys):
    write_features(tmp_path / "f.npz", blobs())
    assert main(["eval", "svm", str(tmp_path / "f.npz"), "--no-tsne", "-o", str(tmp_path / "o"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["accuracy"] == 1.0 and doc["C"] == 1.0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["confusion.png", "svm.json"]
    assert main(["eval", "svm", str(tmp_path / "f.npz"), "--no-tsne", "-o", str(tmp_path / "o"), "--cv",
                 "--force"]) == 0
    out = capsys.readouterr().out
    assert "by CV" in out and "accuracy 100.0 %" in out
    assert main(["eval", "svm", str(tmp_path / "missing.npz")]) == 2
    assert "error:" in capsys.readouterr().err


def test_ellipsoid_surface_is_the_one_sigma_contour():
    from kptool.viz.probe import ellipsoid_surface

    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    cov, mean = a @ a.T + 0.1 * np.eye(3), np.array([1.0, -2.0, 0.5])
    e = ellipsoid_surface(mean, cov).reshape(-1, 3) - mean
    np.testing.assert_allclose(np.einsum("ni,ij,nj->n", e, np.linalg.inv(cov), e), 1.0, rtol=1e-9)


def test_plot_mixtures_writes_a_png(tmp_path):
    from kptool.viz.probe import plot_mixtures

    pts = np.random.default_rng(0).normal(size=(200, 3))
    mixture = (np.array([0.5, 0.5]), np.zeros((2, 3)), np.stack([np.eye(3)] * 2))
    path = plot_mixtures([pts, pts], [mixture, mixture], tmp_path / "m.png", assignments=[np.arange(200) % 2] * 2,
                         titles=["a", "b"])
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(KptoolError, match="plot_mixtures"):
        plot_mixtures([pts], [(np.ones(2), np.zeros((3, 3)), np.zeros((2, 3, 3)))], tmp_path / "x.png")
