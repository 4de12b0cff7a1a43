"""The fusion option where users meet it: ``rank``/``prune``, ``ragprune rerank --fusion`` and the
LangChain / LlamaIndex integrations, on the tiny model and the CLI tests' fixtures."""

from __future__ import annotations

import json

import pytest
from sample_texts import QUERY, TEXTS
from test_cli_rerank_prune import _rerank, trec_files  # noqa: F401 (the fixture)

from ragprune.data import ranked_items, read_run
from ragprune.fusion import DEFAULT_FUSION, Interpolate
from ragprune.ranking import rank

FIRST_STAGE = [1.0, 4.0, 3.0, 2.0]  # retriever order: 1, 2, 3, 0


def test_rank_orders_by_the_fused_score_and_keeps_the_model_scores(pruner):
    plain = rank(pruner, QUERY, TEXTS)
    fused = rank(pruner, QUERY, TEXTS, first_stage_scores=FIRST_STAGE, fusion="interpolate:0")
    assert [doc.index for doc in fused] == [1, 2, 3, 0]  # alpha 0: the first stage alone
    assert [doc.rank for doc in fused] == [1, 2, 3, 4]
    logits = {doc.index: doc.logit for doc in plain}
    assert {doc.index: doc.logit for doc in fused} == logits  # nothing the model said is lost
    assert all(doc.fused_score is None for doc in plain)
    assert "fused_score" in fused[0].to_dict() and "fused_score" not in plain[0].to_dict()


def test_rank_default_fusion_applies_when_first_stage_scores_are_given(pruner):
    fused = rank(pruner, QUERY, TEXTS, first_stage_scores=FIRST_STAGE, top_k=2)
    logits = [doc.logit for doc in sorted(rank(pruner, QUERY, TEXTS), key=lambda d: d.index)]
    expected = DEFAULT_FUSION.fuse(logits, FIRST_STAGE)
    assert len(fused) == 2
    assert [doc.fused_score for doc in fused] == sorted(expected, reverse=True)[:2]


def test_rank_fusion_errors(pruner):
    with pytest.raises(ValueError, match="needs the first stage's scores"):
        rank(pruner, QUERY, TEXTS, fusion="rrf")
    with pytest.raises(ValueError, match="3 first_stage_scores for 4 docs"):
        rank(pruner, QUERY, TEXTS, first_stage_scores=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="unknown fusion 'mean'"):
        rank(pruner, QUERY, TEXTS, first_stage_scores=FIRST_STAGE, fusion="mean")
    assert len(rank(pruner, QUERY, TEXTS, fusion="none")) == 4


def test_cli_fusion_follows_the_input_run(trec_files, tmp_path, tiny_model_dir, capsys):  # noqa: F811
    pruned = tmp_path / "pruned.jsonl"
    argv = ("--fusion", "interpolate:0", "--pruned-output", str(pruned))
    assert _rerank(trec_files, tmp_path, tiny_model_dir, *argv) == 0
    out = read_run(tmp_path / "out.trec")
    for docs in out.values():  # alpha 0: the input run's order (p0 > p1 > p2 > p3)
        assert [doc for doc, _ in ranked_items(docs)] == ["p0", "p1", "p2", "p3"]
    for line in map(json.loads, pruned.read_text().splitlines()):
        assert [p["id"] for p in line["passages"]] == ["p0", "p1", "p2", "p3"]
        assert [p["rank"] for p in line["passages"]] == [1, 2, 3, 4]
        assert all(isinstance(p["logit"], float) for p in line["passages"])
    assert "fusion\tinterpolate:0\n" in capsys.readouterr().out


def test_cli_fusion_default_and_rrf(trec_files, tmp_path, tiny_model_dir, capsys):  # noqa: F811
    assert _rerank(trec_files, tmp_path, tiny_model_dir) == 0
    assert f"fusion\t{DEFAULT_FUSION}\n" in capsys.readouterr().out
    assert _rerank(trec_files, tmp_path, tiny_model_dir, "--fusion", "rrf") == 0
    assert "fusion\trrf:60\n" in capsys.readouterr().out
    assert sorted(read_run(tmp_path / "out.trec")["q1"]) == ["p0", "p1", "p2", "p3"]


def test_cli_bad_fusion_is_a_usage_error(trec_files, tmp_path, tiny_model_dir, capsys):  # noqa: F811
    with pytest.raises(SystemExit) as exit_info:
        _rerank(trec_files, tmp_path, tiny_model_dir, "--fusion", "interpolate:2")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--fusion" in err and "use a number in [0, 1]" in err


def test_cli_help_states_the_default_and_its_source(capsys):
    from ragprune.cli import main

    with pytest.raises(SystemExit):
        main(["rerank", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"Default {DEFAULT_FUSION}: chosen on TREC DL21" in help_text
    assert "eval/results/fusion_dl21.md" in help_text


def test_langchain_fusion_reads_the_metadata_score(pruner):
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from ragprune.integrations.langchain import RagpruneCompressor

    docs = [Document(page_content=t, metadata={"bm25": s}) for t, s in zip(TEXTS, FIRST_STAGE)]
    compressor = RagpruneCompressor(pruner=pruner, fusion="interpolate:0", score_key="bm25")
    out = compressor.compress_documents(docs, QUERY)
    assert [doc.metadata["ragprune_index"] for doc in out] == [1, 2, 3, 0]
    assert all(doc.metadata["ragprune_fused_score"] is not None for doc in out)
    unscored = [Document(page_content=t) for t in TEXTS]  # LangChain's retrievers keep no score
    plain = RagpruneCompressor(pruner=pruner).compress_documents(unscored, QUERY)
    assert all(doc.metadata["ragprune_fused_score"] is None for doc in plain)
    with pytest.raises(ValueError, match=r"passage 0 has None in metadata\['score'\]"):
        RagpruneCompressor(pruner=pruner, fusion="rrf").compress_documents(unscored, QUERY)
    with pytest.raises(ValueError, match="unknown fusion 'best'"):
        RagpruneCompressor(pruner=pruner, fusion="best")


def test_llamaindex_fusion_reads_the_node_score(pruner):
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, TextNode

    from ragprune.integrations.llamaindex import RagprunePostprocessor

    nodes = [NodeWithScore(node=TextNode(text=t), score=s) for t, s in zip(TEXTS, FIRST_STAGE)]
    out = RagprunePostprocessor(pruner=pruner, fusion="interpolate:0").postprocess_nodes(
        nodes, query_str=QUERY
    )
    assert [node.node.metadata["ragprune_index"] for node in out] == [1, 2, 3, 0]
    assert [node.score for node in out] == [node.node.metadata["ragprune_fused_score"] for node in out]
    default = RagprunePostprocessor(pruner=pruner).postprocess_nodes(nodes, query_str=QUERY)
    logits = [
        n.node.metadata["ragprune_logit"]
        for n in sorted(default, key=lambda n: n.node.metadata["ragprune_index"])
    ]
    assert [n.score for n in default] == pytest.approx(
        sorted(DEFAULT_FUSION.fuse(logits, FIRST_STAGE), reverse=True)
    )
    nodes[2].score = None
    assert all(
        n.node.metadata["ragprune_fused_score"] is None
        for n in RagprunePostprocessor(pruner=pruner).postprocess_nodes(nodes, query_str=QUERY)
    )
    with pytest.raises(ValueError, match="passage 2 has None in NodeWithScore.score"):
        RagprunePostprocessor(pruner=pruner, fusion=str(Interpolate(0.5))).postprocess_nodes(
            nodes, query_str=QUERY
        )
