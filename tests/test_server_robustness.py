"""Issue 14 on the HTTP server: Cohere ClientV2 and TEI shapes, error bodies, and no input giving a 5xx."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="needs fastapi + uvicorn (serve extra)")
pytest.importorskip("httpx", reason="needs httpx (dev extra)")

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sample_texts import QUERY, TEXTS
from server_helpers import running_server

from ragprune import __version__
from ragprune.ranking import prune, rank
from ragprune.server import ServerLimits, create_app

LIMITS = ServerLimits(
    max_documents=8, max_document_chars=2_000, max_query_chars=200, max_request_bytes=40_000
)


@pytest.fixture(scope="module")
def base_url(pruner):
    with running_server(create_app(pruner, limits=LIMITS, model_name="tiny")) as url:
        yield url


@pytest.fixture()
def client(base_url):
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def test_cohere_client_v2_reranks_with_relevant_spans(base_url, pruner):
    cohere = pytest.importorskip("cohere", reason="needs the cohere SDK (dev extra)")
    co = cohere.ClientV2(api_key="unused", base_url=base_url)
    response = co.rerank(model="tiny", query=QUERY, documents=TEXTS, top_n=3)
    expected = rank(pruner, QUERY, TEXTS, top_k=3)
    assert [r.index for r in response.results] == [d.index for d in expected]
    assert [r.relevance_score for r in response.results] == pytest.approx([d.score for d in expected])
    assert all(r.relevant_spans is None for r in response.results)

    (doc,) = prune(pruner, QUERY, TEXTS[:1])
    low, high = sorted(s.score for s in doc.sentences)
    options = cohere.RerankRelevantSpans(mode="enabled", threshold=(low + high) / 2)
    with_spans = co.rerank(model="tiny", query=QUERY, documents=TEXTS[:1], relevant_spans=options)
    (result,) = with_spans.results
    (span,) = result.relevant_spans  # the better of the two sentences
    best = max(doc.sentences, key=lambda s: s.score)
    assert (span.start, span.end) == (best.span.start, best.span.end) and span.score == pytest.approx(high)
    everything = co.rerank(
        model="tiny",
        query=QUERY,
        documents=TEXTS[:1],
        relevant_spans=cohere.RerankRelevantSpans(mode="enabled", threshold=0.0, max_spans=1),
    )
    assert len(everything.results[0].relevant_spans) == 1  # max_spans cuts the list, best first
    assert everything.results[0].relevant_spans[0].score == pytest.approx(high)


def test_cohere_sdk_gets_its_typed_error_with_the_message(base_url):
    cohere = pytest.importorskip("cohere", reason="needs the cohere SDK (dev extra)")
    co = cohere.ClientV2(api_key="unused", base_url=base_url)
    with pytest.raises(cohere.UnprocessableEntityError) as error:
        co.rerank(model="tiny", query=QUERY, documents=[])
    assert "documents is empty" in error.value.body["message"]


def test_error_bodies_follow_the_route_family(client):
    cohere_style = client.post("/v2/rerank", json={"query": QUERY, "documents": ["a"], "top_n": 0})
    assert cohere_style.status_code == 422 and set(cohere_style.json()) == {"message"}
    assert "top_n" in cohere_style.json()["message"]
    tei = client.post("/rerank", content=b"{", headers={"content-type": "application/json"})
    assert tei.status_code == 400
    assert tei.json()["error_type"] == "validation" and "not valid JSON" in tei.json()["error"]
    missing_route = client.post("/v3/rerank", json={})
    assert missing_route.status_code == 404 and "message" in missing_route.json()
    assert client.get("/health").status_code == 200  # the same keep-alive connection still serves


def test_tei_info_states_the_model_and_its_limits_in_tokens(client, pruner):
    info = client.get("/info").json()
    assert info["model_id"] == "tiny" and info["version"] == __version__
    assert info["max_input_length"] == pruner.input_limits.window == pruner.max_length
    assert info["max_client_batch_size"] == LIMITS.max_documents and "reranker" in info["model_type"]
    health = client.get("/health").json()
    assert health["limits"]["tokens"] == pruner.input_limits.to_dict()
    assert health["limits"]["tokens"]["max_query_tokens"] == pruner.input_limits.max_query_tokens


def test_lone_surrogates_are_read_as_replacement_characters_not_a_500(client, pruner):
    body = '{"query": "fleas \\ud800", "documents": ["x \\udc00 y. Fleas live up to a year.", "Cats."]}'
    for route in ("/v1/rerank", "/v2/rerank", "/v1/prune"):
        response = client.post(route, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 200, (route, response.text)
    pruned = client.post("/v1/prune", content=body, headers={"content-type": "application/json"}).json()
    expected = prune(pruner, "fleas \ufffd", ["x \ufffd y. Fleas live up to a year.", "Cats."])
    assert [item["kept_spans"] for item in pruned["results"]] == [
        [s.to_list() for s in d.kept_spans] for d in expected
    ]
    tei = client.post(
        "/rerank",
        content='{"query": "q", "texts": ["\\ud83d"], "return_text": true}',
        headers={"content-type": "application/json"},
    )
    assert tei.status_code == 200 and tei.json()[0]["text"] == "\ud83d"  # echoed as sent (escaped)


def test_metadata_that_utf8_cannot_hold_is_echoed_as_escapes(client):
    document = '{"text": "Fleas.", "metadata": {"k": "\\ud800"}}'
    body = f'{{"query": "q", "documents": [{document}], "return_documents": true}}'
    response = client.post("/v1/rerank", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert json.loads(response.content)["results"][0]["document"]["metadata"] == {"k": "\ud800"}


@pytest.mark.parametrize(
    ("document", "status", "expected"),
    [
        ({"id": None, "text": "Fleas."}, 200, "0"),
        ({"id": 7, "text": "Fleas."}, 200, "7"),
        ({"id": [1], "text": "Fleas."}, 422, "documents[0].id must be a string or an integer"),
        ({"id": True, "text": "Fleas."}, 422, "documents[0].id must be a string or an integer"),
        ({"text": 3}, 422, "documents[0].text must be a string"),
    ],
)
def test_document_ids(client, document, status, expected):
    response = client.post(
        "/v1/rerank", json={"query": QUERY, "documents": [document], "return_documents": True}
    )
    assert response.status_code == status
    if status == 200:
        assert response.json()["results"][0]["document"]["id"] == expected
    else:
        assert expected in response.json()["message"]


def test_overload_is_429_in_tei_shape(pruner):
    import asyncio
    import threading

    release = threading.Event()

    class Slow:
        def __getattr__(self, name):
            return getattr(pruner, name)

        def process(self, *args, **kwargs):
            release.wait(timeout=30)
            return pruner.process(*args, **kwargs)

    app = create_app(Slow(), limits=ServerLimits(max_pending=1, max_batch_size=1))
    with running_server(app) as url:

        async def scenario():
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                busy = [asyncio.create_task(client.post("/rerank", json={"query": QUERY, "texts": ["a"]}))]
                while app.state.batcher.stats.batches == 0:
                    await asyncio.sleep(0.01)
                busy.append(
                    asyncio.create_task(client.post("/rerank", json={"query": QUERY, "texts": ["b"]}))
                )
                while app.state.batcher.pending < 1:
                    await asyncio.sleep(0.01)
                refused = await client.post("/rerank", json={"query": QUERY, "texts": ["c"]})
                release.set()
                return refused, await asyncio.gather(*busy)

        refused, served = asyncio.run(scenario())
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error_type"] == "overloaded"
    assert [r.status_code for r in served] == [200, 200]


# Random Unicode: surrogates, controls, format characters, mixed scripts (categories Cs, Cc, Cf, Zs, ...).
TEXT = st.text(st.characters(categories=["L", "M", "N", "P", "S", "Z", "C"]), max_size=40)  # C: Cs, Cc, Cf
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
DOCUMENT = (
    TEXT | st.fixed_dictionaries({"text": TEXT}, optional={"id": JSON_VALUE, "title": TEXT}) | JSON_VALUE
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(["/v1/rerank", "/v2/rerank", "/v1/prune", "/rerank"]),
    query=TEXT | JSON_VALUE,
    documents=st.lists(DOCUMENT, max_size=4) | JSON_VALUE,
)
def test_no_input_gives_a_5xx(client, route, query, documents):
    field = "texts" if route == "/rerank" else "documents"
    body = json.dumps({"query": query, field: documents, "return_documents": True, "return_text": True})
    response = client.post(
        route, content=body.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"}
    )
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    if response.status_code >= 400:
        assert ("message" in payload) != ("error" in payload)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(["/v1/rerank", "/v2/rerank", "/v1/prune", "/rerank"]), body=st.binary(max_size=60)
)
def test_no_raw_body_gives_a_5xx(client, route, body):
    response = client.post(route, content=body, headers={"content-type": "application/json"})
    assert response.status_code < 500 and response.json()


def test_tei_truncate_cuts_an_over_long_query_and_says_so(client, pruner):
    limit = client.get("/health").json()["limits"]["tokens"]["max_query_tokens"]
    long_query = "fleas " * 30  # 60 tokens: over the tiny model's query share, under 200 characters
    assert len(pruner.tokenizer(long_query, add_special_tokens=False)["input_ids"]) > limit
    refused = client.post("/rerank", json={"query": long_query, "texts": TEXTS})
    assert refused.status_code == 422 and f"{limit}" in refused.json()["error"]
    right = client.post("/rerank", json={"query": long_query, "texts": TEXTS, "truncate": True})
    assert right.status_code == 200, right.text
    assert all(item["truncated"] is True for item in right.json())
    expected = rank(pruner, long_query, TEXTS, truncate=True)
    assert [item["index"] for item in right.json()] == [d.index for d in expected]
    assert all(d.truncated == ("query",) for d in expected)
    left = {"query": long_query, "texts": TEXTS, "truncate": True, "truncation_direction": "left"}
    refused_left = client.post("/rerank", json=left)
    assert refused_left.status_code == 422 and "truncation_direction" in refused_left.json()["error"]
    short = client.post("/rerank", json={"query": QUERY, "texts": TEXTS, "truncate": True}).json()
    assert all("truncated" not in item for item in short)  # nothing cut: the plain TEI shape
