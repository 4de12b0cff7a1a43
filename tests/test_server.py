"""The HTTP server over real HTTP on 127.0.0.1 (uvicorn in a thread, the tiny model)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="needs fastapi + uvicorn (serve extra)")
pytest.importorskip("httpx", reason="needs httpx (dev extra)")

import httpx
from sample_texts import QUERY
from sample_texts import TEXTS as ALL_TEXTS
from server_helpers import running_server

from ragprune.pipeline import RerankPruner
from ragprune.ranking import prune, rank
from ragprune.server import ServerLimits, create_app

TEXTS = ALL_TEXTS[:3]  # the limits and expected counts below are written for three documents
LIMITS = ServerLimits(
    max_documents=8,
    max_document_chars=2_000,
    max_query_chars=200,
    max_request_chars=6_000,
    max_request_bytes=20_000,
    max_batch_size=64,
    max_pending=64,
)


@pytest.fixture(scope="module")
def base_url(pruner):
    with running_server(create_app(pruner, limits=LIMITS, model_name="tiny")) as url:
        yield url


@pytest.fixture()
def client(base_url):
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def test_rerank_answers_in_the_cohere_jina_shape(client, pruner):
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": TEXTS, "model": "ignored"})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "tiny"
    assert all(set(item) == {"index", "relevance_score"} for item in body["results"])
    expected = rank(pruner, QUERY, TEXTS)
    assert [item["index"] for item in body["results"]] == [d.index for d in expected]
    assert [item["relevance_score"] for item in body["results"]] == pytest.approx([d.score for d in expected])


def test_rerank_top_n_and_return_documents_echo_ids_and_metadata(client):
    documents = [
        {"text": TEXTS[0], "id": "a", "metadata": {"url": "u"}},
        TEXTS[1],
        {"text": TEXTS[2], "lang": "en"},
    ]
    payload = {"query": QUERY, "documents": documents, "top_n": 2, "return_documents": True}
    body = client.post("/v1/rerank", json=payload).json()
    assert len(body["results"]) == 2
    for item in body["results"]:
        document = item["document"]
        assert document["text"] == TEXTS[item["index"]]
        expected = {
            0: {"id": "a", "metadata": {"url": "u"}},
            1: {"id": "1"},
            2: {"id": "2", "metadata": {"lang": "en"}},
        }
        assert {k: v for k, v in document.items() if k != "text"} == expected[item["index"]]


def test_tei_rerank_shape(client, pruner):
    response = client.post(
        "/rerank", json={"query": QUERY, "texts": TEXTS, "return_text": True, "truncate": True}
    )
    assert response.status_code == 200
    expected = rank(pruner, QUERY, TEXTS)
    assert [item["index"] for item in response.json()] == [d.index for d in expected]
    assert [item["score"] for item in response.json()] == pytest.approx([d.score for d in expected])
    assert [item["text"] for item in response.json()] == [d.text for d in expected]
    raw = client.post("/rerank", json={"query": QUERY, "texts": [*TEXTS, ""], "raw_scores": True}).json()
    assert [item["score"] for item in raw[:3]] == pytest.approx([d.logit for d in expected], abs=1e-5)
    assert raw[3] == {"index": 3, "score": None}  # an empty text: logit -inf
    missing = client.post("/rerank", json={"query": QUERY, "texts": []})
    assert missing.status_code == 422
    assert missing.json() == {"error": missing.json()["error"], "error_type": "validation"}  # TEI's shape
    assert "texts is empty" in missing.json()["error"]


def test_prune_returns_scores_spans_and_pruned_text(client, pruner):
    (doc,) = prune(pruner, QUERY, TEXTS[:1])
    low, high = sorted(s.score for s in doc.sentences)
    payload = {"query": QUERY, "documents": TEXTS, "threshold": (low + high) / 2}
    body = client.post("/v1/prune", json=payload).json()
    assert body["query"] == QUERY and len(body["results"]) == 3
    expected = prune(pruner, QUERY, TEXTS, threshold=(low + high) / 2)
    for item, ranked in zip(body["results"], expected):
        assert item["index"] == ranked.index and item["id"] == ranked.doc_id
        assert item["relevance_score"] == pytest.approx(ranked.score)
        assert item["kept_spans"] == [span.to_list() for span in ranked.kept_spans]
        original = TEXTS[item["index"]]
        assert item["pruned_text"] == " ".join(original[a:b] for a, b in item["kept_spans"])
        assert "text" not in item and len(item["sentences"]) == 2
    first = next(item for item in body["results"] if item["index"] == 0)
    assert first["pruned_text"] and first["pruned_text"] != TEXTS[0] and 0 < first["compression"] < 1


def test_prune_with_two_hops_keeps_only_the_evidence_chain(client, pruner):
    from sample_texts import MULTIHOP_PASSAGES, MULTIHOP_QUESTION, MULTIHOP_TITLES

    documents = [
        {"text": text, "title": title}
        for text, title in zip(MULTIHOP_PASSAGES, MULTIHOP_TITLES)
        if text.strip()
    ]
    payload = {"query": MULTIHOP_QUESTION, "documents": documents, "threshold": 0.0, "hops": 2}
    body = client.post("/v1/prune", json=payload).json()
    expected = prune(pruner, MULTIHOP_QUESTION, documents, threshold=0.0, hops=2)
    assert [item["kept_spans"] for item in body["results"]] == [
        [span.to_list() for span in ranked.kept_spans] for ranked in expected
    ]
    assert any(not item["kept_spans"] for item in body["results"])  # outside the chain: nothing kept
    assert client.post("/v1/prune", json={**payload, "hops": 3}).status_code == 422


def test_prune_threshold_bounds_and_return_documents(client):
    everything = client.post("/v1/prune", json={"query": QUERY, "documents": TEXTS, "threshold": 0.0}).json()
    assert all(item["pruned_text"] == TEXTS[item["index"]] for item in everything["results"])
    nothing = client.post(
        "/v1/prune", json={"query": QUERY, "documents": TEXTS, "threshold": 1.0, "return_documents": True}
    ).json()
    assert len(nothing["results"]) == 3
    assert all(
        item["pruned_text"] == "" and item["text"] == TEXTS[item["index"]] for item in nothing["results"]
    )


def test_unicode_spans_are_code_point_offsets(client):
    texts = [
        "Ünïcödé fleas 🐱 live long. 猫は寝る。 Zweiter Satz über Flöhe.",
        "naïve café ☕. e\u0301 accent.",
    ]
    body = client.post("/v1/prune", json={"query": "flöhe 🐱", "documents": texts, "threshold": 0.0}).json()
    assert len(body["results"]) == 2
    for item in body["results"]:
        original = texts[item["index"]]
        assert item["kept_spans"] and item["pruned_text"] == " ".join(
            original[a:b] for a, b in item["kept_spans"]
        )
    raw = client.post("/v1/rerank", json={"query": "🐱", "documents": texts, "return_documents": True})
    assert {item["document"]["text"] for item in raw.json()["results"]} == set(texts)


def test_empty_and_whitespace_documents_score_zero_and_sort_last(client):
    body = client.post("/v1/prune", json={"query": QUERY, "documents": ["", TEXTS[0], "  \n "]}).json()
    assert [item["index"] for item in body["results"]][0] == 1
    for item in body["results"][1:]:
        assert item["relevance_score"] == 0.0 and item["logit"] is None and item["kept_spans"] == []


@pytest.mark.parametrize(
    ("content", "headers", "status", "message"),
    [
        (b'{"query": "a", "documents": [', {"content-type": "application/json"}, 400, "not valid JSON"),
        (b"not json at all", {"content-type": "application/json"}, 400, "not valid JSON"),
        (
            b'{"query": "a", "documents": ["b"]}',
            {"content-type": "text/plain"},
            422,
            "Content-Type: application/json",
        ),
        (b"[1, 2]", {"content-type": "application/json"}, 422, "must be a JSON object"),
    ],
)
def test_malformed_bodies_get_a_clear_4xx(client, content, headers, status, message):
    response = client.post("/v1/rerank", content=content, headers=headers)
    assert response.status_code == status
    assert message in response.json()["message"]


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"documents": ["a"]}, 422, "query: Field required"),
        ({"query": QUERY}, 422, "documents: Field required"),
        ({"query": QUERY, "documents": []}, 422, "documents is empty"),
        ({"query": "   ", "documents": ["a"]}, 422, "query is empty"),
        ({"query": QUERY, "documents": "just one"}, 422, "documents: Input should be a valid list"),
        ({"query": QUERY, "documents": ["a", 3]}, 422, "documents[1] is int"),
        ({"query": QUERY, "documents": [{"txt": "a"}]}, 422, "documents[0]: passage 0 has no string 'text'"),
        ({"query": QUERY, "documents": [{"text": "a", "metadata": [1]}]}, 422, "documents[0].metadata"),
        ({"query": QUERY, "documents": ["a"], "top_n": 0}, 422, "top_n"),
        ({"query": QUERY, "documents": ["a"], "threshold": 2}, 422, "threshold"),
        ({"query": QUERY, "documents": ["a"] * 9}, 413, "at most 8"),
        ({"query": QUERY, "documents": ["a" * 2_001]}, 413, "documents[0] is 2001 characters"),
        ({"query": "q" * 201, "documents": ["a"]}, 413, "query is 201 characters"),
        ({"query": QUERY, "documents": ["a" * 1_900] * 4}, 413, "split it into several requests"),
        ({"query": "a " * 60, "documents": ["a"]}, 422, "shorten the query"),  # over the model's window
    ],
)
def test_invalid_requests_get_a_clear_4xx(client, payload, status, message):
    response = client.post("/v1/prune", json=payload)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]


def test_oversize_bodies_are_refused_with_413(client, base_url):
    big = json.dumps({"query": QUERY, "documents": ["x" * 1_000] * 21}).encode()
    assert len(big) > LIMITS.max_request_bytes
    response = client.post("/v1/rerank", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "limit of 20000 bytes" in response.json()["message"]

    def chunks():  # no Content-Length: the limit applies while the body streams in
        yield big[:10_000]
        yield big[10_000:]

    streamed = client.post("/v1/rerank", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "limit of 20000 bytes" in streamed.json()["message"]
    assert client.get("/health").status_code == 200  # still serving


def test_health_reports_model_limits_and_counters(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model"] == "tiny" and body["device"] == "cpu"
    assert body["limits"]["max_documents"] == 8 and body["limits"]["max_batch_size"] == 64
    assert set(body["batching"]) == {"requests", "batches", "model_calls", "largest_batch"}


def test_concurrent_requests_each_get_their_own_answer(base_url, pruner):
    requests = [
        {"query": f"{QUERY} {i}", "documents": TEXTS[i % 3 :] + TEXTS[: i % 3], "top_n": 1 + i % 3}
        for i in range(24)
    ]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            return await asyncio.gather(*(client.post("/v1/rerank", json=payload) for payload in requests))

    responses = asyncio.run(send_all())
    for payload, response in zip(requests, responses):
        assert response.status_code == 200
        expected = rank(pruner, payload["query"], payload["documents"], top_k=payload["top_n"])
        results = response.json()["results"]
        assert [item["index"] for item in results] == [d.index for d in expected]
        # issue 14, fault 2: a request's scores do not depend on what it was batched with
        assert [item["relevance_score"] for item in results] == [d.score for d in expected]


class GatedPruner:
    """A real pruner whose first model call waits for the test, so requests pile up deterministically."""

    def __init__(self, pruner: RerankPruner) -> None:
        self.pruner = pruner
        self.device = pruner.device
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[int] = []

    def __getattr__(self, name: str):  # everything but process: the real pruner's (limits, model, ...)
        return getattr(self.pruner, name)

    def process(self, queries, passages, **kwargs):
        self.calls.append(len(queries))
        self.entered.set()
        assert self.release.wait(timeout=30)
        return self.pruner.process(queries, passages, **kwargs)


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_queued_requests_are_batched_isolated_and_bounded(pruner):
    gated = GatedPruner(pruner)
    limits = ServerLimits(max_batch_size=12, max_pending=6, max_query_chars=1_000)
    app = create_app(gated, limits=limits)
    with running_server(app) as url:
        good = [{"query": f"{QUERY} {i}", "documents": TEXTS} for i in range(4)]
        bad = {"query": "fleas " * 40, "documents": TEXTS}  # longer than the tiny model's window
        thresholded = {"query": QUERY, "documents": TEXTS, "threshold": 0.0}

        async def scenario():
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                first = asyncio.create_task(client.post("/v1/prune", json=good[0]))
                await asyncio.to_thread(gated.entered.wait, 30)
                rest = []
                for queued_count, payload in enumerate([*good[1:], bad, thresholded], start=1):
                    # one at a time, so the queue order (and thus the batches) is deterministic
                    rest.append(asyncio.create_task(client.post("/v1/prune", json=payload)))
                    await asyncio.to_thread(wait_for, lambda n=queued_count: app.state.batcher.pending == n)
                queued = asyncio.create_task(client.post("/v1/prune", json=good[1]))
                await asyncio.to_thread(wait_for, lambda: app.state.batcher.pending == 6)
                refused = await client.post("/v1/prune", json=good[1])  # one over max_pending
                gated.release.set()
                return await first, await asyncio.gather(*rest), await queued, refused

        first, rest, queued_extra, refused = asyncio.run(scenario())
        assert first.status_code == 200
        assert [r.status_code for r in rest] == [200, 200, 200, 422, 200]
        assert "shorten the query" in rest[3].json()["message"]
        assert refused.status_code == 429 and "server overloaded" in refused.json()["message"]
        assert queued_extra.status_code == 200
        for payload, response in zip([*good[1:], thresholded], [*rest[:3], rest[4]]):
            expected = prune(pruner, payload["query"], TEXTS, threshold=payload.get("threshold"))
            assert [item["index"] for item in response.json()["results"]] == [d.index for d in expected]
        stats = httpx.get(f"{url}/health").json()["batching"]
    # Batch 1: the first request alone. Batch 2: the next four (4 x 3 documents fill the 12 pairs); one
    # call fails on the bad query, then each runs alone. Batch 3: the thresholded request and the last
    # one, one call per threshold.
    assert stats["batches"] == 3 and stats["requests"] == 7 and stats["largest_batch"] == 4
    assert gated.calls == [1, 4, 1, 1, 1, 1, 1, 1]


def test_ragprune_serve_command_wires_options_into_the_server(tiny_model_dir, monkeypatch):
    import uvicorn

    from ragprune.cli import main

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    argv = ["serve", "--model", str(tiny_model_dir), "--device", "cpu", "--port", "9", "--max-documents", "5"]
    assert main(argv) == 0
    assert (served["host"], served["port"]) == ("127.0.0.1", 9)
    with running_server(served["app"]) as url:
        health = httpx.get(f"{url}/health").json()
        assert health["limits"]["max_documents"] == 5 and health["model"] == tiny_model_dir.name
        response = httpx.post(f"{url}/v1/rerank", json={"query": QUERY, "documents": TEXTS})
        assert sorted(item["index"] for item in response.json()["results"]) == [0, 1, 2]
        too_many = httpx.post(f"{url}/v1/rerank", json={"query": QUERY, "documents": ["a"] * 6})
        assert too_many.status_code == 413


def test_ragprune_serve_refuses_non_positive_limits(tiny_model_dir, capsys):
    from ragprune.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--model", str(tiny_model_dir), "--max-batch-size", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--max-batch-size" in err and "0 must be a positive number" in err
