"""``RerankPruner``: rerank and prune passages for one or many queries in one encoder pass per pair."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ragprune.devices import default_device
from ragprune.kernels import SentenceScores, score_sentences
from ragprune.models.encoder import RerankPruneModel
from ragprune.normalize import INVALID_TEXT_POLICIES, is_blank, repair_text
from ragprune.pipeline.collate import pad_rows
from ragprune.pipeline.encoding import PairTemplate, PreparedPair, Row, padded_width
from ragprune.pipeline.inputs import PassageLike, QueryLike, as_documents, as_query
from ragprune.pipeline.multihop import evidence_of, expand_query, merge_hop
from ragprune.pipeline.parallel import RowPreparer, default_workers
from ragprune.pipeline.results import PassageResult, QueryResult, SentenceScore
from ragprune.types import Document, InputLimits, Query

if TYPE_CHECKING:
    from ragprune.ranking import RankedResults

PROGRESS_MIN_BATCHES = 20
ENCODE_WINDOW_BATCHES = 8
"""As preparation streams in, pairs are length-sorted and encoded in windows of this many times
``batch_size`` pairs (as many batches when each pair is one row)."""


@dataclass(frozen=True)
class _PairOutput:
    logit: float
    sentence_scores: np.ndarray
    sentence_kept: np.ndarray
    chunks: int


class RerankPruner:
    """Scores (query, passage) pairs for reranking and keeps the sentences that answer the query.

    One forward pass per pair (per chunk for passages longer than the window) gives both the
    relevance logit and the per-sentence keep decisions. Pairs are grouped by padded length and batched
    across queries; on CUDA the model runs in bf16 and sentence scoring uses the Triton kernel.

    Inputs: every text passes ``ragprune.normalize`` (lone surrogates repaired or refused per
    ``invalid_text``; text without a visible character is empty). Lengths follow ``input_limits``.
    Identical pairs in one call are scored once, and a pair's scores do not depend on the other pairs of
    the call (bit-identical on CPU): rows are padded to a width set by their own length and batched only
    with rows of the same width, and both heads reduce each row on its own.
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
    ) -> None:
        if invalid_text not in INVALID_TEXT_POLICIES:
            raise ValueError(f"invalid_text={invalid_text!r}; use one of {INVALID_TEXT_POLICIES}")
        self.device = torch.device(device or default_device())
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.model = model.to(self.device, dtype).eval()
        self.tokenizer = tokenizer
        self.template = PairTemplate.from_tokenizer(tokenizer)
        self.batch_size = batch_size
        self.threshold = model.config.threshold if threshold is None else threshold
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

    def close(self) -> None:
        """Stop the row-preparation worker processes, if any were started."""
        self.preparer.close()

    def __enter__(self) -> RerankPruner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @classmethod
    def load(cls, model: str | Path | None = None, **kwargs) -> RerankPruner:
        """Load a model folder (``None`` = the shipped default, or a Provence checkpoint folder)."""
        from ragprune.models.registry import load_model

        loaded, tokenizer = load_model(model)
        return cls(loaded, tokenizer, **kwargs)

    # ---- public API ---------------------------------------------------------------------------

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
        ``hop_passages`` best passages appended to the query (``ragprune.pipeline.multihop``); a sentence
        keeps the higher of its two scores. Scores, probabilities and the ranking stay those of the first
        pass. An expanded query longer than ``max_query_tokens`` is cut to it (its last evidence first).
        """
        if hops not in (1, 2):
            raise ValueError(f"hops={hops}; use 1 (one pass) or 2 (multi-hop pruning)")
        if hop_passages < 1:
            raise ValueError(f"hop_passages={hop_passages}; use a positive number of evidence passages")
        single = isinstance(queries, str | Query)
        query_list = [queries] if single else list(queries)
        passage_lists = [passages] if single else list(passages)
        if len(query_list) != len(passage_lists):
            raise ValueError(
                f"got {len(query_list)} queries but {len(passage_lists)} passage lists; "
                "pass one list per query"
            )
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k={top_k}; use a positive number or None for all passages")
        invalid_text = invalid_text or self.invalid_text
        parsed_queries = [as_query(query, i, invalid_text) for i, query in enumerate(query_list)]
        documents = [
            as_documents(plist, invalid_text, "passages" if single else f"passages[{i}]")
            for i, plist in enumerate(passage_lists)
        ]
        threshold = self.threshold if threshold is None else threshold
        results = self._score(parsed_queries, documents, threshold, truncate)
        if hops == 2:
            results = self._second_hop(results, threshold, hop_passages)
        ordered = [_order(result, reorder, top_k) for result in results]
        return ordered[0] if single else ordered

    def rank(self, query: QueryLike, docs: Sequence[PassageLike], **options: Any) -> RankedResults:
        """Rerank ``docs`` for one query, best first (``CrossEncoder.rank`` / ``rerankers`` shape).

        ``options`` are those of :func:`ragprune.ranking.rank`: ``top_k``, ``doc_ids``, ``metadata``,
        ``truncate``, ``first_stage_scores``, ``fusion``.
        """
        from ragprune.ranking import rank

        return rank(self, query, docs, **options)

    async def rank_async(
        self, query: QueryLike, docs: Sequence[PassageLike], **options: Any
    ) -> RankedResults:
        """:meth:`rank` in a worker thread, so an event loop keeps serving (``rerankers``' ``rank_async``)."""
        from ragprune.ranking import rank_async

        return await rank_async(self, query, docs, **options)

    def prune(self, query: QueryLike, docs: Sequence[PassageLike], **options: Any) -> RankedResults:
        """Rerank and prune ``docs`` for one query; each result carries its kept spans and pruned text.

        ``options`` are those of :func:`ragprune.ranking.prune` (:meth:`rank`'s and ``threshold``).
        """
        from ragprune.ranking import prune

        return prune(self, query, docs, **options)

    def predict(self, pairs: Sequence[tuple[str, str]], **options: Any) -> Any:
        """One relevance score per (query, passage) pair (sentence-transformers ``CrossEncoder.predict``);
        see :func:`ragprune.ranking.predict`."""
        from ragprune.ranking import predict

        return predict(self, pairs, **options)

    def as_langchain_compressor(self, k: int | None = None, **options: Any) -> Any:
        """A LangChain ``RagpruneCompressor`` on this model keeping the ``k`` best (``rerankers``' name)."""
        from ragprune.ranking import as_langchain_compressor

        return as_langchain_compressor(self, k=k, **options)

    # ---- scoring ------------------------------------------------------------------------------

    def _second_hop(
        self, results: list[QueryResult], threshold: float, top_passages: int
    ) -> list[QueryResult]:
        """Re-score, in one batched pass, every query's passages outside its evidence sources with the
        evidence-expanded query, and merge the sentence scores (see ``process``'s ``hops``)."""
        hop_queries: list[Query] = []
        hop_documents: list[list[Document]] = []
        targets: list[tuple[int, list[PassageResult]]] = []
        for qi, result in enumerate(results):
            evidence, sources = evidence_of(result, top_passages)
            others = [p for p in result.passages if p.index not in sources and p.sentences]
            if evidence and others:
                hop_queries.append(Query(result.query.id, expand_query(result.query.text, evidence)))
                hop_documents.append([p.document for p in others])
                targets.append((qi, others))
        if not hop_queries:
            return results
        second = self._score(hop_queries, hop_documents, threshold, truncate=True)
        for (qi, others), hop in zip(targets, second):
            merged = {p.index: merge_hop(p, again) for p, again in zip(others, hop.passages)}
            results[qi].passages = [merged.get(p.index, p) for p in results[qi].passages]
        return results

    def _score(
        self, queries: list[Query], documents: list[list[Document]], threshold: float, truncate: bool
    ) -> list[QueryResult]:
        if not queries:
            return []
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
        prepared, outputs = self._run(query_ids, pairs, threshold)

        results = []
        for qi, (query, docs) in enumerate(zip(queries, documents)):
            passage_results = []
            for di, doc in enumerate(docs):
                p = pair_of.get((qi, di))
                truncated = ("query",) if query_truncated[qi] else ()
                if p is not None and prepared[p].title_truncated:
                    truncated += ("title",)
                out = None if p is None else outputs[p]
                if out is None:  # blank text, or no token the model reads
                    passage_results.append(PassageResult(doc, di, -math.inf, 0.0, truncated=truncated))
                    continue
                sentences = [  # .tolist(): plain floats and bools, far cheaper than numpy scalars
                    SentenceScore(span, score, kept)
                    for span, score, kept in zip(
                        prepared[p].sentences, out.sentence_scores.tolist(), out.sentence_kept.tolist()
                    )
                ]
                probability = self.model.config.calibration.probability(out.logit)
                passage_results.append(
                    PassageResult(doc, di, out.logit, probability, sentences, out.chunks, truncated=truncated)
                )
            results.append(QueryResult(query, passage_results, query_truncated=query_truncated[qi]))
        return results

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

    def _run(
        self, query_ids: list[np.ndarray], pairs: list[tuple[int, str, str]], threshold: float
    ) -> tuple[list[PreparedPair], list[_PairOutput | None]]:
        """Prepare and encode ``(query index, text, title)`` pairs; a pair without rows gets no output."""
        # Encode windows of prepared pairs while the workers prepare the next shards.
        prepared: list[PreparedPair] = []
        outputs: list[_PairOutput | None] = [None] * len(pairs)
        window = ENCODE_WINDOW_BATCHES * self.batch_size
        shards = self.preparer.shards(
            [query_ids[qi] for qi, _, _ in pairs],
            [text for _, text, _ in pairs],
            [title for _, _, title in pairs],
        )
        # closing(): an error mid-stream cancels the shards still queued for the workers
        with closing(shards), self._progress_bar(len(pairs)) as progress, torch.inference_mode():
            encoded = 0
            for shard in shards:
                prepared.extend(shard)
                if len(prepared) - encoded >= window or len(prepared) == len(pairs):
                    self._run_pairs(range(encoded, len(prepared)), prepared, threshold, outputs, progress)
                    encoded = len(prepared)
        return prepared, outputs

    def _progress_bar(self, pairs: int) -> AbstractContextManager:
        show = self.progress if self.progress is not None else pairs >= PROGRESS_MIN_BATCHES * self.batch_size
        if not show:
            return nullcontext(_NoProgress())
        from tqdm.auto import tqdm

        return tqdm(total=pairs, desc="ragprune", unit="pair")

    def _run_pairs(
        self,
        pair_indices: range,
        prepared: list[PreparedPair],
        threshold: float,
        outputs: list[_PairOutput | None],
        progress: _NoProgress,
    ) -> None:
        """Encode the given prepared pairs in batches of one padded width; fills ``outputs``.

        A pair's rows are padded to the width its longest row sets (``padded_width``), so its scores do
        not depend on its neighbours. Pairs without rows (no passage token) are counted and left ``None``.
        """
        rows_per_pair = {p: prepared[p].rows for p in pair_indices if prepared[p].rows}
        widths = {
            p: padded_width(max(len(row.input_ids) for row in rows), self.max_length)
            for p, rows in rows_per_pair.items()
        }
        order = sorted(rows_per_pair, key=lambda p: (widths[p], len(rows_per_pair[p]), p))
        sentence_counts = {p: len(prepared[p].sentences) for p in rows_per_pair}
        if len(rows_per_pair) < len(pair_indices):
            progress.update(len(pair_indices) - len(rows_per_pair))
        for batch in _batches(order, rows_per_pair, widths, self.batch_size):
            self._run_batch(batch, rows_per_pair, sentence_counts, widths[batch[0]], threshold, outputs)
            progress.update(len(batch))

    def _run_batch(
        self,
        batch: list[int],
        rows_per_pair: dict[int, list[Row]],
        sentence_counts: dict[int, int],
        width: int,
        threshold: float,
        outputs: list[_PairOutput | None],
    ) -> None:
        rows = [row for p in batch for row in rows_per_pair[p]]
        row_pair = np.asarray([i for i, p in enumerate(batch) for _ in rows_per_pair[p]])
        sentence_offset = np.concatenate([[0], np.cumsum([sentence_counts[p] for p in batch])])
        padded = pad_rows(rows, self.tokenizer.pad_token_id or 0, width, sentence_offset[row_pair])

        timer = self.stage_timer or StageTimer.disabled
        with timer("encoder"):
            hidden = self.model.encode(
                self._to_device(padded.input_ids),
                self._to_device(padded.attention_mask),
                self._to_device(padded.token_type_ids),
            )
        with timer("scoring"):
            scored, rank_logits = self._score_hidden(
                hidden, padded.sentence_ids, batch, sentence_counts, threshold
            )
        scores = scored.scores.float().cpu().numpy()
        kept = scored.keep.cpu().numpy()
        pair_logits = np.full(len(batch), -np.inf)
        np.maximum.at(pair_logits, row_pair, rank_logits.cpu().numpy())
        for i, p in enumerate(batch):
            a, b = sentence_offset[i], sentence_offset[i + 1]
            outputs[p] = _PairOutput(float(pair_logits[i]), scores[a:b], kept[a:b], len(rows_per_pair[p]))

    def _score_hidden(
        self,
        hidden: torch.Tensor,
        sentence_ids: np.ndarray,
        batch: list[int],
        sentence_counts: dict[int, int],
        threshold: float,
    ) -> tuple[SentenceScores, torch.Tensor]:
        """Everything after the encoder: rank logits per row and sentence decisions per pair."""
        rank_logits = self.model.head("rank")(hidden[:, 0]).float()
        sentence_pair = np.repeat(np.arange(len(batch)), [sentence_counts[p] for p in batch])
        weight, bias = self.model.head("token").linear_map()
        scored = score_sentences(
            hidden,
            weight,
            bias,
            self._to_device(sentence_ids),
            self._to_device(sentence_pair),
            threshold,
            reduce=self.reduce,
            num_pairs=len(batch),
            backend=self.scoring_backend,
            validate=False,
        )
        return scored, rank_logits

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device, non_blocking=True)


class StageTimer:
    """Accumulates the device time of pipeline stages (CUDA events on GPU, wall clock on CPU).

    Used by the benchmarks to report the share of ``process`` time spent after the encoder.
    """

    disabled: StageTimer

    def __init__(self, device: torch.device | None) -> None:
        self.device = device
        self._events: dict[str, list] = {}

    @contextmanager
    def __call__(self, stage: str):
        if self.device is None:
            yield
            return
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._events.setdefault(stage, []).append((start, end))
        else:
            begin = time.perf_counter()
            yield
            self._events.setdefault(stage, []).append(time.perf_counter() - begin)

    def milliseconds(self) -> dict[str, float]:
        """Total time per stage so far, in milliseconds."""
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return {k: sum(a.elapsed_time(b) for a, b in v) for k, v in self._events.items()}
        return {k: 1000.0 * sum(v) for k, v in self._events.items()}

    def reset(self) -> None:
        self._events.clear()


StageTimer.disabled = StageTimer(None)


def _batches(
    order: list[int], rows_per_pair: dict[int, list[Row]], widths: dict[int, int], batch_size: int
) -> list[list[int]]:
    """Consecutive pairs of ``order`` grouped so a batch holds at most ``batch_size`` rows, all of one width.

    A pair's chunks always share a batch, so sentences cut across chunks are reduced in one launch.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    rows = 0
    for p in order:
        n = len(rows_per_pair[p])
        if current and (rows + n > batch_size or widths[p] != widths[current[0]]):
            batches.append(current)
            current, rows = [], 0
        current.append(p)
        rows += n
    if current:
        batches.append(current)
    return batches


class _NoProgress:
    """What ``process`` needs of a progress bar (``tqdm`` has it too): counting pairs done."""

    def update(self, n: int) -> None:
        """Progress is not shown."""


def _order(result: QueryResult, reorder: bool, top_k: int | None) -> QueryResult:
    by_score = sorted(result.passages, key=lambda r: (-r.logit, r.index))
    for rank, passage in enumerate(by_score, start=1):
        passage.rank = rank
    passages = by_score if reorder else result.passages
    if top_k is not None:
        passages = by_score[:top_k] if reorder else [p for p in passages if p.rank <= top_k]
    return replace(result, passages=passages)
