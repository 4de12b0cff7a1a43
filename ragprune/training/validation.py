"""The one ranking validator of training: nDCG@10 of reranking the DL21 validation slice.

DL21 is a training split held out for validation (tuning is allowed there, never on DL19/DL20/BEIR).
``build_data.py`` writes its judged queries with their BM25 top-100 to ``valid_dl21.jsonl.gz``. Every
training-side measurement reranks those candidates and scores them here:

* ``train.py`` (each epoch's model, and the pairs its Platt calibration fits on) and ``soup.py``
  (ingredients and soups), through :meth:`RankingValidator.validate_model`;
* ``build_data.py``, ``splade_teacher.py`` (teacher ensembles) and ``mix_teacher.py`` (teacher + student
  mixes), through :meth:`RankingValidator.evaluate` on their own scores.

Two judgement sets, say which one a number uses:

* ``judged candidates`` (:meth:`RankingValidator.from_records` without ``qrels``): the graded ``label`` of
  the run's own candidates. Relevant passages outside the top-100 are not in the ideal ranking, so the
  score reads higher than the official measure: compare models with it, not against other tables.
* every qrel (``qrels=`` the DL21 qrels): the official measure of reranking the top-100.

Documents are keyed by their collection id (``docno``) where the data has it: DL21's top-100 holds
exact-duplicate texts (one ``pid``) that are judged differently. Measures: ``ragprune.evaluation``
(ir-measures; nDCG with graded gains, Järvelin and Kekäläinen, TOIS 2002).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ragprune.evaluation import evaluate_run

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from ragprune.models import RerankPruneModel
    from ragprune.pipeline import RerankPruner

MEASURE = "nDCG@10"


@dataclass(frozen=True)
class ValidationQuery:
    """One validation query: its candidates' pool ``pids`` (texts) and ``doc_ids`` (docno, else pid), and
    graded judgements ``qrels`` keyed by doc id."""

    qid: str
    query: str
    pids: tuple[str, ...]
    doc_ids: tuple[str, ...]
    qrels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidationResult:
    """``ndcg10``: the mean over judged queries; ``per_query``: qid -> nDCG@10; ``pairs``: ``(score,
    grade)`` of every judged candidate (what Platt scaling fits on), query by query in ranked order."""

    ndcg10: float
    per_query: dict[str, float]
    pairs: list[tuple[float, int]]


class RankingValidator:
    """nDCG@10 of reranking fixed candidate lists by given scores (see the module docstring).

    ``queries``: the validation queries; queries without judgements do not count.
    """

    def __init__(self, queries: Sequence[ValidationQuery]) -> None:
        self.queries = list(queries)

    @classmethod
    def from_records(
        cls, records: Sequence[dict], qrels: Mapping[str, Mapping[str, int]] | None = None
    ) -> RankingValidator:
        """From ``valid_dl21.jsonl.gz`` records (``qid``, ``query``, ``candidates`` with ``pid``, optional
        ``docno`` and graded ``label``). Without ``qrels`` the judgements are the candidates' labels
        (judged candidates only); with it, ``qrels[record qid]`` (every qrel; ``KeyError`` naming the query
        when one is missing). Records without candidates are skipped."""
        queries = []
        for record in records:
            candidates = record["candidates"]
            if not candidates:
                continue
            doc_ids = tuple(c.get("docno", c["pid"]) for c in candidates)
            if qrels is None:
                judged = {d: c["label"] for d, c in zip(doc_ids, candidates) if c.get("label") is not None}
            elif record["qid"] in qrels:
                judged = dict(qrels[record["qid"]])
            else:
                raise KeyError(f"validation query {record['qid']} has no qrels")
            pids = tuple(c["pid"] for c in candidates)
            queries.append(ValidationQuery(record["qid"], record["query"], pids, doc_ids, judged))
        return cls(queries)

    def evaluate(self, scores: Mapping[str, Sequence[float] | np.ndarray]) -> ValidationResult:
        """Rerank every query's candidates by ``scores[qid]`` (one score per candidate, in order).

        ``KeyError`` for a query without scores, ``ValueError`` for a score list of the wrong length or
        when no query is judged.
        """
        qrels, run, pairs = {}, {}, []
        for query in self.queries:
            values = [float(v) for v in scores[query.qid]]
            if len(values) != len(query.doc_ids):
                raise ValueError(
                    f"{query.qid}: {len(values)} scores for {len(query.doc_ids)} candidates; "
                    "give one score per candidate"
                )
            run[query.qid] = dict(zip(query.doc_ids, values))
            ranked = sorted(zip(query.doc_ids, values), key=lambda item: -item[1])  # stable: ties in order
            pairs += [(v, query.qrels[d]) for d, v in ranked if d in query.qrels]
            if query.qrels:
                qrels[query.qid] = query.qrels
        if not qrels:
            raise ValueError("no validation query has judgements: nothing to measure")
        result = evaluate_run(qrels, run, [MEASURE])
        return ValidationResult(result.aggregate[MEASURE], result.per_query[MEASURE], pairs)

    def model_scores(self, pruner: RerankPruner, texts: Mapping[str, str]) -> dict[str, np.ndarray]:
        """The rank logit of every candidate (qid -> ``[n]`` float64, candidate order) from one
        ``pruner.process`` call; ``texts`` maps pool pid -> passage text."""
        results = pruner.process(
            [q.query for q in self.queries],
            [[{"id": d, "text": texts[p]} for d, p in zip(q.doc_ids, q.pids)] for q in self.queries],
            reorder=False,
        )
        scores = {}
        for query, result in zip(self.queries, results):
            logits = np.empty(len(query.doc_ids))
            for passage in result:
                logits[passage.index] = passage.logit
            scores[query.qid] = logits
        return scores

    def validate_model(self, pruner: RerankPruner, texts: Mapping[str, str]) -> ValidationResult:
        """:meth:`evaluate` of the pruner's rank logits (:meth:`model_scores`)."""
        return self.evaluate(self.model_scores(pruner, texts))


def inference_pruner(
    model: RerankPruneModel,
    tokenizer: PreTrainedTokenizerBase,
    device: torch.device,
    batch_size: int = 256,
) -> RerankPruner:
    """A pipeline over a copy of ``model`` in eval mode, so inference (bf16 on CUDA) never touches the
    fp32 training weights. Use it as a context manager to release it."""
    from ragprune.pipeline import RerankPruner

    return RerankPruner(
        copy.deepcopy(model).eval(), tokenizer, device=device, batch_size=batch_size, progress=False
    )
