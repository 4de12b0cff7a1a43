"""Data-parallel training (``ragprune.training.distributed``): each rank's share of an epoch, the
collective skip of a non-finite step, and a real two-process ``torchrun`` run of ``training/train.py`` on
the CPU (Gloo) that saves one loadable model."""

from __future__ import annotations

import json
import os
import signal
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
    assert isinstance(wrap(model, context, device), StepModule)


def _torchrun(script: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``script`` in two CPU processes under ``torch.distributed.run`` (its whole process group killed if
    it runs past five minutes)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), *args]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_two_ranks_average_gradients_and_skip_a_non_finite_step_together(tmp_path):
    done = _torchrun(ROOT / "tests" / "ddp_worker.py", [str(tmp_path)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for rank in ranks:
        assert rank["skipped"] == [1]  # rank 1's NaN at step 1: both ranks skip it
        assert rank["matches"] == [True, True]  # the gradient is the mean of the two ranks' own
        assert rank["equal"]  # and the weights stay identical


def test_torchrun_two_ranks_train_and_save_one_model(tiny_training_data, tmp_path):  # noqa: F811
    from ragprune.pipeline import RerankPruner

    data, backbone = tiny_training_data
    out = tmp_path / "out"
    args = ["--data", str(data), "--backbone", str(backbone), "--out", str(out), "--device", "cpu",
            "--epochs", "2", "--queries-per-step", "1", "--group-size", "3", "--max-length", "64",
            "--log-every", "1"]  # fmt: skip
    done = _torchrun(ROOT / "training" / "train.py", args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    log = (out / "train.log").read_text()
    assert "data-parallel: 2 ranks on cpu" in log
    # 4 training groups: 2 per rank, 1 query per step -> 2 steps per epoch, 4 in all
    assert "step 4/4" in log and "epoch 1: DL21 validation nDCG@10" in log
    with RerankPruner.load(out / "model", device="cpu") as pruner:
        assert len(pruner.process("fleas", list(PASSAGES.values()))) == len(PASSAGES)


@pytest.mark.parametrize(
    "device, message",
    [("cuda:1", "takes the GPU of its LOCAL_RANK"), ("mps", "cuda \\(NCCL\\) or cpu \\(Gloo\\)")],
)
def test_torchrun_refuses_a_device_it_cannot_share(monkeypatch, device, message):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ValueError, match=message):
        setup(device)
