"""HTTP server: rerank and prune over the JSON shapes rerank clients already speak.

- ``POST /v1/rerank``: ``{"query", "documents", "top_n", "return_documents"}`` ->
  ``{"model", "results": [{"index", "relevance_score", "document"?}]}``, best first (Cohere/Jina shape).
- ``POST /rerank``: text-embeddings-inference's shape, ``{"query", "texts", "return_text", "raw_scores"}``
  -> ``[{"index", "score", "text"?}]``, best first.
- ``POST /v1/prune``: the /v1/rerank request plus ``threshold`` -> per document the score, the kept
  character spans (Unicode code point offsets into the document text), the pruned text and the
  per-sentence scores.
- ``GET /health``: model, device, limits and batching counters.

Concurrent requests are gathered by a ``MicroBatcher`` into one ``RerankPruner.process`` call that
runs in a worker thread, so the event loop keeps accepting requests while the model works. Request
size, document count and length, and the batch size are bounded; bad input gets a 4xx whose
``detail`` names the problem and the fix. Needs the ``serve`` extra (FastAPI + uvicorn).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragprune.pipeline.inputs import as_document
from ragprune.pipeline.process import RerankPruner
from ragprune.pipeline.results import QueryResult
from ragprune.types import Document, Query, json_float

EXAMPLE_REQUEST = (
    '{"query": "how long do fleas live?", "documents": ["Fleas live up to a year.", "Paris is big."]}'
)


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on one request (413 when exceeded) and on the work the server holds at once."""

    max_documents: int = 1000
    max_document_chars: int = 100_000
    max_query_chars: int = 4_000
    max_request_chars: int = 2_000_000  # query + all documents
    max_request_bytes: int = 16 * 1024 * 1024  # the raw JSON body
    max_batch_size: int = 256  # (query, document) pairs per model call; a larger request runs alone
    max_pending: int = 512  # requests waiting for the model; more get 503


class RerankRequest(BaseModel):
    """A Cohere/Jina-style rerank request. Unknown fields (e.g. ``model``) are accepted and ignored."""

    query: str = Field(description="the question")
    documents: list[Any] = Field(
        description='strings, or objects {"text": str, "id"?: str, "title"?: str, "metadata"?: object}'
    )
    top_n: int | None = Field(default=None, ge=1, description="return only the best n (default: all)")
    return_documents: bool = Field(default=False, description="echo each document in its result")


class TeiRerankRequest(BaseModel):
    """A text-embeddings-inference ``/rerank`` request. ``truncate`` is accepted and ignored: ragprune
    never truncates, it scores long texts in chunks."""

    query: str
    texts: list[Any] = Field(description="strings, or objects as in /v1/rerank's documents")
    return_text: bool = False
    raw_scores: bool = Field(default=False, description="the relevance logit instead of the probability")


class PruneRequest(RerankRequest):
    threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="sentence keep threshold (default: the model's)"
    )


@dataclass
class _Job:
    query: Query
    documents: list[Document]
    threshold: float | None
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
    waiting at low load. Requests in one batch that ask for different thresholds share the batch but
    get one model call per threshold. A failing call is retried request by request, so one bad
    request cannot fail the others it was batched with.
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

    async def submit(self, query: Query, documents: list[Document], threshold: float | None) -> QueryResult:
        if len(self._pending) >= self.max_pending:
            raise ServerBusy
        job = _Job(query, documents, threshold, asyncio.get_running_loop().create_future())
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
        by_threshold: dict[float | None, list[_Job]] = {}
        for job in live:
            by_threshold.setdefault(job.threshold, []).append(job)
        for threshold, jobs in by_threshold.items():
            try:
                results = await self._process(jobs, threshold)
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
            (result,) = await self._process([job], job.threshold)
        except Exception as error:
            _settle(job.future, error=error)
        else:
            _settle(job.future, result=result)

    async def _process(self, jobs: Sequence[_Job], threshold: float | None) -> list[QueryResult]:
        self.stats.model_calls += 1
        return await asyncio.to_thread(
            self.pruner.process,
            [job.query for job in jobs],
            [job.documents for job in jobs],
            threshold=threshold,
            reorder=True,
        )


def _settle(future: asyncio.Future, *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class BodySizeLimit:
    """ASGI middleware: 413 with a JSON ``detail`` for a body over ``max_bytes``, declared or streamed.

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
            await JSONResponse({"detail": self.detail}, status_code=413)(scope, receive, send)
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
    )
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_request_bytes)
    app.state.batcher = batcher

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return _validation_error_response(error)

    async def scored(query_text: str, values: list[Any], threshold: float | None, field: str) -> QueryResult:
        query, documents = _checked(query_text, values, limits, field)
        try:
            return await batcher.submit(query, documents, threshold)
        except ServerBusy:
            raise HTTPException(
                503,
                f"server busy: {limits.max_pending} requests are already waiting; retry shortly",
                headers={"Retry-After": "1"},
            ) from None
        except ValueError as error:  # input the model cannot take, e.g. a query longer than its window
            raise HTTPException(422, str(error)) from error

    @app.post("/v1/rerank")
    async def rerank(request: RerankRequest) -> JSONResponse:
        """Rerank ``documents`` for ``query`` (Cohere/Jina rerank shape)."""
        result = await scored(request.query, request.documents, None, "documents")
        results = []
        for passage in result.passages[: request.top_n]:
            item: dict[str, Any] = {"index": passage.index, "relevance_score": passage.probability}
            if request.return_documents:
                item["document"] = passage.document.to_dict()
            results.append(item)
        return JSONResponse({"model": model_name, "results": results})

    @app.post("/v1/prune")
    async def prune(request: PruneRequest) -> JSONResponse:
        """Rerank and prune: scores, kept spans (code point offsets), pruned text, sentence scores."""
        result = await scored(request.query, request.documents, request.threshold, "documents")
        results = []
        for passage in result.passages[: request.top_n]:
            item = {"relevance_score": passage.probability, **passage.to_dict()}
            if not request.return_documents:
                for key in ("text", "title", "metadata"):
                    item.pop(key, None)
            results.append(item)
        return JSONResponse({"model": model_name, "query": result.query.text, "results": results})

    @app.post("/rerank")
    async def rerank_tei(request: TeiRerankRequest) -> JSONResponse:
        """Rerank ``texts`` for ``query`` (text-embeddings-inference's rerank shape)."""
        result = await scored(request.query, request.texts, None, "texts")
        results = []
        for passage in result.passages:
            score = json_float(passage.logit) if request.raw_scores else passage.probability
            item: dict[str, Any] = {"index": passage.index, "score": score}
            if request.return_text:
                item["text"] = passage.document.text
            results.append(item)
        return JSONResponse(results)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness, the model served, limits and batching counters."""
        return {
            "status": "ok",
            "model": model_name,
            "device": str(pruner.device),
            "pending": batcher.pending,
            "batching": asdict(batcher.stats),
            "limits": asdict(limits),
        }

    return app


def _checked(query: str, values: list[Any], limits: ServerLimits, field: str) -> tuple[Query, list[Document]]:
    """The request's query and documents (the list under ``field``), or the 4xx that says what is wrong
    and how to fix it."""
    if not query.strip():
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
        if not isinstance(value, str | dict):
            raise HTTPException(
                422,
                f"{field}[{i}] is {type(value).__name__}; send a string or an object with a 'text' field",
            )
        if isinstance(value, dict) and not isinstance(value.get("metadata") or {}, dict):
            raise HTTPException(422, f"{field}[{i}].metadata must be a JSON object")
        try:
            document = as_document(value, i)
        except (TypeError, ValueError) as error:
            raise HTTPException(422, f"{field}[{i}]: {error}") from error
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


def _validation_error_response(error: RequestValidationError) -> JSONResponse:
    problems = error.errors()
    bad_json = next((p for p in problems if p.get("type") == "json_invalid"), None)
    if bad_json is not None:
        reason = bad_json.get("ctx", {}).get("error", "JSON decode error")
        position = bad_json["loc"][-1]
        message = (
            f"request body is not valid JSON ({reason} at character {position}); send e.g. {EXAMPLE_REQUEST}"
        )
        return JSONResponse({"detail": message}, status_code=400)
    if any(tuple(problem["loc"]) == ("body",) for problem in problems):
        message = (
            "the request body must be a JSON object sent with Content-Type: application/json, "
            f"e.g. {EXAMPLE_REQUEST}"
        )
        return JSONResponse({"detail": message}, status_code=422)
    described = [
        f"{'.'.join(str(part) for part in problem['loc'] if part != 'body')}: {problem['msg']}"
        for problem in problems
    ]
    message = "; ".join(described) + f" (send e.g. {EXAMPLE_REQUEST})"
    return JSONResponse({"detail": message}, status_code=422)
