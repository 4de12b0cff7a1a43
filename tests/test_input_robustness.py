"""Issue 14 in the library core: text the tokenizer cannot take or that holds no text, one long-input
policy, batch-independent scores, and the passage's layout kept in pruned text."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragprune import Document, Query
from ragprune.normalize import check_text, is_blank, repair_text
from ragprune.pipeline import RerankPruner
from ragprune.types import InputLimits

REAL = "Fleas live up to a year. Their life cycle depends on temperature."
INVISIBLE = ["\u200b", "\ufeff", "\xad", "\u2060\u200d", " \u3000\n\t", "\x07\x00", "\ud800", ""]


# ---- normalise and classify ---------------------------------------------------------------------


@pytest.mark.parametrize("text", INVISIBLE)
def test_text_without_visible_characters_is_blank(text):
    assert is_blank(text)


@pytest.mark.parametrize("text", ["a", "\u200bx", "\u4e00", "\ufffd", "\u0301", ".", "\U0001f600"])
def test_text_with_a_visible_character_is_not_blank(text):
    assert not is_blank(text)


def test_lone_surrogates_are_replaced_one_for_one():
    text = "x \ud800 y \udc00\ud83d"
    repaired = repair_text(text)
    assert repaired == "x \ufffd y \ufffd\ufffd" and len(repaired) == len(text)
    assert repair_text("plain") == "plain" and check_text("plain", "f") == "plain"
    assert check_text(text, "field") == repaired


def test_lone_surrogates_can_be_refused_with_the_field_named():
    with pytest.raises(
        ValueError, match=r"passages\[2\]\.text holds a lone surrogate \(U\+D800.*character 2"
    ):
        check_text("x \ud800", "passages[2].text", "error")
    with pytest.raises(ValueError, match="invalid_text='bogus'"):
        check_text("x", "f", "bogus")
    with pytest.raises(TypeError, match="query is a bytes"):
        check_text(b"x", "query")  # type: ignore[arg-type]


# ---- fault 1 through process -------------------------------------------------------------------


def test_lone_surrogates_are_read_as_replacement_characters(pruner):
    text = "Fleas \ud800 live up to a year. Their life cycle depends on temperature."
    result = pruner.process("how long do \udfff fleas live", [text, REAL], threshold=0.0, reorder=False)
    passage = result.passages[0]
    assert passage.document.text == text  # the caller's string, untouched
    assert math.isfinite(passage.logit)
    assert [s.span.slice(text) for s in passage.sentences][1] == "Their life cycle depends on temperature."
    assert passage.pruned_text == text.replace("\ud800", "\ufffd")  # always UTF-8 encodable
    passage.pruned_text.encode("utf-8")
    assert result.query.text == "how long do \udfff fleas live"


@pytest.mark.parametrize(
    ("queries", "passages", "field"),
    [
        ("q \ud800", [REAL], "query '0'"),
        ("q", ["x \ud800"], r"passages\[0\]\.text"),
        ("q", [REAL, {"text": REAL, "title": "T \udc00"}], r"passages\[1\]\.title"),
        (["q", "r"], [[REAL], [REAL, "y \ud800"]], r"passages\[1\]\[1\]\.text"),
    ],
)
def test_lone_surrogates_are_refused_on_request(pruner, queries, passages, field):
    with pytest.raises(ValueError, match=f"{field} holds a lone surrogate"):
        pruner.process(queries, passages, invalid_text="error")


def test_refusing_lone_surrogates_can_be_the_pruners_default(tiny_model_dir):
    strict = RerankPruner.load(tiny_model_dir, device="cpu", invalid_text="error")
    with pytest.raises(ValueError, match=r"passages\[0\]\.text"):
        strict.process("q", ["x \ud800"])
    assert strict.process("q", ["x \ud800"], invalid_text="replace").passages[0].logit > -math.inf
    with pytest.raises(ValueError, match="invalid_text='nope'"):
        RerankPruner.load(tiny_model_dir, device="cpu", invalid_text="nope")


@pytest.mark.parametrize("blank", INVISIBLE + ["\u0301"])  # a lone accent: visible, but no token
def test_passages_without_text_are_empty_and_rank_last(pruner, blank):
    result = pruner.process("fleas", [blank, REAL, "", blank])
    assert [p.index for p in result] == [1, 0, 2, 3]
    for passage in result.passages[1:]:
        assert passage.logit == -math.inf and passage.probability == 0.0
        assert passage.sentences == [] and passage.kept_spans == [] and passage.pruned_text == ""
        assert passage.to_dict()["logit"] is None
    assert result.passages[1].document.text == blank


@pytest.mark.parametrize("blank", ["\u200b", "\ufeff \xad", "\u2060"])
def test_queries_without_text_are_refused(pruner, blank):
    with pytest.raises(ValueError, match="is empty; pass the question text"):
        pruner.process(blank, [REAL])


def test_query_without_a_token_the_model_reads_is_refused(pruner):
    with pytest.raises(ValueError, match="has no token this model reads"):
        pruner.process("\u0301", [REAL])


def test_blank_title_is_no_title(pruner):
    plain = pruner.process("fleas", [REAL]).passages[0]
    titled = pruner.process("fleas", [Document("d", REAL, title="\u200b\ufeff")]).passages[0]
    assert titled.logit == plain.logit and titled.truncated == ()


# ---- fault 3: one long-input policy --------------------------------------------------------------


def test_input_limits_are_stated_in_tokens(pruner):
    limits = pruner.input_limits
    assert limits == InputLimits(window=64, special_tokens=3, max_query_tokens=32, max_title_tokens=16)
    assert limits.min_passage_tokens == 13
    assert limits.to_dict() == {
        "window": 64,
        "special_tokens": 3,
        "max_query_tokens": 32,
        "max_title_tokens": 16,
        "min_passage_tokens": 13,
    }
    with pytest.raises(ValueError, match="use a larger max_length"):
        InputLimits.for_window(16, 4)


def test_a_long_query_is_refused_with_the_real_limit(pruner):
    with pytest.raises(ValueError) as error:
        pruner.process("cat " * 40, [REAL])
    message = str(error.value)
    assert "is 40 tokens long" in message and "at most 32 query tokens" in message
    assert "64-token window" in message and "truncate=True" in message and "-" not in message.split("(")[0]


def test_a_long_query_is_truncated_on_request_and_reported(pruner):
    result = pruner.process("cat " * 40, [REAL, Document("d", REAL, title="Fleas")], truncate=True)
    assert result.query_truncated and result.to_dict()["query_truncated"] is True
    assert all(p.truncated == ("query",) for p in result)
    assert result.passages[0].to_dict()["truncated"] == ["query"]
    first_tokens = pruner.process("cat " * 32, [REAL])
    assert result.passages[0].logit == first_tokens.passages[0].logit
    assert not first_tokens.query_truncated and first_tokens.passages[0].truncated == ()


def test_a_long_title_is_cut_to_its_share_and_reported(pruner):
    title = " ".join(f"title{i}" for i in range(200))
    long_title, short_title = pruner.process(
        "fleas", [Document("a", REAL, title=title), Document("b", REAL, title="Fleas")], reorder=False
    )
    assert long_title.truncated == ("title",) and long_title.to_dict()["truncated"] == ["title"]
    assert short_title.truncated == ()
    both = pruner.process("cat " * 40, [Document("a", REAL, title=title)], truncate=True).passages[0]
    assert both.truncated == ("query", "title")


def test_shipped_model_limits():
    pruner = RerankPruner.load(None, device="cpu")
    assert pruner.input_limits == InputLimits(256, 3, 128, 64)
    assert pruner.input_limits.min_passage_tokens == 61


# ---- fault 2: batch-independent scores -----------------------------------------------------------


def _issue_batch() -> list[str]:
    """The issue's case: 63 short passages, two identical ones, a long one (batch size 64)."""
    short = [f"Passage {i} is about cats and sleep." for i in range(63)]
    long = " ".join(f"Sentence {i} says fleas live up to a year in warm homes." for i in range(40))
    return short + [REAL, REAL, long]


def _varied_passages() -> list[str]:
    words = (REAL.lower() + " cats sleep a lot").replace(".", "").split()
    passages = []
    for n in [1, 3, 7, 12, 20, 33, 48, 70, 110, 170, 260]:
        body = " ".join(words[(i * 7 + n) % len(words)] for i in range(n))
        passages.append(f"{body[:1].upper()}{body[1:]}. Fleas bite. {body}.")
    return passages


def _assert_same_scores(a, b):
    assert a.logit == b.logit  # bit-identical, not approximately
    assert [s.score for s in a.sentences] == [s.score for s in b.sentences]
    assert [s.kept for s in a.sentences] == [s.kept for s in b.sentences]


@pytest.fixture(scope="module", params=["tiny", "shipped"])
def batch64(request, tiny_model_dir):
    model = tiny_model_dir if request.param == "tiny" else None
    with RerankPruner.load(model, device="cpu", batch_size=64) as loaded:
        yield loaded


def test_identical_passages_tie_and_keep_input_order(batch64):
    result = batch64.process("how long do fleas live", _issue_batch())
    first, second = (p for p in result if p.index in (63, 64))
    _assert_same_scores(first, second)
    assert second.rank == first.rank + 1
    alone = batch64.process("how long do fleas live", [REAL]).passages[0]
    _assert_same_scores(alone, first)


def test_a_pair_scores_the_same_alone_and_in_any_batch(batch64):
    query = "how long do fleas live"
    passages = _varied_passages()
    alone = [batch64.process(query, [text]).passages[0] for text in passages]
    assert any(p.chunked for p in alone)
    mixed = batch64.process(
        [query, "cats", query], [passages, passages[::2], passages[::-1] + _issue_batch()], reorder=False
    )
    for result in (mixed[0].passages, mixed[2].passages[: len(passages)][::-1]):
        for a, b in zip(alone, result):
            _assert_same_scores(a, b)


def test_identical_pairs_are_encoded_once(tiny_model_dir, monkeypatch):
    pruner = RerankPruner.load(tiny_model_dir, device="cpu", batch_size=64)
    rows = []
    encode = pruner.model.encode
    monkeypatch.setattr(
        pruner.model, "encode", lambda ids, *rest: (rows.append(len(ids)), encode(ids, *rest))[1]
    )
    result = pruner.process(["fleas", "fleas"], [[REAL, REAL, "Cats."], [REAL]], reorder=False)
    assert sum(rows) == 2
    assert [p.logit for p in result[0]][:2] == [result[1].passages[0].logit] * 2


# ---- fault 4: layout kept in pruned text ------------------------------------------------------------


MARKDOWN = "Symptoms:\n- fever\n- cough\n- rash\n\nSee a doctor. Rest well.\n\nDrink water."


def _kept(pruner, text, keep):
    """``text``'s result with the sentences at ``keep`` kept (threshold 0 scores them, then we choose)."""
    from dataclasses import replace

    passage = pruner.process("fever", [text], threshold=0.0).passages[0]
    passage.sentences = [replace(s, kept=i in keep) for i, s in enumerate(passage.sentences)]
    return passage


def test_pruned_markdown_list_keeps_its_lines(pruner):
    passage = _kept(pruner, MARKDOWN, {0, 1, 3})
    assert [s.span.slice(MARKDOWN) for s in passage.sentences][:4] == [
        "Symptoms:",
        "- fever",
        "- cough",
        "- rash",
    ]
    assert passage.pruned_text == "Symptoms:\n- fever\n- rash"
    assert passage.pruned("…") == "Symptoms:\n- fever\n…\n- rash\n\n…"


def test_pruned_paragraphs_keep_their_breaks(pruner):
    passage = _kept(pruner, MARKDOWN, {1, 5, 6})
    assert passage.pruned_text == "- fever\n\nRest well.\n\nDrink water."
    assert passage.pruned("[...]") == "[...]\n- fever\n\n[...]\n\nRest well.\n\nDrink water."
    inline = _kept(pruner, "One. Two. Three. Four.", {0, 2})
    assert inline.pruned_text == "One. Three." and inline.pruned("…") == "One. … Three. …"
    everything = pruner.process("fever", [MARKDOWN], threshold=0.0).passages[0]
    assert everything.pruned_text == MARKDOWN and everything.pruned("…") == MARKDOWN


def test_pruned_text_of_glued_sentences_gets_a_space(pruner):
    passage = _kept(pruner, "the cat sat.The dog barked.The end came.", {0, 2})
    assert passage.pruned_text == "the cat sat. The end came."


# ---- any Unicode through process ---------------------------------------------------------------------

_PIECES = st.one_of(
    st.characters(codec=None),  # any code point, lone surrogates included
    st.sampled_from(list("\u200b\ufeff\xad\u2060\x00\x07\n \u3002\uff1f\u061f\u0964.!?\u00ab\u00bb")),
    st.sampled_from(
        ["Fleas live.", "\u732b\u306f\u5bdd\u308b\u3002", "\u0645\u0631\u062d\u0628\u0627", "```\n"]
    ),
)
_TEXT = st.lists(_PIECES, max_size=40).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=_TEXT, passages=st.lists(st.one_of(_TEXT, st.builds(dict, text=_TEXT, title=_TEXT)), max_size=4))
def test_any_unicode_gives_valid_spans_or_a_documented_error(pruner, query, passages):
    try:
        result = pruner.process(Query("q", query), passages, threshold=0.3, truncate=True)
    except ValueError as error:
        assert "is empty" in str(error) or "no token this model reads" in str(error)
        assert (
            is_blank(query) or not pruner.tokenizer(repair_text(query), add_special_tokens=False)["input_ids"]
        )
        return
    assert len(result) == len(passages)
    for passage in result:
        text = passage.document.text
        assert (passage.logit == -math.inf) == (passage.sentences == [])
        previous = 0
        for sentence in passage.sentences:
            assert previous <= sentence.span.start < sentence.span.end <= len(text)
            previous = sentence.span.end
        for span in passage.kept_spans:
            assert span.slice(repair_text(text)) in passage.pruned_text
        passage.pruned_text.encode("utf-8")
        passage.to_dict()
