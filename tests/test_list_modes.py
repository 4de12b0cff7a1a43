"""Listwise and full ranking from the list-level head, on the vectors of the pointwise pass."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from ragprune.models import RerankPruneModel, load_model
from ragprune.models.config import HeadSpec, RerankPruneConfig, default_heads
from ragprune.models.heads import ListwiseHead
from ragprune.pipeline import RerankPruner
from ragprune.pipeline.list_stage import sliding_window_scores

PASSAGES = [
    f"Passage {i} says fleas live {i} days. It also mentions {w}."
    for i, w in enumerate("abcdefghijklmnopqrstuvwxy")
]


@pytest.fixture(scope="module")
def list_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model plus a randomly initialised list-level head that really reorders (gate != 0)."""
    base, tokenizer = load_model(tiny_model_dir)
    heads = default_heads() | {"listwise": HeadSpec("listwise")}
    model = RerankPruneModel(
        base.backbone_config, RerankPruneConfig(max_length=64, threshold=0.5, heads=heads)
    )
    torch.manual_seed(7)
    state = base.state_dict()
    for name, value in model.state_dict().items():
        if name.startswith("heads.listwise."):
            state[name] = torch.randn_like(value) * 0.5
    model.load_state_dict(state)
    folder = tmp_path_factory.mktemp("list_model")
    model.save_pretrained(folder, tokenizer)
    return folder


@pytest.fixture(scope="module")
def list_pruner(list_model_dir):
    with RerankPruner.load(list_model_dir, device="cpu", prepare_workers=0) as pruner:
        yield pruner


@pytest.mark.parametrize("mode", ["listwise", "full"])
def test_shuffling_the_input_never_changes_the_ranking(list_pruner, mode):
    expected = [p.document.text for p in list_pruner.process("how long do fleas live", PASSAGES, mode=mode)]
    pointwise = [p.document.text for p in list_pruner.process("how long do fleas live", PASSAGES)]
    assert expected != pointwise  # the head reorders, so the test can fail
    rng = random.Random(0)
    for _ in range(10):
        shuffled = PASSAGES[:]
        rng.shuffle(shuffled)
        got = list_pruner.process("how long do fleas live", shuffled, mode=mode)
        assert [p.document.text for p in got] == expected


def test_modes_keep_both_scores_and_the_same_pruning(list_pruner):
    by_mode = {
        m: list_pruner.process("fleas", PASSAGES, mode=m, reorder=False) for m in ("pointwise", "full")
    }
    for a, b in zip(by_mode["pointwise"], by_mode["full"]):
        assert set(a.scores) == {"rank"} and set(b.scores) == {"rank", "listwise"}
        assert a.scores["rank"] == b.scores["rank"] and a.logit == b.logit
        assert a.kept_spans == b.kept_spans
    full = list_pruner.process("fleas", PASSAGES, mode="full")
    assert [p.rank for p in full] == list(range(1, len(PASSAGES) + 1))
    assert [p.scores["listwise"] for p in full] == sorted((p.scores["listwise"] for p in full), reverse=True)


def test_blank_passages_rank_last_in_every_mode(list_pruner):
    for mode in ("listwise", "full"):
        result = list_pruner.process("fleas", ["  ", *PASSAGES[:3]], mode=mode)
        assert result.passages[-1].index == 0 and result.passages[-1].scores["listwise"] == -np.inf


def test_list_modes_need_a_list_head(pruner):
    with pytest.raises(ValueError, match="needs a model with a list-level head"):
        pruner.process("fleas", PASSAGES[:2], mode="full")
    with pytest.raises(ValueError, match="mode='best'"):
        pruner.process("fleas", PASSAGES[:2], mode="best")


def test_a_zero_gate_head_returns_the_pointwise_ranking():
    head = ListwiseHead(16)
    vectors, logits = torch.randn(30, 16), torch.randn(30)
    torch.testing.assert_close(head.eval()(vectors, logits), logits)
    scores = sliding_window_scores(head, vectors, logits, window=20, stride=10)
    assert list(np.argsort(-scores)) == list(np.argsort(-logits.numpy()))


def test_sliding_windows_run_from_the_bottom_up():
    """A head that ranks by -index within each window: 25 candidates, windows [5, 25) then [0, 15)."""

    class ByIndex(torch.nn.Module):
        def forward(self, vectors, logits):
            return -vectors[:, 0]

    vectors = torch.arange(25, dtype=torch.float).unsqueeze(1)
    logits = torch.arange(25, 0, -1, dtype=torch.float)  # pointwise order: 0, 1, ..., 24
    scores = sliding_window_scores(ByIndex(), vectors, logits, window=20, stride=10)
    order = list(np.argsort(-scores))
    assert order == list(range(25))  # already sorted by the head: each window keeps its order
    reverse = sliding_window_scores(ByIndex(), vectors, -logits, window=20, stride=10)  # start: 24, ..., 0
    # window [5, 25) of 24..0 holds 19..0 -> 24..20, 0..19; then [0, 15): 24..20, 0..9 -> 0..9, 20..24
    assert list(np.argsort(-reverse)) == list(range(10)) + [20, 21, 22, 23, 24] + list(range(10, 20))


def test_rerank_cli_runs_full_mode_and_refuses_it_without_a_list_head(
    list_pruner, list_model_dir, tiny_model_dir, tmp_path
):
    from ragprune.cli import main

    queries, run, passages = tmp_path / "q.tsv", tmp_path / "run.trec", tmp_path / "p.tsv"
    queries.write_text("q1\thow long do fleas live\n")
    passages.write_text("".join(f"d{i}\t{text}\n" for i, text in enumerate(PASSAGES)))
    run.write_text("".join(f"q1 Q0 d{i} {i + 1} {30 - i} bm25\n" for i in range(len(PASSAGES))))
    common = [
        "rerank",
        "--queries",
        str(queries),
        "--run",
        str(run),
        "--passages",
        str(passages),
        "--device",
        "cpu",
    ]
    out = tmp_path / "out.trec"
    model = str(list_model_dir)
    assert main([*common, "--output", str(out), "--model", model, "--mode", "full", "--fusion", "none"]) == 0
    ranked = [line.split()[2] for line in out.read_text().splitlines()]
    expected = list_pruner.process("how long do fleas live", PASSAGES, mode="full")
    assert ranked == [f"d{p.index}" for p in expected]
    assert main([*common, "--output", str(out), "--model", str(tiny_model_dir), "--mode", "full"]) == 2


def test_server_requests_choose_the_mode(list_pruner, pruner):
    pytest.importorskip("fastapi", reason="needs fastapi + uvicorn (serve extra)")
    httpx = pytest.importorskip("httpx", reason="needs httpx (dev extra)")
    from server_helpers import running_server

    from ragprune.server import create_app

    query = "how long do fleas live"
    with running_server(create_app(list_pruner)) as url:
        for mode in ("pointwise", "listwise", "full"):
            body = {"query": query, "documents": PASSAGES, "mode": mode}
            got = [r["index"] for r in httpx.post(f"{url}/v1/rerank", json=body).json()["results"]]
            assert got == [p.index for p in list_pruner.process(query, PASSAGES, mode=mode)]
    with running_server(create_app(pruner)) as url:
        refused = httpx.post(f"{url}/v1/prune", json={"query": query, "documents": PASSAGES, "mode": "full"})
        assert refused.status_code == 422 and "needs a model with a list-level head" in refused.text


def test_list_head_in_bf16_reads_float_vectors_and_returns_float_logits():
    """On CUDA the pipeline runs the model (list head included) in bf16 while vectors and rank logits
    arrive in another dtype: the head casts to its own dtype and returns fp32 logits."""
    torch.manual_seed(0)
    head = ListwiseHead(16, width=8).eval()
    with torch.no_grad():
        head.gate.fill_(1.0)
    vectors, logits = torch.randn(5, 16), torch.randn(5, dtype=torch.float64)
    expected = head(vectors, logits)
    out = head.to(torch.bfloat16)(vectors, logits)
    assert out.dtype == torch.float32 and out.shape == (5,)
    assert torch.allclose(out, expected, atol=0.1)


def test_a_long_passage_gives_the_list_stage_its_best_chunks_vector(list_pruner):
    """A passage cut into several encoder rows hands the list stage the ``[CLS]`` vector of its row with the
    highest rank logit, among short passages of the same call."""
    from ragprune.pipeline.collate import pad_rows

    long = " ".join(
        f"Sentence {i} says fleas and dogs live for {i} weeks in a warm house." for i in range(12)
    )
    tokenizer, runner = list_pruner.tokenizer, list_pruner.runner
    query = np.asarray(tokenizer("how long do fleas live", add_special_tokens=False)["input_ids"])
    texts = [PASSAGES[0], long, PASSAGES[1]]
    keep = runner.keep_vectors
    runner.keep_vectors = True
    try:
        shard, columns = runner.run([query] * 3, texts, [""] * 3, threshold=0.5)
    finally:
        runner.keep_vectors = keep
    rows = shard[1].rows
    assert len(rows) > 1, "the long passage should need several encoder rows at max_length 64"
    padded = pad_rows(rows, tokenizer.pad_token_id).tensors()
    model = runner.model
    with torch.inference_mode():
        hidden = model.encode(padded["input_ids"], padded["attention_mask"], padded["token_type_ids"])
        logits = model.head("rank")(hidden[:, 0]).float()
    best = int(torch.argmax(logits))
    torch.testing.assert_close(columns.vectors[1], hidden[best, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(columns.scores["rank"][1], float(logits[best]), atol=1e-5, rtol=1e-5)
