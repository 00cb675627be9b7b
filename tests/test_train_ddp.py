"""Distributed training: two CPU processes with gloo, as torchrun would start them."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

from kptool.train import load_checkpoint, resolve_config, train

from test_train_helpers import TinyKeypoints, make_dataset, tiny_config


def _worker(rank: int, world_size: int, port: int, data: str, out: str, result: str) -> None:
    # what torchrun sets for each process
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    built = []
    init = TinyKeypoints.__init__

    def record(self, *args, **kwargs):
        init(self, *args, **kwargs)
        built.append(self)

    TinyKeypoints.__init__ = record
    cfg = resolve_config(tiny_config("test-tiny-paired", epochs=2, batch_size=2))
    summary = train(cfg, data, out, device="cpu")
    torch.save({"model": built[0].state_dict(), "summary_steps": summary["steps"]}, f"{result}/rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_run_keeps_ranks_in_sync(tmp_path):
    data = make_dataset(tmp_path / "data", n_train=8, n_val=2)
    run, result = tmp_path / "run", tmp_path / "result"
    result.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(data), str(run), str(result)), nprocs=2, join=True)
    ranks = [torch.load(result / f"rank{r}.pt", weights_only=True) for r in range(2)]
    # 8 shapes = 4 pairs -> 2 pairs per rank -> 2 steps of one pair each, per epoch
    assert ranks[0]["summary_steps"] == ranks[1]["summary_steps"] == 4
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["world_size"] == 2 and ckpt["epoch"] == 2
    initial = TinyKeypoints(3, 8)
    for k, v in ranks[0]["model"].items():
        assert torch.equal(v, ranks[1]["model"][k]), k          # gradients were averaged: same parameters
        assert torch.equal(v, ckpt["model"][k]), k              # and rank 0 saved them
    assert any(not torch.equal(v, initial.state_dict()[k]) for k, v in ckpt["model"].items())
