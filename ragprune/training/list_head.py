"""Training a list-level head (``ragprune.models.heads.ListwiseHead``) on a frozen rerank + prune model.

The head reads what the pointwise pass already computes — each candidate's ``[CLS]`` vector and rank logit
(``RerankPruner.candidate_vectors``) — so the encoder is run once per candidate list, the lists are kept in
memory, and the head trains on them in seconds per epoch. Targets are the teacher ensemble's scores of the
training data (``build_data.py`` / ``splade_teacher.py``), over every candidate of a query:

* listwise KL to the teacher's softmax (``ListwiseDistillationLoss``, with the gold passage mixed in);
* FIRST's rank-weighted RankNet (``RankWeightedRankNetLoss``; Reddy et al. 2024, section 3.3);
* full ranking's top-weighted ListMLE (``TopWeightedListMLELoss``; Liu et al., ACL 2025, section 4.2).

Each training view is either a FIRST-style window (``window`` consecutive candidates of the pointwise order)
or the whole list, in a random order (the head has no positions, so order must not matter; shuffling checks
nothing at training time but keeps the views honest). Validation reranks DL21's candidate lists (a training
split held out for validation) in the ``"listwise"`` (sliding windows) and ``"full"`` modes of
``ragprune.pipeline.list_stage``, next to the pointwise order.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from ragprune.models.heads.listwise import ListwiseHead
from ragprune.pipeline.list_stage import sliding_window_scores
from ragprune.pipeline.modes import STRIDE, WINDOW
from ragprune.training.losses import (
    ListwiseDistillationLoss,
    RankWeightedRankNetLoss,
    TopWeightedListMLELoss,
)
from ragprune.training.validation import RankingValidator
from ragprune.types import Document, Query

if TYPE_CHECKING:
    from ragprune.pipeline import RerankPruner

log = logging.getLogger("list_head")

NOT_ENCODED = -1e9
"""Validation score of a candidate the encoder saw no token of (ranked last)."""


@dataclass(frozen=True)
class CandidateList:
    """One query's candidates as a list head reads them: ``vectors`` ``[N, H]`` and pointwise ``logits``
    ``[N]`` (float32), ``teacher`` ``[N]`` (as stored; zeros where the data has none; each training
    view z-scores its own), ``gold``
    ``[N]`` bool; ``positions`` ``[N]``: each candidate's index in the record (candidates the encoder saw
    no token of are left out), ``size`` the record's number of candidates."""

    qid: str
    vectors: torch.Tensor
    logits: torch.Tensor
    teacher: torch.Tensor
    gold: torch.Tensor
    positions: np.ndarray
    size: int

    def to(self, device: torch.device | str) -> CandidateList:
        """The same list with its tensors on ``device``."""
        return replace(
            self,
            vectors=self.vectors.to(device),
            logits=self.logits.to(device),
            teacher=self.teacher.to(device),
            gold=self.gold.to(device),
        )


def candidate_lists(
    pruner: RerankPruner,
    records: Sequence[dict],
    texts: Mapping[str, str],
    *,
    queries_per_call: int = 512,
) -> list[CandidateList]:
    """Encode every record's candidates once with ``pruner`` (the frozen model) and keep what a list head
    reads. ``records``: ``groups.jsonl.gz`` / ``valid_dl21.jsonl.gz`` lines (``qid``, ``query``,
    ``candidates`` with ``pid`` and optional ``teacher``, ``gold``); ``texts``: pool pid -> text. Queries
    longer than the model's window are cut (``truncate=True``). Records with fewer than two encoded
    candidates are skipped."""
    lists: list[CandidateList] = []
    for first in range(0, len(records), queries_per_call):
        chunk = records[first : first + queries_per_call]
        queries = [Query(r["qid"], r["query"]) for r in chunk]
        documents = [
            [Document(c.get("docno", c["pid"]), texts[c["pid"]]) for c in r["candidates"]] for r in chunk
        ]
        for record, (vectors, logits) in zip(
            chunk, pruner.candidate_vectors(queries, documents, truncate=True)
        ):
            positions = np.flatnonzero(np.isfinite(logits))
            if len(positions) < 2:
                continue
            candidates = [record["candidates"][i] for i in positions]
            teacher = torch.tensor([float(c.get("teacher") or 0.0) for c in candidates])
            gold = torch.tensor([c["pid"] in (record.get("gold") or {}) for c in candidates])
            lists.append(
                CandidateList(
                    record["qid"],
                    vectors[torch.as_tensor(positions)],
                    torch.as_tensor(logits[positions], dtype=torch.float32),
                    teacher,
                    gold,
                    positions,
                    len(record["candidates"]),
                )
            )
        log.info("encoded %d/%d candidate lists", min(first + queries_per_call, len(records)), len(records))
    return lists


@dataclass(frozen=True)
class ListHeadConfig:
    """Settings of a list-head run (``training/train_list_head.py``'s options).

    Head: ``width``, ``layers``, ``attention_heads``, ``dropout`` (``ListwiseHead``'s options). Steps:
    ``epochs`` over the training lists, ``queries_per_step`` lists per AdamW step at ``lr`` /
    ``weight_decay``. Views: ``window_share`` of the views are FIRST windows of ``window`` candidates, the
    rest whole lists. Loss: ``kl_weight`` x KL (``tau``, ``gold_mix``) + ``ranknet_weight`` x rank-weighted
    RankNet + ``listmle_weight`` x top-weighted ListMLE. Target: z(teacher) + ``student_weight`` x
    z(pointwise logits) per view — with a weight > 0 the head learns the teacher's correction on top of the
    model's own order instead of replacing it (on DL21 the mix with weight 2 ranks above both, .7363
    against the student's .6930 and the teacher's .6399; ``mix_teacher.py``, session 6).
    """

    width: int = 64
    layers: int = 1
    attention_heads: int = 4
    dropout: float = 0.1
    epochs: int = 4
    queries_per_step: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    window: int = WINDOW
    window_share: float = 0.5
    tau: float = 1.0
    gold_mix: float = 0.3
    kl_weight: float = 1.0
    ranknet_weight: float = 1.0
    listmle_weight: float = 0.0
    student_weight: float = 0.0
    seed: int = 13

    def head_options(self) -> dict[str, float | int]:
        """``HeadSpec`` options of the head this run trains."""
        return {
            "width": self.width,
            "layers": self.layers,
            "attention_heads": self.attention_heads,
            "dropout": self.dropout,
        }

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def list_head_loss(
    head: ListwiseHead, view: CandidateList, config: ListHeadConfig, criteria: dict[str, torch.nn.Module]
) -> torch.Tensor:
    """The weighted loss of one view (a whole list or a window of it, see :class:`ListHeadConfig`)."""
    logits = head(view.vectors, view.logits).unsqueeze(0)
    teacher = _zscore(view.teacher.unsqueeze(0))
    if config.student_weight:
        teacher = teacher + config.student_weight * _zscore(view.logits.unsqueeze(0).float())
    loss = logits.new_zeros(())
    if config.kl_weight:
        loss = loss + config.kl_weight * criteria["kl"](logits, teacher, view.gold.unsqueeze(0))
    if config.ranknet_weight:
        loss = loss + config.ranknet_weight * criteria["ranknet"](logits, teacher)
    if config.listmle_weight:
        loss = loss + config.listmle_weight * criteria["listmle"](logits, teacher)
    return loss


def joint_list_loss(
    head: ListwiseHead,
    vectors: torch.Tensor,
    logits: torch.Tensor,
    teacher: torch.Tensor,
    gold: torch.Tensor,
    criterion: torch.nn.Module,
) -> torch.Tensor:
    """The list loss of a head trained with the encoder (``train.py --list-weight``): for each of ``Q``
    groups, the head's logits from its ``G`` candidates' ``[CLS]`` ``vectors`` ``[Q, G, H]`` and rank
    ``logits`` ``[Q, G]`` (detached: the rank head keeps its own loss), then ``criterion`` (the rank head's
    listwise distillation) against ``teacher`` and ``gold`` ``[Q, G]``. The head has no positions, so the
    groups' order does not matter."""
    list_logits = torch.stack([head(v, row.detach()) for v, row in zip(vectors, logits)])
    return criterion(list_logits, teacher, gold)


def validate_list_modes(
    head: ListwiseHead,
    pruner: RerankPruner,
    records: Sequence[dict],
    texts: Mapping[str, str],
    validator: RankingValidator,
) -> dict[str, float]:
    """nDCG@10 of ``validator``'s queries in the ``full`` and ``listwise`` modes with ``head`` over
    ``pruner``'s pointwise pass of ``records`` (``valid_dl21.jsonl.gz`` lines); keys
    ``dl21_ndcg@10_<mode>``."""
    device = next(head.parameters()).device  # the lists come back on the CPU
    ndcg = mode_ndcg(head, [c.to(device) for c in candidate_lists(pruner, records, texts)], validator)
    return {key: value for key, value in ndcg.items() if not key.endswith("_pointwise")}


def mode_ndcg(
    head: ListwiseHead, lists: Sequence[CandidateList], validator: RankingValidator
) -> dict[str, float]:
    """``dl21_ndcg@10_<mode>`` of ``validator``'s queries for every mode of :func:`mode_scores`, with
    ``head`` in eval mode (its train / eval state is restored)."""
    was_training = head.training
    head.eval()
    try:
        scores = mode_scores(head, lists)
    finally:
        head.train(was_training)
    return {f"dl21_ndcg@10_{mode}": validator.evaluate(values).ndcg10 for mode, values in scores.items()}


def _zscore(scores: torch.Tensor) -> torch.Tensor:
    """``scores`` ``[1, N]`` shifted to mean 0, scaled to standard deviation 1 (all zeros when constant)."""
    return (scores - scores.mean()) / scores.std(unbiased=False).clamp(min=1e-6)


def training_view(candidates: CandidateList, config: ListHeadConfig, rng: random.Random) -> CandidateList:
    """A random view of one list: with probability ``window_share`` a window of ``window`` consecutive
    candidates of the pointwise order, else the whole list; in a random order either way."""
    count = len(candidates.positions)
    members = list(range(count))
    if count > config.window and rng.random() < config.window_share:
        order = candidates.logits.argsort(descending=True).tolist()
        start = rng.randrange(count - config.window + 1)
        members = order[start : start + config.window]
    rng.shuffle(members)
    index = torch.as_tensor(members, device=candidates.vectors.device)
    return replace(
        candidates,
        vectors=candidates.vectors[index],
        logits=candidates.logits[index],
        teacher=candidates.teacher[index],
        gold=candidates.gold[index],
        positions=candidates.positions[members],
    )


def mode_scores(
    head: ListwiseHead | None, lists: Sequence[CandidateList]
) -> dict[str, dict[str, np.ndarray]]:
    """Per mode (``pointwise``; with a head also ``full`` and ``listwise``) the score of every candidate of
    every list, qid -> ``[size]`` in record order (``NOT_ENCODED`` for candidates left out)."""
    modes = ["pointwise"] + (["full", "listwise"] if head is not None else [])
    scores: dict[str, dict[str, np.ndarray]] = {mode: {} for mode in modes}
    with torch.no_grad():
        for candidates in lists:
            values = {"pointwise": candidates.logits.float().cpu().numpy()}
            if head is not None:
                values["full"] = head(candidates.vectors, candidates.logits).float().cpu().numpy()
                values["listwise"] = sliding_window_scores(
                    head, candidates.vectors, candidates.logits, WINDOW, STRIDE
                )
            for mode in modes:
                row = np.full(candidates.size, NOT_ENCODED)
                row[candidates.positions] = values[mode]
                scores[mode][candidates.qid] = row
    return scores


def train_list_head(
    train: Sequence[CandidateList],
    valid: Sequence[CandidateList],
    validator: RankingValidator,
    hidden_size: int,
    config: ListHeadConfig,
    device: torch.device,
) -> tuple[ListwiseHead, list[dict]]:
    """Train a :class:`ListwiseHead` on ``train`` lists; after each epoch measure nDCG@10 of the
    ``validator``'s queries in every mode on ``valid`` lists. Returns the head of the epoch with the best
    mean of the ``full`` and ``listwise`` scores (on the CPU, eval mode) and the per-epoch history (epoch
    0 = before training: the pointwise order in every mode)."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    head = ListwiseHead(hidden_size, **config.head_options()).to(device)  # type: ignore[arg-type]
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    criteria: dict[str, torch.nn.Module] = {
        "kl": ListwiseDistillationLoss(config.tau, config.gold_mix),
        "ranknet": RankWeightedRankNetLoss(),
        "listmle": TopWeightedListMLELoss(),
    }
    train = [c.to(device) for c in train]
    valid = [c.to(device) for c in valid]

    def measure(epoch: int, loss: float | None) -> dict:
        record: dict = {"epoch": epoch, "loss": loss, **mode_ndcg(head, valid, validator)}
        log.info("list head %s", record)
        return record

    history = [measure(0, None)]
    best = (-1.0, copy.deepcopy(head.state_dict()))
    for epoch in range(1, config.epochs + 1):
        order = list(range(len(train)))
        rng.shuffle(order)
        losses = []
        for first in range(0, len(order), config.queries_per_step):
            views = [
                training_view(train[i], config, rng) for i in order[first : first + config.queries_per_step]
            ]
            loss = torch.stack([list_head_loss(head, v, config, criteria) for v in views]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        record = measure(epoch, float(np.mean(losses)))
        history.append(record)
        mean = (record["dl21_ndcg@10_full"] + record["dl21_ndcg@10_listwise"]) / 2
        if mean > best[0]:
            best = (mean, copy.deepcopy(head.state_dict()))
    head.load_state_dict(best[1])
    return head.cpu().eval(), history
