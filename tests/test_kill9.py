"""``kill -9`` of the installed ``kptool`` in the middle of long jobs: nothing survives, re-runs finish.

SIGKILL allows no clean-up, so these check what the design promises without it: prepare workers
end with their parent (they watch it), shape files and checkpoints are written atomically, and
re-running the same command gives the same dataset / the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from cli_subprocess import kptool_command, run_kptool
from hostile_corpus import good_dataset, good_preset


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", NO_COLOR="1")


def _children(pid: int) -> set[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(condition, seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _dataset_arrays(root: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for f in sorted((root / "shapes").glob("*.npz")):
        with np.load(f) as z:
            out[f.stem] = {k: z[k] for k in z.files}
    return out


def _comparable_manifest(root: Path) -> dict:
    m = json.loads((root / "manifest.json").read_text())
    return {k: v for k, v in m.items() if k not in ("created", "software")}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the workers")
def test_prepare_workers_die_with_their_killed_parent_and_a_rerun_gives_the_same_dataset(tmp_path):
    args = ["prepare", "synthetic", "--category", "chair", "--count", "24", "--points", "256", "--workers", "2",
            "--quiet"]
    out = tmp_path / "killed"
    proc = subprocess.Popen([kptool_command(), *args, "--out", str(out)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: len(list((out / "shapes").glob("*.npz"))) >= 2 or proc.poll() is not None), \
            "no shape was written"
        assert proc.poll() is None, "prepare finished before it could be killed"
        workers = _children(proc.pid)
        assert workers, "no worker processes found"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _wait_for(lambda: not any(_alive(w) for w in workers), 30), \
            f"workers {sorted(w for w in workers if _alive(w))} outlived their killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (out / "manifest.json").exists()
    r = run_kptool(*args, "--out", out)
    assert r.code == 0, r.err
    reference = tmp_path / "uninterrupted"
    r = run_kptool(*args, "--out", reference)
    assert r.code == 0, r.err
    assert _comparable_manifest(out) == _comparable_manifest(reference)
    a, b = _dataset_arrays(out), _dataset_arrays(reference)
    assert a.keys() == b.keys() and len(a) == 24
    for sid in a:
        assert a[sid].keys() == b[sid].keys()
        for key in a[sid]:
            np.testing.assert_array_equal(a[sid][key], b[sid][key], err_msg=f"{sid}/{key}")


def test_train_killed_after_an_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    import torch

    data = good_dataset(tmp_path / "data")
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump({**good_preset(), "train": {**good_preset()["train"], "epochs": 4}}))
    common = ["--preset", str(preset), "--data", str(data), "--device", "cpu", "--quiet"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([kptool_command(), "train", *common, "--out", str(killed)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        last = killed / "checkpoints" / "last.pt"
        assert _wait_for(lambda: last.exists() or proc.poll() is not None, 300), "no checkpoint was written"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    epoch = torch.load(last, weights_only=True)["epoch"]
    if epoch >= 4:
        pytest.skip("the run finished before the kill (machine much faster than expected)")
    r = run_kptool("train", "--resume", "--out", killed, "--device", "cpu", "--quiet")
    assert r.code == 0, r.err
    reference = tmp_path / "uninterrupted"
    r = run_kptool("train", *common, "--out", reference)
    assert r.code == 0, r.err
    a = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(reference / "checkpoints" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 4 and a["step"] == b["step"]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [h["train"] for h in a["history"]] == [h["train"] for h in b["history"]]
