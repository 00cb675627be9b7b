"""Training loop: config resolution, runs, checkpoints, exact resume, Ctrl-C, NaN, samplers."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from kptool.errors import KptoolError, OutputError
from kptool.train import TrainingDiverged, TrainingInterrupted, load_checkpoint, resolve_config, train
from kptool.train.checkpoint import export_weights
from kptool.train.config import apply_overrides, parse_override
from kptool.train.sampler import epoch_batches

from conftest import requires_cuda
from test_train_helpers import TinyKeypoints, fresh_hooks, make_dataset, reset_hooks, tiny_config  # noqa: F401 (fresh_hooks: autouse fixture)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"))


def params(state_dict) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in state_dict.items()}


# --- configuration -----------------------------------------------------------------

def test_parse_override_reads_yaml_values():
    assert parse_override("train.lr=0.5") == (["train", "lr"], 0.5)
    assert parse_override("train.optimizer_options.eps=1.0e-6") == (["train", "optimizer_options", "eps"], 1e-6)
    assert parse_override("model.name=foo") == (["model", "name"], "foo")
    assert parse_override("train.grad_clip=null") == (["train", "grad_clip"], None)
    with pytest.raises(KptoolError, match="section.key=value"):
        parse_override("train.lr")


def test_resolve_config_fills_defaults_and_applies_overrides():
    cfg = resolve_config(tiny_config(), ["train.lr=1e-3", "model.num_keypoints=7", "train.epochs=5"])
    assert cfg["train"]["lr"] == pytest.approx(1e-3)      # "1e-3" is a string to PyYAML: coerced
    assert cfg["model"]["num_keypoints"] == 7
    assert cfg["train"]["epochs"] == 5
    assert cfg["train"]["val_every"] == 1                   # default filled in
    assert cfg["data"]["points"] == 64
    # the resolved config round-trips through YAML unchanged
    assert resolve_config(yaml.safe_load(yaml.safe_dump(cfg))) == cfg


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "unknown train key 'epoch'"),
    ("data.pts=3", "unknown data key 'pts'"),
    ("foo.bar=1", "unknown section 'foo'"),
    ("train.epochs=0", "train.epochs must be at least 1"),
    ("train.batch_size=two", "train.batch_size must be an integer"),
    ("train.optimizer=rmsprop", "train.optimizer must be one of"),
    ("train.lr=2.5x", "train.lr must be a number"),
])
def test_bad_config_keys_are_user_errors(override, message):
    with pytest.raises(KptoolError, match=message):
        resolve_config(tiny_config(), [override])


def test_preset_errors(tmp_path):
    with pytest.raises(KptoolError, match="unknown preset 'no-such-preset'"):
        resolve_config("no-such-preset")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(KptoolError, match="bad.yaml: invalid YAML"):
        resolve_config(str(bad))
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(tiny_config()))
    assert resolve_config(str(good))["model"]["name"] == "test-tiny"


def test_apply_overrides_does_not_touch_the_input():
    base = tiny_config()
    apply_overrides(base, ["train.epochs=9"])
    assert base["train"]["epochs"] == 2


def test_shipped_presets_resolve():
    from kptool.train import available_presets

    for name in available_presets():
        try:
            cfg = resolve_config(name)
        except KptoolError as e:
            pytest.fail(f"preset {name}: {e}")
        assert cfg["model"].get("num_keypoints", 1) > 0   # num_keypoints belongs to the models that have it


def test_ablation_preset_is_skeleton_mutual_without_the_mutual_term():
    # Table 4's "w/o m-rec" must differ from skeleton-mutual in the mutual term only:
    # the same training (optimiser, lr, budget) and the same shared model settings.
    from kptool.models import SkeletonMerger, SkeletonMutual, build_model

    full = resolve_config("skeleton-mutual")
    ablation = resolve_config("skeleton-mutual-wo-mrec")
    assert ablation["train"] == full["train"] and ablation["data"] == full["data"]
    a, f = build_model(ablation["model"]), build_model(full["model"])
    assert type(a) is SkeletonMerger and type(f) is SkeletonMutual and not a.paired and f.paired
    # the same network but for the mutual term's keypoint-offset MLP ...
    assert {k: v.shape for k, v in a.state_dict().items()} == \
        {k: v.shape for k, v in f.state_dict().items() if not k.startswith("keypoint_offset.")}
    assert (a.dropout.p, a.decoder.max_points, a.decoder.min_points, a.decoder.spacing) == \
        (f.dropout.p, f.decoder.max_points, f.decoder.min_points, f.decoder.spacing)
    # ... and the same self-reconstruction loss
    assert a.loss.name == "skeleton-reconstruction" and a.loss.offset_weight == f.loss.offset_weight
    # inheritance: the preset names only what differs
    from importlib import resources

    text = (resources.files("kptool.presets") / "skeleton-mutual-wo-mrec.yaml").read_text()
    assert "base: skeleton-mutual" in text and len([ln for ln in text.splitlines() if ln and ln[0] != "#"]) < 12


# --- sampler ------------------------------------------------------------------------

def test_epoch_batches_plain_covers_every_shape_once():
    batches = epoch_batches(10, 4, epoch=0, seed=1)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(10)) and [len(b) for b in batches] == [4, 4, 2]
    assert epoch_batches(10, 4, epoch=0, seed=1) == batches        # a pure function of seed and epoch
    assert epoch_batches(10, 4, epoch=1, seed=1) != batches
    # a last batch of one shape is dropped (BatchNorm cannot train on it)
    assert [len(b) for b in epoch_batches(9, 4, epoch=0, seed=0)] == [4, 4]


def test_epoch_batches_paired_follows_the_reference_halves():
    n, bs = 11, 4
    batches = epoch_batches(n, bs, epoch=3, seed=2, paired=True)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(2 * 100_003 + 3)).tolist()
    a, b = perm[:5], perm[5:10]
    # batch = [a_i.., b_i..]: shape j pairs with j + len/2, pairs are (a_i, b_i) in order
    pairs = [(batch[j], batch[j + len(batch) // 2]) for batch in batches for j in range(len(batch) // 2)]
    assert pairs == list(zip(a, b))
    with pytest.raises(KptoolError, match="must be even"):
        epoch_batches(n, 3, epoch=0, seed=0, paired=True)


def test_epoch_batches_shard_evenly_across_processes():
    shards = [epoch_batches(11, 2, epoch=0, seed=0, paired=True, rank=r, world_size=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1])                      # same number of steps on every rank
    seen = [i for s in shards for b in s for i in b]
    assert len(seen) == len(set(seen)) == 8                       # 5 pairs -> 2 per rank, disjoint


# --- training runs ------------------------------------------------------------------

def test_train_writes_run_folder_and_loss_decreases(dataset, tmp_path):
    run = tmp_path / "run"
    summary = train(resolve_config(tiny_config(epochs=6, lr=0.03)), dataset, run, device="cpu")
    assert summary["epochs"] == 6 and summary["steps"] == 12
    for name in ("config.yaml", "log.jsonl", "curves.png", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved == resolve_config(tiny_config(epochs=6, lr=0.03))
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, 7))
    assert log[-1]["train"]["loss"] < log[0]["train"]["loss"]
    assert {"loss", "coverage", "das", "das_forward", "das_backward"} <= set(log[-1]["val"])
    assert 0 <= log[-1]["val"]["das"] <= 1
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["best"]["metric"] == "das"
    assert best["best"]["value"] == max(r["val"]["das"] for r in log)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["epoch"] == 6 and last["batch"] == 0 and not last["interrupted"]


def test_checkpoint_loads_with_weights_only(dataset, tmp_path):
    run = tmp_path / "run"
    train(resolve_config(tiny_config(epochs=1)), dataset, run, device="cpu")
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert set(ckpt["model"]) == set(TinyKeypoints(3, 8).state_dict())
    assert ckpt["config"]["model"]["name"] == "test-tiny"


def test_run_folder_not_overwritten_without_force(dataset, tmp_path):
    run = tmp_path / "run"
    cfg = resolve_config(tiny_config(epochs=1))
    train(cfg, dataset, run, device="cpu")
    with pytest.raises(OutputError, match="not empty"):
        train(cfg, dataset, run, device="cpu")
    (run / "notes.txt").write_text("mine")
    train(cfg, dataset, run, device="cpu", force=True)
    assert (run / "notes.txt").read_text() == "mine"             # --force removes run files only


def test_resume_after_epoch_matches_straight_run(dataset, tmp_path):
    straight = tmp_path / "straight"
    train(resolve_config(tiny_config(epochs=3)), dataset, straight, device="cpu")
    split = tmp_path / "split"
    train(resolve_config(tiny_config(epochs=1)), dataset, split, device="cpu")
    # extending train.epochs on resume is allowed
    train(resolve_config(tiny_config(epochs=3)), None, split, device="cpu", resume=True)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(split / "checkpoints" / "last.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["step"] == b["step"] and a["best"] == b["best"]
    for k in a["optimizer"]["state"]:
        assert torch.equal(a["optimizer"]["state"][k]["exp_avg"], b["optimizer"]["state"][k]["exp_avg"])


def test_ctrl_c_saves_mid_epoch_and_resume_is_exact(dataset, tmp_path):
    cfg = resolve_config(tiny_config("test-tiny-paired", epochs=2, scheduler="step",
                                     scheduler_options={"step_size": 1, "gamma": 0.5}))
    straight = tmp_path / "straight"
    train(cfg, dataset, straight, device="cpu")
    reset_hooks()
    run = tmp_path / "run"
    TinyKeypoints.sigint_at_call = 3        # third training step: epoch 2, batch 1 (2 steps per epoch)
    with pytest.raises(TrainingInterrupted, match="continue with: kptool train --resume"):
        train(cfg, dataset, run, device="cpu")
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["interrupted"] and ckpt["epoch"] == 1 and ckpt["batch"] == 1 and ckpt["step"] == 3
    TinyKeypoints.sigint_at_call = None
    train(cfg, None, run, device="cpu", resume=True)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(run / "checkpoints" / "last.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [r["train"] for r in a["history"]] == [r["train"] for r in b["history"]]
    assert a["scheduler"] == b["scheduler"]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(dataset, tmp_path):
    run = tmp_path / "run"
    TinyKeypoints.nan_at_call = 4           # epoch 2, batch 2
    with pytest.raises(TrainingDiverged, match=r"non-finite \(loss=nan.*epoch 2, batch 2 \(step 4\).*epoch 1"):
        train(resolve_config(tiny_config(epochs=3)), dataset, run, device="cpu")
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_a_run_of_kptool_01_resumes(dataset, tmp_path):
    run = tmp_path / "run"
    train(resolve_config(tiny_config(epochs=1)), dataset, run, device="cpu")
    path = run / "checkpoints" / "last.pt"
    ckpt = torch.load(path, weights_only=True)
    old = ckpt["config"]["train"]
    del old["val_metrics"], old["best"]
    old["best_metric"] = "auto"                        # how 0.1 stored the best rule
    torch.save(ckpt, path)
    summary = train(resolve_config(ckpt["config"], ["train.epochs=2"]), None, run, device="cpu", resume=True)
    assert summary["epochs"] == 2 and summary["best"]["metric"] == "das"


def test_resume_refuses_config_changes(dataset, tmp_path):
    run = tmp_path / "run"
    train(resolve_config(tiny_config(epochs=1)), dataset, run, device="cpu")
    with pytest.raises(KptoolError, match="cannot change train.lr"):
        train(resolve_config(tiny_config(epochs=2, lr=0.5)), None, run, device="cpu", resume=True)
    with pytest.raises(KptoolError, match="already finished 1 epochs"):
        train(resolve_config(tiny_config(epochs=1)), None, run, device="cpu", resume=True)
    with pytest.raises(KptoolError, match="no such checkpoint"):
        train(resolve_config(tiny_config()), None, tmp_path / "nothing", device="cpu", resume=True)


def test_points_mismatch_and_tiny_dataset_are_user_errors(dataset, tmp_path):
    with pytest.raises(KptoolError, match="64 points but the config trains on data.points=128"):
        train(resolve_config(tiny_config(points=128)), dataset, tmp_path / "a", device="cpu")
    with pytest.raises(KptoolError, match="no manifest.json"):
        train(resolve_config(tiny_config()), tmp_path, tmp_path / "b", device="cpu")


def test_validation_without_keypoints_uses_val_loss(tmp_path):
    data = make_dataset(tmp_path / "data", keypoints=False)
    summary = train(resolve_config(tiny_config(epochs=2)), data, tmp_path / "run", device="cpu")
    assert summary["best"]["metric"] == "loss" and "das" not in summary["val"]


def test_best_rule_and_validation_metrics_come_from_the_config(dataset, tmp_path):
    import json

    cfg = tiny_config(epochs=3)
    cfg["train"].update(val_metrics=["das"], best={"metric": "das_backward", "mode": "min"})
    summary = train(resolve_config(cfg), dataset, tmp_path / "run", device="cpu")
    history = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(set(r["val"]) == {"das", "das_forward", "das_backward"} for r in history)   # no loss: not asked
    lowest = min(history, key=lambda r: (r["val"]["das_backward"], r["epoch"]))
    assert summary["best"] == {"metric": "das_backward", "value": lowest["val"]["das_backward"],
                               "epoch": lowest["epoch"]}
    # kptool 0.1's best_metric still reads, as the same rule
    old = tiny_config()
    old["train"]["best_metric"] = "val_loss"
    assert resolve_config(old)["train"]["best"] == {"metric": "loss", "mode": "min"}
    with pytest.raises(KptoolError, match="unknown metric 'dass'"):
        resolve_config({**cfg, "train": {"val_metrics": ["loss", "dass"]}})


def test_export_weights_is_slim_and_refuses_overwrite(dataset, tmp_path):
    run = tmp_path / "run"
    train(resolve_config(tiny_config(epochs=1)), dataset, run, device="cpu")
    out = export_weights(run, tmp_path / "box.pt", category="box")
    w = torch.load(out, weights_only=True)
    assert w["format"] == "kptool-weights" and "optimizer" not in w and w["meta"]["category"] == "box"
    assert w["meta"]["source"] == "run"   # the run's name, never an absolute path of the machine it came from
    with pytest.raises(OutputError, match="already exists"):
        export_weights(run, out)


@requires_cuda
def test_train_resume_and_detect_on_cuda(dataset, tmp_path):
    from kptool.detect import load_detector

    run = tmp_path / "run"
    train(resolve_config(tiny_config(epochs=1)), dataset, run, device="cuda")
    summary = train(resolve_config(tiny_config(epochs=2)), None, run, device="cuda", resume=True)
    assert summary["epochs"] == 2
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")    # map_location=cpu by default
    assert all(v.device.type == "cpu" for v in ckpt["model"].values())
    gpu, cpu = load_detector(run, device="cuda"), load_detector(run, device="cpu")
    points = torch.rand(64, 3).numpy() * 2 - 1
    torch.testing.assert_close(torch.from_numpy(gpu(points)), torch.from_numpy(cpu(points)), atol=1e-4, rtol=0)


def test_presets_inherit_from_a_base(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: skeleton-mutual\nname: mine\nmodel:\n  num_keypoints: 12\n"
                                        "  loss: {mutual_weight: 0.8}\ntrain: {epochs: 5}\n")
    (tmp_path / "child.yaml").write_text("base: mine.yaml\nname: child\n"
                                         "model: {loss: {name: skeleton-reconstruction}}\n")
    full, mine = resolve_config("skeleton-mutual"), resolve_config(tmp_path / "mine.yaml")
    assert mine["model"]["num_keypoints"] == 12 and mine["train"]["epochs"] == 5
    assert mine["model"]["loss"] == {**full["model"]["loss"], "mutual_weight": 0.8}     # merged key by key
    assert {k: v for k, v in mine["model"].items() if k not in ("num_keypoints", "loss")} == \
        {k: v for k, v in full["model"].items() if k not in ("num_keypoints", "loss")}
    child = resolve_config(tmp_path / "child.yaml")                                    # a base relative to the file
    assert child["model"]["loss"] == {"name": "skeleton-reconstruction"}               # another name: replaced whole
    assert child["model"]["num_keypoints"] == 12 and child["name"] == "child"
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(KptoolError, match="cycle"):
        resolve_config(tmp_path / "a.yaml")
