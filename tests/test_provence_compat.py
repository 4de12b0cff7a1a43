"""Provence's ``process(question, context, title=..., always_select_title=...)`` on ragprune."""

from __future__ import annotations

import pytest
from sample_texts import QUERY, TEXTS

from ragprune import Document
from ragprune.provence_compat import ProvenceModel
from ragprune.ranking import prune


@pytest.fixture()
def model(pruner) -> ProvenceModel:
    return ProvenceModel(pruner)


def cut_between_sentences(pruner) -> float:
    (doc,) = prune(pruner, QUERY, TEXTS[:1])
    low, high = sorted(s.score for s in doc.sentences)
    return (low + high) / 2


def test_strings_in_scalars_out(model, pruner):
    threshold = cut_between_sentences(pruner)
    out = model.process(QUERY, TEXTS[0], title=None, threshold=threshold)
    assert set(out) == {"pruned_context", "reranking_score", "compression_rate"}
    (expected,) = prune(pruner, QUERY, TEXTS[:1], threshold=threshold)
    assert out["pruned_context"] == expected.pruned_text and out["pruned_context"] != TEXTS[0]
    assert out["reranking_score"] == pytest.approx(expected.logit)
    assert (
        out["compression_rate"] == pytest.approx(100 * expected.compression)
        and 0 < out["compression_rate"] < 100
    )


def test_nested_lists_per_question_and_context(model, pruner):
    questions = [QUERY, "where is the eiffel tower"]
    contexts = [TEXTS[:2], TEXTS[1:4]]
    out = model.process(questions, contexts, title=None, threshold=0.0)
    assert [len(row) for row in out["pruned_context"]] == [2, 3]
    assert out["pruned_context"][1] == [text for text in TEXTS[1:4]]  # threshold 0 keeps everything
    scores = [
        [d.logit for d in sorted(prune(pruner, q, c), key=lambda d: d.index)]
        for q, c in zip(questions, contexts)
    ]
    assert out["reranking_score"] == [pytest.approx(row) for row in scores]
    flat = model.process(QUERY, TEXTS[:2], title=None, threshold=0.0)  # one question, a flat list
    assert flat["pruned_context"] == TEXTS[:2]


def test_first_sentence_title_is_kept_when_asked(model):
    nothing_kept = model.process(QUERY, TEXTS[1], threshold=1.0)
    assert nothing_kept["pruned_context"] == "" and nothing_kept["compression_rate"] == 100.0
    with_title = model.process(QUERY, TEXTS[1], threshold=1.0, always_select_title=True)
    assert with_title["pruned_context"] == "The Eiffel Tower is in Paris."
    assert 0 < with_title["compression_rate"] < 100


def test_explicit_titles_are_context_and_lead_the_output_when_selected(model, pruner):
    out = model.process(QUERY, TEXTS[0], title="Fleas", threshold=1.0, always_select_title=True)
    assert out["pruned_context"] == "Fleas"
    (expected,) = prune(pruner, QUERY, [Document("0", TEXTS[0], title="Fleas")])
    assert out["reranking_score"] == pytest.approx(expected.logit)
    everything = model.process(
        [QUERY], [[TEXTS[0]]], title=[["Fleas"]], threshold=0.0, always_select_title=True
    )
    assert everything["pruned_context"] == [[f"Fleas\n{TEXTS[0]}"]]


def test_reorder_keeps_the_top_k_best(model, pruner):
    out = model.process([QUERY], [TEXTS], title=None, reorder=True, top_k=2)
    best = [d.logit for d in prune(pruner, QUERY, TEXTS, top_k=2)]
    assert out["reranking_score"] == [pytest.approx(best)]


@pytest.mark.parametrize(
    ("question", "context", "title", "message"),
    [
        ([QUERY, QUERY], [TEXTS], None, "2 questions but 1 lists"),
        ([QUERY], TEXTS[0], None, "one list of contexts per question"),
        (QUERY, TEXTS[:2], "T", "single title string"),
        ([QUERY], [TEXTS[:2]], [["a"]], "one title per context"),
    ],
)
def test_mismatched_shapes_are_named(model, question, context, title, message):
    with pytest.raises(ValueError, match=message):
        model.process(question, context, title=title)
