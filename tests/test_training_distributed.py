"""Data-parallel training (``ragprune.training.distributed``): each rank's share of an epoch, the
collective skip of a non-finite step, and a real two-process ``torchrun`` run of ``training/train.py`` on
the CPU (Gloo) that saves one loadable model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_training_smoke import PASSAGES, tiny_training_data  # noqa: F401  (the fixture)

from ragprune.training.distributed import Distributed, StepModule, rank_share, setup, wrap

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("items, world", [(10, 3), (9, 3), (2, 3), (7, 1)])
def test_each_rank_takes_an_equal_disjoint_share(items, world):
    order = list(range(items))[::-1]
    shares = [rank_share(order, Distributed(rank, world)) for rank in range(world)]
    assert len({len(share) for share in shares}) == 1  # every rank takes as many steps
    taken = [item for share in shares for item in share]
    assert len(taken) == len(set(taken)) and len(order) - len(taken) < world
    assert shares[0][:1] == order[: min(1, len(taken))]


def test_one_process_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    context, device = setup("cpu")
    assert (context.enabled, context.is_main, device.type) == (False, True, "cpu")
    assert context.all_finite(torch.tensor(1.0)) and not context.all_finite(torch.tensor(float("nan")))
    context.barrier()  # a no-op
    model = torch.nn.Linear(2, 2)
    assert isinstance(wrap(model, context, device, unused_parameters=False), StepModule)


def test_torchrun_two_ranks_train_and_save_one_model(tiny_training_data, tmp_path):  # noqa: F811
    from ragprune.pipeline import RerankPruner

    data, backbone = tiny_training_data
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(ROOT / "training" / "train.py"), "--data", str(data), "--backbone", str(backbone),
        "--out", str(out), "--device", "cpu", "--epochs", "2", "--queries-per-step", "1",
        "--group-size", "3", "--max-length", "64", "--log-every", "1",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    log = (out / "train.log").read_text()
    assert "data-parallel: 2 ranks on cpu" in log
    # 4 training groups: 2 per rank, 1 query per step -> 2 steps per epoch, 4 in all
    assert "step 4/4" in log and "epoch 1: DL21 validation nDCG@10" in log
    with RerankPruner.load(out / "model", device="cpu") as pruner:
        assert len(pruner.process("fleas", list(PASSAGES.values()))) == len(PASSAGES)
