"""Data-parallel training across processes (``torchrun``), as PyTorch's DistributedDataParallel does it.

``torchrun --nproc_per_node N training/train.py ...`` starts N copies of the script; each reads its
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` from the environment (PyTorch docs, "torchrun (Elastic
Launch)"). :func:`setup` joins them in one process group (NCCL on GPUs, Gloo on the CPU), every rank trains
on its own share of each epoch's groups (:func:`rank_share`), DDP averages the gradients during the
backward pass (Li et al. 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel Training"),
and only the main rank validates, checkpoints and saves. Without torchrun's variables the run is one
process and nothing here changes it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ragprune.devices import default_device

T = TypeVar("T")

COLLECTIVE_TIMEOUT = timedelta(hours=2)
"""How long a rank may wait in a collective call: the other ranks wait at a barrier while rank 0
validates and checkpoints after each epoch (NCCL's default of 10 minutes would end a run with a long
validation)."""


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run: ``rank`` of ``world_size`` processes, ``local_rank`` on its host."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process validates, logs, checkpoints and saves (rank 0)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether the run has several processes (collective calls then happen)."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (a no-op in a one-process run)."""
        if self.enabled:
            dist.barrier()

    def all_finite(self, loss: torch.Tensor) -> bool:
        """Whether ``loss`` is finite on every rank: all ranks must skip a step together, or the gradient
        all-reduce of the ones that did not skip would wait forever."""
        finite = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
        if self.enabled:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite.item())


def setup(device: str | None) -> tuple[Distributed, torch.device]:
    """Read torchrun's environment, join the process group and pick this rank's device: ``cuda:LOCAL_RANK``
    when ``device`` is ``cuda`` (or unset with GPUs present), else the CPU (Gloo). One process, on
    ``device``, without torchrun. ``ValueError`` for a device a multi-process run cannot use (a numbered
    GPU, ``mps``, CUDA without GPUs, more processes on a host than it has GPUs)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed(), torch.device(device or default_device())
    context = Distributed(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    wanted = torch.device(device or default_device())
    if wanted.type == "cuda":
        if wanted.index is not None:
            raise ValueError(
                f"--device {device}: under torchrun each rank takes the GPU of its LOCAL_RANK; pass --device "
                "cuda (and choose GPUs with CUDA_VISIBLE_DEVICES)"
            )
        if context.local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK {context.local_rank} but this host has {torch.cuda.device_count()} usable GPUs; "
                "start at most one process per GPU (torchrun --nproc_per_node) or pass --device cpu"
            )
        torch.cuda.set_device(context.local_rank)
        chosen = torch.device("cuda", context.local_rank)
    elif wanted.type == "cpu":
        chosen = wanted
    else:
        raise ValueError(f"--device {device}: data-parallel training runs on cuda (NCCL) or cpu (Gloo)")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
    return context, chosen


def teardown(context: Distributed, clean: bool = True) -> None:
    """Leave the process group (after the last collective call). ``clean``: every rank got here normally,
    so they first meet at a barrier: a rank that destroys its group while another still tears down can
    make Gloo abort the slower one. After an error (``clean=False``) no rank waits for the others."""
    if context.enabled and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


def rank_share(order: Sequence[T], context: Distributed) -> list[T]:
    """This rank's items of an epoch's (identically shuffled) ``order``: every ``world_size``-th, from
    ``rank``, after cutting ``order`` to a multiple of ``world_size`` (at most ``world_size - 1`` items of
    an epoch are left out), so every rank takes the same number of steps."""
    usable = len(order) - len(order) % context.world_size
    return list(order[context.rank : usable : context.world_size])


class StepModule(nn.Module):
    """Runs one step's batches through ``model`` in a single forward call, so that DDP (which prepares
    its gradient all-reduce once per forward) sees one forward per backward however many batches a step
    encodes; each batch is a dict with ``input_ids``, ``attention_mask`` and ``token_type_ids``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *batches: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        return [self.model(b["input_ids"], b["attention_mask"], b["token_type_ids"]) for b in batches]


def wrap(model: nn.Module, context: Distributed, device: torch.device) -> nn.Module:
    """``model`` behind :class:`StepModule`, in DDP when the run has several ranks (DDP broadcasts rank 0's
    weights at construction; every parameter must take part in each step's loss, as the joint loss's do)."""
    step = StepModule(model)
    if not context.enabled:
        return step
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(step, device_ids=ids)
