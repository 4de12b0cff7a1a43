"""``RerankPruner``: rerank and prune passages for one or many queries in one encoder pass per pair.

A thin facade over the stage runner (``ragprune.pipeline.runner``): it parses and checks the caller's
input, deduplicates pairs, runs the pointwise pass and the list stage, and assembles the results.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import overload

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ragprune.devices import default_device
from ragprune.models.encoder import RerankPruneModel
from ragprune.normalize import INVALID_TEXT_POLICIES, is_blank, repair_text
from ragprune.pipeline.encoding import PairTemplate
from ragprune.pipeline.graphs import EncoderGraphs
from ragprune.pipeline.inputs import PassageLike, QueryLike, checked_threshold, parse_call
from ragprune.pipeline.list_stage import list_scores
from ragprune.pipeline.modes import MODES
from ragprune.pipeline.multihop import (
    chain_of,
    evidence_of,
    expand_query,
    keep_chain,
    linked_passages,
    second_hop_passages,
)
from ragprune.pipeline.order import order_passages
from ragprune.pipeline.parallel import RowPreparer, default_workers
from ragprune.pipeline.precision import checked_precision, cpu_model
from ragprune.pipeline.prepared import PreparedShard
from ragprune.pipeline.results import PassageResult, QueryResult, SentenceView
from ragprune.pipeline.runner import PairColumns, Runner, StageTimer
from ragprune.rerankers.base import Reranker
from ragprune.types import Document, InputLimits, Query


class RerankPruner(Reranker):
    """The shared-encoder backend: scores (query, passage) pairs for reranking and keeps the sentences that
    answer the query. ``rank``, ``prune``, ``predict`` and ``rank_async`` come from
    :class:`~ragprune.rerankers.Reranker`.

    One forward pass per pair (per chunk for passages longer than the window) gives both the
    relevance logit and the per-sentence keep decisions. Pairs are grouped by padded length and batched
    across queries; on CUDA the model runs in bf16 and sentence scoring uses the Triton kernel.

    Inputs: every text passes ``ragprune.normalize`` (lone surrogates repaired or refused per
    ``invalid_text``; text without a visible character is empty). Lengths follow ``input_limits``.
    Identical pairs in one call are scored once, and a pair's scores do not depend on the other pairs of
    the call (bit-identical on CPU): rows are padded to a width set by their own length and batched only
    with rows of the same width, and both heads reduce each row on its own.

    The caller's ``model`` is never changed: when it must move to ``device``, change dtype (bf16 on CUDA)
    or leave training mode, or be quantized, the pruner works on a copy.

    ``precision``: ``None`` or ``"fp32"`` (the default: fp32 on the CPU, bf16 on CUDA), or on the CPU only
    (a ``ValueError`` on CUDA) ``"int8"`` (the encoder's linear layers as PyTorch dynamic int8),
    ``"onnx-fp32"`` or ``"onnx-int8"`` (the encoder in ONNX Runtime, needs the ``onnx`` extra;
    ``ragprune.pipeline.precision``, ``ragprune.pipeline.onnx_backend``; speed and quality loss in
    ``eval/results/bench_cpu.md``).

    ``cuda_graphs`` (default ``True``; CUDA only): the encoder's forward is recorded once per batch shape
    and replayed (``ragprune.pipeline.graphs``): the same scores up to bf16 rounding (a batch's rows are
    padded to a row bucket, ``graphs.row_bucket``, which can change the kernels chosen) at about 1.6-1.8x
    the encoder's eager pairs/s on an H200, where the host cannot launch kernels as fast as the GPU runs
    them. A graph reads the parameters where they were at capture: when a model shared with the caller
    (already on the device, bf16, in eval mode) moves or changes dtype, the graphs are captured again.
    ``False`` runs eagerly.
    """

    def __init__(
        self,
        model: RerankPruneModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        threshold: float | None = None,
        reduce: str | None = None,
        max_length: int | None = None,
        progress: bool | None = None,
        scoring_backend: str = "auto",
        time_stages: bool = False,
        prepare_workers: int | None = None,
        invalid_text: str = "replace",
        mode: str = "pointwise",
        precision: str | None = None,
        cuda_graphs: bool = True,
    ) -> None:
        if invalid_text not in INVALID_TEXT_POLICIES:
            raise ValueError(f"invalid_text={invalid_text!r}; use one of {INVALID_TEXT_POLICIES}")
        self.device = torch.device(device or default_device())
        self.precision = checked_precision(precision, self.device)
        """``"fp32"`` (bf16 on CUDA), ``"int8"``, ``"onnx-fp32"`` or ``"onnx-int8"`` (CPU backends)."""
        self.model = _inference_model(model, self.device, self.precision)
        self.mode = _checked_mode(mode, self.model)
        """The default ranking of ``process``: ``"pointwise"``, ``"listwise"`` or ``"full"``."""
        self.tokenizer = tokenizer
        self.template = PairTemplate.from_tokenizer(tokenizer)
        self.batch_size = batch_size
        self.threshold = model.config.threshold if threshold is None else checked_threshold(threshold)
        self.reduce = reduce or model.config.sentence_reduce
        self.max_length = max_length or model.config.max_length
        self.input_limits = InputLimits.for_window(self.max_length, self.template.overhead)
        """Tokens the query, a title and the passage text get per encoder row (see ``InputLimits``)."""
        self.invalid_text = invalid_text
        self.progress = progress
        self.scoring_backend = scoring_backend
        self.stage_timer = StageTimer(self.device) if time_stages else None
        workers = default_workers(self.device.type) if prepare_workers is None else prepare_workers
        self.preparer = RowPreparer(tokenizer, self.template, self.max_length, workers)
        self.runner = Runner(
            self.model,
            self.preparer,
            device=self.device,
            pad_id=tokenizer.pad_token_id or 0,
            batch_size=batch_size,
            max_length=self.max_length,
            reduce=self.reduce,
            scoring_backend=scoring_backend,
            stage_timer=self.stage_timer,
            graphs=EncoderGraphs(self.model) if cuda_graphs and self.device.type == "cuda" else None,
        )

    def close(self) -> None:
        """Stop the row-preparation worker processes, if any were started."""
        self.preparer.close()

    def __enter__(self) -> RerankPruner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @classmethod
    def load(cls, model: str | Path | None = None, **kwargs) -> RerankPruner:
        """Load a model folder (``None`` = the shipped default, or a Provence checkpoint folder); ``kwargs``
        go to the constructor (``device``, ``precision``, ...)."""
        from ragprune.models.registry import load_model

        # options checked before the weights load, so a typo fails at once
        device = torch.device(kwargs.get("device") or default_device())
        checked_precision(kwargs.get("precision"), device)
        if kwargs.get("threshold") is not None:
            checked_threshold(kwargs["threshold"])
        loaded, tokenizer = load_model(model)
        return cls(loaded, tokenizer, **kwargs)

    # ---- public API ---------------------------------------------------------------------------

    @overload
    def process(  # type: ignore[overload-overlap]  # a str is also a Sequence[str]; one query wins
        self,
        queries: QueryLike,
        passages: Sequence[PassageLike],
        *,
        threshold: float | None = None,
        top_k: int | None = None,
        reorder: bool = True,
        truncate: bool = False,
        invalid_text: str | None = None,
        hops: int = 1,
        hop_passages: int = 2,
        mode: str | None = None,
    ) -> QueryResult: ...
    @overload
    def process(
        self,
        queries: Sequence[QueryLike],
        passages: Sequence[Sequence[PassageLike]],
        *,
        threshold: float | None = None,
        top_k: int | None = None,
        reorder: bool = True,
        truncate: bool = False,
        invalid_text: str | None = None,
        hops: int = 1,
        hop_passages: int = 2,
        mode: str | None = None,
    ) -> list[QueryResult]: ...
    def process(
        self,
        queries: QueryLike | Sequence[QueryLike],
        passages: Sequence[PassageLike] | Sequence[Sequence[PassageLike]],
        *,
        threshold: float | None = None,
        top_k: int | None = None,
        reorder: bool = True,
        truncate: bool = False,
        invalid_text: str | None = None,
        hops: int = 1,
        hop_passages: int = 2,
        mode: str | None = None,
    ) -> QueryResult | list[QueryResult]:
        """Rerank and prune.

        ``queries`` is one query (str or ``Query``) with a list of passages, or a list of queries with
        one list of passages each. Passages are strings (id = position), dicts with ``text`` (and
        ``id``, ``title``, ``metadata``) or ``Document``s. ``reorder`` sorts passages by score
        (stable: ties keep input order); ``top_k`` keeps the best k.

        Input policy (``input_limits`` gives the numbers, in tokens): a query longer than
        ``max_query_tokens`` raises ``ValueError``, or with ``truncate=True`` is cut to its first
        ``max_query_tokens`` tokens (``QueryResult.query_truncated``, and ``"query"`` in each passage's
        ``truncated``); a title is cut to ``max_title_tokens`` (``"title"`` in ``truncated``); a passage is
        never cut but scored in chunks of whole sentences. Lone surrogates are replaced by U+FFFD
        (``invalid_text="replace"``, the default set on the pruner) or raise ``ValueError`` naming the field
        (``"error"``). A query without a visible character (or without a token the model reads) raises
        ``ValueError``; such a passage is empty: logit ``-inf``, probability 0, nothing kept, ranked last.

        Multi-hop pruning (``hops=2``, for questions whose answer spans passages, e.g. HotpotQA): one
        more batched pass scores each query's other passages with the sentences kept from its
        ``hop_passages`` best passages appended to the query; those best passages and
        ``multihop.BRIDGE_PASSAGES`` others (first those whose ``Document.title`` the question or that
        evidence names, then the highest sum of both passes' logits) form the evidence chain, and a
        passage outside it keeps no sentence (``ragprune.pipeline.multihop``). Sentence scores, logits,
        probabilities and the ranking stay those of the first pass, so the kept text is a subset of
        ``hops=1``'s: more removed at a lower recall (HotpotQA dev at the default threshold, passages with
        their titles: 65% of tokens removed at gold recall 0.915, against 47% at 0.948 with ``hops=1``;
        without titles 64% at 0.869; ``eval/results/multihop_dev_cpu.md``, with its caveats). Links need
        titles that name distinct entities (Wikipedia-style). The chain is chosen by
        the pointwise logits whatever ``mode`` ranks the result. An expanded query longer than
        ``max_query_tokens`` is cut to it (its last evidence first).

        ``mode`` chooses the ranking (``ragprune.pipeline.list_stage``): ``"pointwise"`` orders by the rank
        head's logit; ``"listwise"`` (FIRST-style windows of 20, stride 10) and ``"full"`` (all candidates in
        one pass) run the model's list-level head on the candidates' vectors from the same pass and order by
        its score (``scores["listwise"]``; ``scores["rank"]`` and ``logit`` stay the pointwise ones). Pruning
        is the same in every mode. ``None``: the pruner's ``mode``. A list mode on a model without a
        list-level head raises ``ValueError``.
        """
        mode = self.mode if mode is None else _checked_mode(mode, self.model)
        if hops not in (1, 2):
            raise ValueError(f"hops={hops}; use 1 (one pass) or 2 (multi-hop pruning)")
        if hop_passages < 1:
            raise ValueError(f"hop_passages={hop_passages}; use a positive number of evidence passages")
        invalid_text = invalid_text or self.invalid_text
        single, parsed_queries, documents = parse_call(queries, passages, top_k, invalid_text)
        threshold = self.threshold if threshold is None else checked_threshold(threshold)
        results = self._score(parsed_queries, documents, threshold, truncate, mode)
        if hops == 2:
            results = self._second_hop(results, threshold, hop_passages)
        ordered = [order_passages(result, reorder, top_k) for result in results]
        return ordered[0] if single else ordered

    def score_lists(
        self,
        queries: list[Query],
        documents: list[list[Document]],
        *,
        threshold: float | None = None,
        truncate: bool = False,
    ) -> list[QueryResult]:
        """One pass, in input order, with the pruner's ``mode`` (see :meth:`process`, which takes more
        options; :meth:`Reranker.score_lists`)."""
        threshold = self.threshold if threshold is None else checked_threshold(threshold)
        return self._score(queries, documents, threshold, truncate, self.mode)

    # ---- scoring ------------------------------------------------------------------------------

    def _second_hop(
        self, results: list[QueryResult], threshold: float, top_passages: int
    ) -> list[QueryResult]:
        """Re-score, in one batched pass, every query's passages outside its evidence sources with the
        evidence-expanded query, and keep sentences only in each query's evidence chain (see ``process``'s
        ``hops``)."""
        hop_queries: list[Query] = []
        hop_documents: list[list[Document]] = []
        targets: list[tuple[int, list[PassageResult]]] = []
        sources_of: list[set[int]] = []
        links: list[set[int]] = []
        for qi, result in enumerate(results):
            evidence, sources = evidence_of(result, top_passages)
            sources_of.append(sources)
            links.append(linked_passages(result, sources, evidence))
            others = second_hop_passages(result, sources)
            if evidence and others:
                hop_queries.append(Query(result.query.id, expand_query(result.query.text, evidence)))
                hop_documents.append([p.document for p in others])
                targets.append((qi, others))
        second = self._score(hop_queries, hop_documents, threshold, truncate=True)
        second_logits: list[dict[int, float]] = [{} for _ in results]
        for (qi, others), hop in zip(targets, second):
            second_logits[qi] = {p.index: again.logit for p, again in zip(others, hop.passages)}
        return [
            keep_chain(result, chain_of(result, sources, logits, linked=linked))
            for result, sources, logits, linked in zip(results, sources_of, second_logits, links)
        ]

    def candidate_vectors(
        self, queries: list[Query], documents: list[list[Document]], *, truncate: bool = False
    ) -> list[tuple[torch.Tensor, np.ndarray]]:
        """What a list-level head reads, per query: the ``[CLS]`` vectors ``[N, H]`` (float32, on the CPU)
        and rank logits ``[N]`` (float64) of its ``N`` passages, from one pointwise pass (for training such
        a head, ``ragprune.training.list_head``). A passage that was not encoded has a zero vector and
        logit ``-inf``. Inputs as for :meth:`score_lists`."""
        keep = self.runner.keep_vectors
        self.runner.keep_vectors = True
        try:
            _, _, columns, pair_lists = self._encode(queries, documents, self.threshold, truncate)
        finally:
            self.runner.keep_vectors = keep
        assert columns.vectors is not None
        vectors, logits = columns.vectors.float().cpu(), columns.scores["rank"]
        found = []
        for pairs in pair_lists:
            rows = [-1 if p is None or columns.chunks[p] == 0 else p for p in pairs]
            index = torch.as_tensor(rows, dtype=torch.long)
            query_vectors = torch.where((index >= 0).unsqueeze(-1), vectors[index.clamp(min=0)], 0.0)
            query_logits = np.array([logits[r] if r >= 0 else -np.inf for r in rows], dtype=np.float64)
            found.append((query_vectors, query_logits))
        return found

    def _encode(
        self, queries: list[Query], documents: list[list[Document]], threshold: float, truncate: bool
    ) -> tuple[list[bool], PreparedShard, PairColumns, list[list[int | None]]]:
        """The pointwise pass over every distinct pair: each query's truncation flag, the prepared pairs,
        their columns, and per query the pair (or ``None``) of each passage."""
        query_ids, query_truncated = self._query_tokens(queries, truncate)
        # One entry per distinct (query, passage, title) that has visible text; identical pairs share it.
        pair_of: dict[tuple[int, int], int] = {}
        unique: dict[tuple[str, str, str], int] = {}
        pairs: list[tuple[int, str, str]] = []
        for qi, docs in enumerate(documents):
            for di, doc in enumerate(docs):
                if is_blank(doc.text):
                    continue
                key = (queries[qi].text, doc.text, doc.title)
                if key not in unique:
                    unique[key] = len(pairs)
                    pairs.append((qi, repair_text(doc.text), repair_text(doc.title)))
                pair_of[qi, di] = unique[key]
        prepared, columns = self.runner.run(
            [query_ids[qi] for qi, _, _ in pairs],
            [text for _, text, _ in pairs],
            [title for _, _, title in pairs],
            threshold,
            self.progress,
        )
        pair_lists = [[pair_of.get((qi, di)) for di in range(len(docs))] for qi, docs in enumerate(documents)]
        return query_truncated, prepared, columns, pair_lists

    def _score(
        self,
        queries: list[Query],
        documents: list[list[Document]],
        threshold: float,
        truncate: bool,
        mode: str = "pointwise",
    ) -> list[QueryResult]:
        if not queries:
            return []
        query_truncated, prepared, columns, pair_lists = self._encode(queries, documents, threshold, truncate)
        listwise = list_scores(self.model, columns, pair_lists, mode)
        ranked_by = "rank" if mode == "pointwise" else next(iter(self.model.heads_reading("candidates")))
        return [
            QueryResult(
                query,
                [
                    self._passage_result(
                        doc, di, pair_lists[qi][di], prepared, columns, listwise[qi], query_truncated[qi]
                    )
                    for di, doc in enumerate(docs)
                ],
                query_truncated=query_truncated[qi],
                ranked_by=ranked_by,
            )
            for qi, (query, docs) in enumerate(zip(queries, documents))
        ]

    def _passage_result(
        self,
        doc: Document,
        index: int,
        pair: int | None,
        prepared: PreparedShard,
        columns: PairColumns,
        listwise: dict[str, np.ndarray],
        query_truncated: bool,
    ) -> PassageResult:
        """One passage's result from the columns (its sentences a view of them, read on access); a passage
        not encoded (blank, or no token the model reads) scores ``-inf`` with probability 0 and no
        sentences."""
        truncated: tuple[str, ...] = ("query",) if query_truncated else ()
        if pair is not None and prepared.title_truncated[pair]:
            truncated += ("title",)
        if pair is None or columns.chunks[pair] == 0:
            scores = dict.fromkeys([*columns.scores, *listwise], -np.inf)
            return PassageResult(doc, index, -np.inf, 0.0, truncated=truncated, scores=scores)
        where = columns.sentences_of(pair)
        spans = prepared.sentences[prepared.sentence_offsets[pair] : prepared.sentence_offsets[pair + 1]]
        sentences = SentenceView(spans, columns.sentence_scores[where], columns.sentence_kept[where])
        scores = {name: float(values[pair]) for name, values in columns.scores.items()}
        scores |= {name: float(values[index]) for name, values in listwise.items()}
        logit = scores["rank"]
        probability = self.model.config.calibration.probability(logit)
        chunks = int(columns.chunks[pair])
        return PassageResult(
            doc, index, logit, probability, sentences, chunks, truncated=truncated, scores=scores
        )

    def _query_tokens(self, queries: list[Query], truncate: bool) -> tuple[list[np.ndarray], list[bool]]:
        """Each query's token ids, cut to ``max_query_tokens`` with ``truncate``, and whether it was cut."""
        limit = self.input_limits.max_query_tokens
        # verbose=False: a long query is refused or cut below, with the real limit
        texts = [repair_text(q.text) for q in queries]
        encoded = self.tokenizer(texts, add_special_tokens=False, verbose=False)
        query_ids, truncated = [], []
        for query, ids in zip(queries, encoded["input_ids"]):
            if not ids:
                raise ValueError(
                    f"query {query.id!r} has no token this model reads (only characters its tokenizer "
                    "drops); pass the question text"
                )
            if len(ids) > limit and not truncate:
                window = self.input_limits
                raise ValueError(
                    f"query {query.id!r} is {len(ids)} tokens long; this model reads at most {limit} query "
                    f"tokens (a {window.window}-token window: {window.special_tokens} special tokens, the "
                    f"query, up to {window.max_title_tokens} title tokens, then the passage text); shorten "
                    f"the query, or pass truncate=True to score with its first {limit} tokens"
                )
            query_ids.append(np.asarray(ids[:limit], dtype=np.int64))
            truncated.append(len(ids) > limit)
        return query_ids, truncated


def _inference_model(
    model: RerankPruneModel, device: torch.device, precision: str = "fp32"
) -> RerankPruneModel:
    """``model`` on ``device`` in eval mode and the device's dtype (bf16 on CUDA, fp32 elsewhere); a copy
    when any of that differs, so the caller's model is left as it was. Any other precision (CPU): always
    a copy whose encoder runs it (``ragprune.pipeline.precision.cpu_model``)."""
    if precision != "fp32":
        return cpu_model(model, precision)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    ready = not model.training and all(p.device == device and p.dtype == dtype for p in model.parameters())
    return model if ready else copy.deepcopy(model).to(device, dtype).eval()


def _checked_mode(mode: str, model: RerankPruneModel) -> str:
    """``mode`` if it is one of ``MODES`` that ``model`` can run, else ``ValueError`` naming the fix."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; use one of {MODES}")
    if mode != "pointwise" and not model.heads_reading("candidates"):
        raise ValueError(
            f"mode={mode!r} needs a model with a list-level head (a 'candidates' head in config.heads, "
            "e.g. 'listwise'); this model has only pointwise heads: use mode='pointwise'"
        )
    return mode
