"""HTTP server: rerank and prune over the JSON shapes rerank clients already speak.

- ``POST /v1/rerank``: ``{"query", "documents", "top_n", "return_documents"}`` ->
  ``{"model", "results": [{"index", "relevance_score", "document"?}]}``, best first (Cohere/Jina shape).
- ``POST /v2/rerank``: Cohere's ``ClientV2.rerank``: ``{"model", "query", "documents", "top_n",
  "relevant_spans"?}`` -> ``{"id", "results": [{"index", "relevance_score", "relevant_spans"?}], "meta"}``;
  ``relevant_spans: {"mode": "enabled", "threshold"?, "max_spans"?}`` returns the kept sentences as
  ``{"start", "end", "score"}`` (code point offsets), most relevant first.
- ``POST /rerank``: text-embeddings-inference's shape, ``{"query", "texts", "return_text", "raw_scores"}``
  -> ``[{"index", "score", "text"?}]``, best first.
- ``POST /v1/prune``: the /v1/rerank request plus ``threshold`` and ``hops`` (2: multi-hop pruning,
  ``RerankPruner.process``'s ``hops``) -> per document the score, the kept
  character spans (Unicode code point offsets into the document text), the pruned text and the
  per-sentence scores.
- ``GET /health``: model, device, limits (characters and tokens) and batching counters.
- ``GET /info``: text-embeddings-inference's model info.

Concurrent requests are gathered by a ``MicroBatcher`` into one ``RerankPruner.process`` call that
runs in a worker thread, so the event loop keeps accepting requests while the model works. Request
size, document count and length, and the batch size are bounded; more waiting requests than
``max_pending`` get 429 (TEI's "overloaded"). Bad input gets a 4xx whose body names the field and the
fix (``ragprune.server_errors``); no input gives a 5xx. Texts go through the library's one
normalisation (``ragprune.normalize``): lone UTF-16 surrogates (valid JSON escapes such as ``"\\ud800"``)
are read as U+FFFD, one code point for one, so offsets still point into the text the client sent (which
is echoed back unchanged, as ``\\u`` escapes); text without a visible character is empty. Limits in
tokens (``RerankPruner.input_limits``) are in ``/health`` and ``/info``. Needs the ``serve`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragprune import __version__
from ragprune.normalize import is_blank
from ragprune.pipeline.inputs import as_document
from ragprune.pipeline.process import RerankPruner
from ragprune.pipeline.results import PassageResult, QueryResult
from ragprune.server_errors import EXAMPLE_REQUEST, SafeJSONResponse, error_response, install_error_handlers
from ragprune.types import Document, Query, json_float


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on one request (413 when exceeded) and on the work the server holds at once."""

    max_documents: int = 1000
    max_document_chars: int = 100_000
    max_query_chars: int = 4_000
    max_request_chars: int = 2_000_000  # query + all documents
    max_request_bytes: int = 16 * 1024 * 1024  # the raw JSON body
    max_batch_size: int = 256  # (query, document) pairs per model call; a larger request runs alone
    max_pending: int = 512  # requests waiting for the model; more get 429


class RerankRequest(BaseModel):
    """A Cohere/Jina-style rerank request. Unknown fields (e.g. ``model``) are accepted and ignored."""

    query: str = Field(description="the question")
    documents: list[Any] = Field(
        description='strings, or objects {"text": str, "id"?: str, "title"?: str, "metadata"?: object}'
    )
    top_n: int | None = Field(default=None, ge=1, description="return only the best n (default: all)")
    return_documents: bool = Field(default=False, description="echo each document in its result")
    mode: Literal["pointwise", "listwise", "full"] | None = Field(
        default=None,
        description="ranking: the rank head, the list-level head over windows of 20 (stride 10), or over the "
        "whole list (default: the server's; the list modes need a model with a list-level head)",
    )


class RelevantSpans(BaseModel):
    """Cohere's ``relevant_spans`` option: return the sentences pruning keeps, with their scores."""

    mode: Literal["enabled", "disabled"]
    threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="sentence keep threshold (default: the model's)"
    )
    max_spans: int | None = Field(default=None, ge=1, description="at most this many spans per document")


class RerankV2Request(BaseModel):
    """Cohere ``ClientV2.rerank``'s request. ``max_tokens_per_doc`` and ``priority`` are accepted and
    ignored: ragprune never truncates a document (long ones are scored in chunks)."""

    model: str | None = None
    query: str
    documents: list[Any] = Field(description="strings (or objects as in /v1/rerank)")
    top_n: int | None = Field(default=None, ge=1)
    max_tokens_per_doc: int | None = Field(default=None, ge=1)
    relevant_spans: RelevantSpans | None = None
    priority: int | None = None


class TeiRerankRequest(BaseModel):
    """A text-embeddings-inference ``/rerank`` request. ``truncate: true`` cuts a query longer than the
    model's ``max_query_tokens`` to its first tokens (``truncation_direction`` must then be ``right``), and
    each result says ``"truncated": true``; texts are never truncated (long ones are scored in chunks)."""

    query: str
    texts: list[Any] = Field(description="strings, or objects as in /v1/rerank's documents")
    return_text: bool = False
    raw_scores: bool = Field(default=False, description="the relevance logit instead of the probability")
    truncate: bool = False
    truncation_direction: Literal["right", "left", "Right", "Left"] = "right"


class PruneRequest(RerankRequest):
    threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="sentence keep threshold (default: the model's)"
    )
    hops: Literal[1, 2] = Field(
        default=1,
        description="2: multi-hop pruning, only the evidence chain keeps sentences (titles link it)",
    )


@dataclass
class _Job:
    query: Query
    documents: list[Document]
    threshold: float | None
    truncate: bool
    mode: str | None
    hops: int
    future: asyncio.Future[QueryResult]


@dataclass
class BatchStats:
    requests: int = 0
    batches: int = 0
    model_calls: int = 0
    largest_batch: int = 0


class ServerBusy(Exception):
    """More requests are waiting than the server accepts."""


@dataclass
class MicroBatcher:
    """Gathers concurrent requests into one ``process`` call, run in a worker thread.

    While the model works on one batch, new requests queue up; the next batch takes queued requests in
    arrival order while they fit in ``max_batch_size`` (query, document) pairs, so batching costs no
    waiting at low load. Requests in one batch that ask for different thresholds (or truncation, or ranking
    modes) share the batch but get one model call per setting. A failing call is retried request by
    request, so one bad request cannot fail the others it was batched with.
    """

    pruner: RerankPruner
    max_batch_size: int
    max_pending: int
    stats: BatchStats = field(default_factory=BatchStats, init=False)
    _pending: deque[_Job] = field(default_factory=deque, init=False, repr=False)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def submit(
        self,
        query: Query,
        documents: list[Document],
        threshold: float | None,
        truncate: bool = False,
        mode: str | None = None,
        hops: int = 1,
    ) -> QueryResult:
        if len(self._pending) >= self.max_pending:
            raise ServerBusy
        future = asyncio.get_running_loop().create_future()
        job = _Job(query, documents, threshold, truncate, mode, hops, future)
        self._pending.append(job)
        self._wakeup.set()
        return await job.future

    async def run(self) -> None:
        """Serve queued requests until cancelled."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._pending:
                    await self._run_batch(self._take_batch())
        finally:
            while self._pending:
                self._pending.popleft().future.cancel()

    def _take_batch(self) -> list[_Job]:
        batch = [self._pending.popleft()]
        pairs = len(batch[0].documents)
        while self._pending and pairs + len(self._pending[0].documents) <= self.max_batch_size:
            job = self._pending.popleft()
            batch.append(job)
            pairs += len(job.documents)
        return batch

    async def _run_batch(self, batch: list[_Job]) -> None:
        live = [job for job in batch if not job.future.done()]  # a client that gave up is skipped
        self.stats.batches += 1
        self.stats.requests += len(live)
        self.stats.largest_batch = max(self.stats.largest_batch, len(live))
        by_setting: dict[tuple[float | None, bool, str | None, int], list[_Job]] = {}
        for job in live:
            by_setting.setdefault((job.threshold, job.truncate, job.mode, job.hops), []).append(job)
        for jobs in by_setting.values():
            try:
                results = await self._process(jobs)
            except Exception as error:
                if len(jobs) == 1:
                    _settle(jobs[0].future, error=error)
                    continue
                for job in jobs:
                    await self._run_alone(job)
                continue
            for job, result in zip(jobs, results, strict=True):
                _settle(job.future, result=result)

    async def _run_alone(self, job: _Job) -> None:
        try:
            (result,) = await self._process([job])
        except Exception as error:
            _settle(job.future, error=error)
        else:
            _settle(job.future, result=result)

    async def _process(self, jobs: Sequence[_Job]) -> list[QueryResult]:
        """One model call for jobs that share their threshold, truncation, ranking mode and hops."""
        self.stats.model_calls += 1
        return await asyncio.to_thread(
            self.pruner.process,
            [job.query for job in jobs],
            [job.documents for job in jobs],
            threshold=jobs[0].threshold,
            truncate=jobs[0].truncate,
            reorder=True,
            mode=jobs[0].mode,
            hops=jobs[0].hops,
        )


def _settle(future: asyncio.Future, *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class BodySizeLimit:
    """ASGI middleware: 413 with a JSON error body for a body over ``max_bytes``, declared or streamed.

    (Starlette's own limit answers in plain text, without saying what the limit is.)
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.detail = (
            f"request body is larger than this server's limit of {max_bytes} bytes; send fewer or shorter "
            "documents per request (or start the server with a larger --max-request-bytes)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(scope["path"], 413, self.detail)(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.detail)
            return message

        await self.app(scope, receive_within_limit, send)


def create_app(
    pruner: RerankPruner, *, limits: ServerLimits | None = None, model_name: str = "ragprune"
) -> FastAPI:
    """The ASGI app serving ``pruner``; run it with uvicorn (``ragprune serve`` does)."""
    limits = limits or ServerLimits()
    batcher = MicroBatcher(pruner, limits.max_batch_size, limits.max_pending)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(batcher.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="ragprune",
        summary="Rerank retrieved passages and prune them to the sentences that answer the query.",
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
    )
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_request_bytes)
    app.state.batcher = batcher
    install_error_handlers(app)

    async def scored(
        query_text: str,
        values: list[Any],
        threshold: float | None,
        field: str,
        truncate: bool = False,
        mode: str | None = None,
        hops: int = 1,
    ) -> QueryResult:
        query, documents = _checked(query_text, values, limits, field)
        try:
            return await batcher.submit(query, documents, threshold, truncate, mode, hops)
        except ServerBusy:
            raise HTTPException(
                429,
                f"server overloaded: {limits.max_pending} requests are already waiting; retry shortly",
                headers={"Retry-After": "1"},
            ) from None
        except (ValueError, TypeError) as error:  # input the model cannot take, e.g. a too long query
            raise HTTPException(422, str(error)) from error

    @app.post("/v1/rerank")
    async def rerank(request: RerankRequest) -> JSONResponse:
        """Rerank ``documents`` for ``query`` (Cohere/Jina rerank shape)."""
        result = await scored(request.query, request.documents, None, "documents", mode=request.mode)
        results = []
        for passage in result.passages[: request.top_n]:
            item: dict[str, Any] = {"index": passage.index, "relevance_score": passage.probability}
            if request.return_documents:
                item["document"] = passage.document.to_dict()
            results.append(item)
        return SafeJSONResponse({"model": model_name, "results": results})

    @app.post("/v2/rerank")
    async def rerank_v2(request: RerankV2Request) -> JSONResponse:
        """Rerank ``documents`` for ``query`` (Cohere ``ClientV2.rerank``), optionally with relevant spans."""
        spans = (
            request.relevant_spans
            if request.relevant_spans and request.relevant_spans.mode == "enabled"
            else None
        )
        threshold = spans.threshold if spans is not None else None
        result = await scored(request.query, request.documents, threshold, "documents")
        results = []
        for passage in result.passages[: request.top_n]:
            item: dict[str, Any] = {"index": passage.index, "relevance_score": passage.probability}
            if spans is not None and (found := _relevant_spans(passage, spans.max_spans)):
                item["relevant_spans"] = found
            results.append(item)
        meta = {"api_version": {"version": "2"}, "billed_units": {"search_units": 0}}
        return SafeJSONResponse({"id": str(uuid.uuid4()), "results": results, "meta": meta})

    @app.post("/v1/prune")
    async def prune(request: PruneRequest) -> JSONResponse:
        """Rerank and prune: scores, kept spans (code point offsets), pruned text, sentence scores."""
        threshold, mode = request.threshold, request.mode
        result = await scored(
            request.query, request.documents, threshold, "documents", mode=mode, hops=request.hops
        )
        results = []
        for passage in result.passages[: request.top_n]:
            item = {"relevance_score": passage.probability, **passage.to_dict()}
            if not request.return_documents:
                for key in ("text", "title", "metadata"):
                    item.pop(key, None)
            results.append(item)
        return SafeJSONResponse({"model": model_name, "query": result.query.text, "results": results})

    @app.post("/rerank")
    async def rerank_tei(request: TeiRerankRequest) -> JSONResponse:
        """Rerank ``texts`` for ``query`` (text-embeddings-inference's rerank shape)."""
        if request.truncate and request.truncation_direction.lower() != "right":
            raise HTTPException(
                422,
                "truncation_direction: ragprune keeps a long query's first tokens; send 'right' (default)",
            )
        result = await scored(request.query, request.texts, None, "texts", request.truncate)
        truncated = any("query" in passage.truncated for passage in result.passages)
        results = []
        for passage in result.passages:
            score = json_float(passage.logit) if request.raw_scores else passage.probability
            item: dict[str, Any] = {"index": passage.index, "score": score}
            if request.return_text:
                item["text"] = passage.document.text
            if truncated:
                item["truncated"] = True
            results.append(item)
        return SafeJSONResponse(results)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness, the model served, limits and batching counters."""
        return {
            "status": "ok",
            "model": model_name,
            "device": str(pruner.device),
            "pending": batcher.pending,
            "batching": asdict(batcher.stats),
            "limits": {**asdict(limits), "tokens": pruner.input_limits.to_dict()},
        }

    @app.get("/info")
    async def info() -> dict[str, Any]:
        """The model and its limits in text-embeddings-inference's ``/info`` shape."""
        window = pruner.input_limits.window
        return {
            "model_id": model_name,
            "model_sha": None,
            "model_dtype": str(getattr(pruner.model, "dtype", "float32")).removeprefix("torch."),
            "model_type": {"reranker": {"id2label": {"0": "relevance"}, "label2id": {"relevance": 0}}},
            "max_concurrent_requests": limits.max_pending,
            "max_input_length": window,
            "max_batch_tokens": limits.max_batch_size * window,
            "max_batch_requests": None,
            "max_client_batch_size": limits.max_documents,
            "tokenization_workers": max(1, getattr(getattr(pruner, "preparer", None), "workers", 1)),
            "version": __version__,
        }

    return app


def _relevant_spans(passage: PassageResult, max_spans: int | None) -> list[dict[str, Any]]:
    """Cohere's ``relevant_spans``: the kept sentences, most relevant first (ties in text order)."""
    kept = [s for s in passage.sentences if s.kept]
    kept.sort(key=lambda s: (-s.score, s.span.start))
    return [{"start": s.span.start, "end": s.span.end, "score": s.score} for s in kept[:max_spans]]


def _checked(query: str, values: list[Any], limits: ServerLimits, field: str) -> tuple[Query, list[Document]]:
    """The request's query and documents (the list under ``field``), or the 4xx that says what is wrong
    and how to fix it."""
    if is_blank(query):
        raise HTTPException(422, f"query is empty; send the question text, e.g. {EXAMPLE_REQUEST}")
    if len(query) > limits.max_query_chars:
        raise HTTPException(
            413,
            f"query is {len(query)} characters; this server takes at most {limits.max_query_chars}",
        )
    if not values:
        raise HTTPException(422, f"{field} is empty; send at least one document, e.g. {EXAMPLE_REQUEST}")
    if len(values) > limits.max_documents:
        raise HTTPException(
            413,
            f"{len(values)} {field} in one request; this server takes at most "
            f"{limits.max_documents}: split the request (or start the server with a larger --max-documents)",
        )
    documents = []
    for i, value in enumerate(values):
        document = _document(value, i, field)
        if len(document.text) > limits.max_document_chars:
            raise HTTPException(
                413,
                f"{field}[{i}] is {len(document.text)} characters; this server takes at most "
                f"{limits.max_document_chars} per document: split it into passages before sending",
            )
        documents.append(document)
    total = len(query) + sum(len(doc.text) + len(doc.title) for doc in documents)
    if total > limits.max_request_chars:
        raise HTTPException(
            413,
            f"the request holds {total} characters of query and documents; this server takes at most "
            f"{limits.max_request_chars}: split it into several requests",
        )
    return Query("0", query), documents


def _document(value: Any, i: int, field: str) -> Document:
    """One request document as a ``Document``, or the 422 naming the field."""
    if isinstance(value, str):
        return as_document(value, i, label=field)
    if not isinstance(value, dict):
        raise HTTPException(
            422, f"{field}[{i}] is {type(value).__name__}; send a string or an object with a 'text' field"
        )
    if not isinstance(value.get("metadata") or {}, dict):
        raise HTTPException(422, f"{field}[{i}].metadata must be a JSON object")
    for key in ("text", "title"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise HTTPException(422, f"{field}[{i}].{key} must be a string, got {type(value[key]).__name__}")
    doc_id = value.get("id")
    if doc_id is not None and (isinstance(doc_id, bool) or not isinstance(doc_id, str | int)):
        raise HTTPException(
            422, f"{field}[{i}].id must be a string or an integer (or absent), got {type(doc_id).__name__}"
        )
    cleaned = {k: v for k, v in value.items() if not (k == "id" and v is None)}  # null id: no id
    try:
        return as_document(cleaned, i, label=field)
    except (TypeError, ValueError) as error:
        raise HTTPException(422, f"{field}[{i}]: {error}") from error
