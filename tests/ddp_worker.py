"""One rank of the two-process check in ``test_training_distributed.py`` (run by ``torch.distributed.run``):
a tiny two-batch model trained through ``ragprune.training.distributed`` on rank-specific inputs, with a
non-finite loss on rank 1 only at step 1. Writes ``{out}/rank{RANK}.json``: the steps each rank skipped,
whether the DDP gradient equals the mean of the ranks' own gradients, whether the weights agree."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ragprune.training.distributed import setup, teardown, wrap


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, input_ids, attention_mask, token_type_ids):
        return {"rank": self.linear(input_ids).squeeze(-1)}


def batch(rank: int, step: int) -> dict[str, torch.Tensor]:
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4) / (rank + step + 1)
    return {"input_ids": x, "attention_mask": x, "token_type_ids": x}


def loss_of(outputs) -> torch.Tensor:
    return sum((out["rank"] ** 2).sum() for out in outputs)


def main(out: Path) -> None:
    context, device = setup("cpu")
    torch.manual_seed(0)
    model = Tiny()
    step_model = wrap(model, context, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    skipped, matches = [], []
    for step in range(3):
        before = copy.deepcopy(model)
        loss = loss_of(step_model(batch(context.rank, step), batch(context.rank, step + 5)))
        if step == 1 and context.rank == 1:
            loss = loss * float("nan")
        optimizer.zero_grad()
        if not context.all_finite(loss):
            skipped.append(step)
            continue
        loss.backward()
        own = []
        for rank in range(context.world_size):  # each rank's gradient, computed here without DDP
            alone = copy.deepcopy(before)
            loss_of([alone(**batch(rank, step)), alone(**batch(rank, step + 5))]).backward()
            own.append(alone.linear.weight.grad)
        matches.append(bool(torch.allclose(model.linear.weight.grad, torch.stack(own).mean(0))))
        optimizer.step()
    weights = [torch.zeros_like(model.linear.weight) for _ in range(context.world_size)]
    dist.all_gather(weights, model.linear.weight.detach())
    result = {
        "skipped": skipped,
        "matches": matches,
        "equal": all(torch.equal(w, weights[0]) for w in weights),
    }
    (out / f"rank{context.rank}.json").write_text(json.dumps(result))
    teardown(context)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
