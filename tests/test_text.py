from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragprune.text import split_sentences
from ragprune.types import Span


def sentences(text: str) -> list[str]:
    return [span.slice(text) for span in split_sentences(text)]


def assert_invariants(text: str, spans: list[Span]) -> None:
    """Sorted, non-overlapping, non-empty spans on non-whitespace ends; the gaps are whitespace only."""
    previous_end = 0
    for span in spans:
        assert isinstance(span, Span)
        assert previous_end <= span.start < span.end <= len(text)
        assert not text[span.start].isspace() and not text[span.end - 1].isspace()
        assert text[previous_end : span.start].isspace() or previous_end == span.start
        previous_end = span.end
    tail = text[previous_end:]
    assert tail == "" or tail.isspace()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("   \n\t  ", []),
        ("\u00a0\u2003\n", []),
        ("word", ["word"]),
        ("  One sentence.  ", ["One sentence."]),
        ("First one. Second one! Third one? Fourth", ["First one.", "Second one!", "Third one?", "Fourth"]),
        ("Really?! Yes.", ["Really?!", "Yes."]),
        # abbreviations
        (
            "Dr. Smith met Mr. Jones and Mrs. Brown. They talked.",
            ["Dr. Smith met Mr. Jones and Mrs. Brown.", "They talked."],
        ),
        (
            "Fruit, e.g. apples, i.e. Granny Smith. Next one.",
            ["Fruit, e.g. apples, i.e. Granny Smith.", "Next one."],
        ),
        ("Use it e.g. Monday. Done.", ["Use it e.g. Monday.", "Done."]),
        ("Roe vs. Wade was decided. Then more.", ["Roe vs. Wade was decided.", "Then more."]),
        ("He lives on St. Mary Street. It is nice.", ["He lives on St. Mary Street.", "It is nice."]),
        ("The U.S. Army is large. It grew.", ["The U.S. Army is large.", "It grew."]),
        ("He moved to the U.S. The move was hard.", ["He moved to the U.S.", "The move was hard."]),
        ("She holds a Ph.D. in physics.", ["She holds a Ph.D. in physics."]),
        (
            "John F. Kennedy was president. He died in 1963.",
            ["John F. Kennedy was president.", "He died in 1963."],
        ),
        ("Take vitamin A. It helps.", ["Take vitamin A.", "It helps."]),
        ("Apples, pears, etc. Then we left.", ["Apples, pears, etc.", "Then we left."]),
        ("Apples, pears, etc. are fruit.", ["Apples, pears, etc. are fruit."]),
        (
            "It opens at 9 a.m. EST daily. It closes at 5 p.m. The staff leave.",
            ["It opens at 9 a.m. EST daily.", "It closes at 5 p.m.", "The staff leave."],
        ),
        (
            "See No. 5 and Fig. 2 for details. It was Jan. 5 then.",
            ["See No. 5 and Fig. 2 for details.", "It was Jan. 5 then."],
        ),
        ("The answer was no. The end.", ["The answer was no.", "The end."]),
        ("Sonata No. 25. The second.", ["Sonata No. 25.", "The second."]),
        (
            "Smith et al. found it. Jones et al. Nature reported.",
            ["Smith et al. found it.", "Jones et al.", "Nature reported."],
        ),
        ("Apple Inc. The company grew.", ["Apple Inc.", "The company grew."]),
        ("a sales rep. The next day.", ["a sales rep.", "The next day."]),
        ("He said it. Allogeneic cells grew.", ["He said it.", "Allogeneic cells grew."]),
        ("Reduced EF. Allogeneic cells grew.", ["Reduced EF.", "Allogeneic cells grew."]),
        # numbers
        ("Pi is 3.14 and it cost $1.5 million. Next.", ["Pi is 3.14 and it cost $1.5 million.", "Next."]),
        ("Version 2.0. The next release.", ["Version 2.0.", "The next release."]),
        ("It ended in 1990. 2001 was different.", ["It ended in 1990.", "2001 was different."]),
        (
            "Steps: 1. Preheat the oven. 2. Mix the flour.",
            ["Steps: 1. Preheat the oven.", "2. Mix the flour."],
        ),
        ("1. Preheat the oven. 2. Mix.", ["1. Preheat the oven.", "2. Mix."]),
        (
            "Forces. 1  The first mission. 2  There are troops.",
            ["Forces.", "1  The first mission.", "2  There are troops."],
        ),
        # ellipses
        ("Wait... and then... Nothing happened.", ["Wait... and then...", "Nothing happened."]),
        ("Wait\u2026 and then\u2026 Nothing.", ["Wait\u2026 and then\u2026", "Nothing."]),
        ("Wait . . . and then. . . . Nothing.", ["Wait . . . and then. . . .", "Nothing."]),
        # URLs and e-mail
        ("Visit www.example.com. The site is up.", ["Visit www.example.com.", "The site is up."]),
        (
            "Go to https://example.org/a.b?x=1. Then stop.",
            ["Go to https://example.org/a.b?x=1.", "Then stop."],
        ),
        ("Mail john.smith@example.com now. Or call.", ["Mail john.smith@example.com now.", "Or call."]),
        ("Mail Jane.Doe@Example.com today.", ["Mail Jane.Doe@Example.com today."]),
        # quotes and brackets after the full stop
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("\u201cGo home.\u201d She went.", ["\u201cGo home.\u201d", "She went."]),
        ("(See above.) Next part.", ["(See above.)", "Next part."]),
        ('"Stop!" he said.', ['"Stop!" he said.']),
        ("It ended. (Note: not quite.) Fine.", ["It ended.", "(Note: not quite.)", "Fine."]),
        ('It ended. "Quote here." Fine.', ["It ended.", '"Quote here."', "Fine."]),
        ("Is it?, she asked.", ["Is it?, she asked."]),
        # glued text (MS MARCO artefacts)
        ("Flea Control.ancel. Fleas bite.", ["Flea Control.ancel.", "Fleas bite."]),
        ("the cat sat on the mat.The dog barked.", ["the cat sat on the mat.", "The dog barked."]),
        ("It was over.Really? Yes.", ["It was over.", "Really?", "Yes."]),
        (
            "Use System.Console and ASP.NET and Node.js here.",
            ["Use System.Console and ASP.NET and Node.js here."],
        ),
        ("Call obj.method.Call now.", ["Call obj.method.Call now."]),
        ("See mrs.Smith today.", ["See mrs.Smith today."]),
        ("Mail bob@mail.example.Com today.", ["Mail bob@mail.example.Com today."]),
        ("In 2010.The firm grew.", ["In 2010.The firm grew."]),
        # layout
        ("Para one\n\nPara two", ["Para one", "Para two"]),
        ("Para one\n  \t \nPara two", ["Para one", "Para two"]),
        ("A line that wraps\nacross lines.", ["A line that wraps\nacross lines."]),
        ("Symptoms:\n- fever\n- cough\nSee a doctor.", ["Symptoms:", "- fever", "- cough", "See a doctor."]),
        (
            "Steps\n1. Mix flour\n2) Bake it\n(c) Eat it",
            ["Steps", "1. Mix flour", "2) Bake it", "(c) Eat it"],
        ),
        ("List:\n\u2022 one\n\u2022 two", ["List:", "\u2022 one", "\u2022 two"]),
        ("# Title\nBody text here.", ["# Title", "Body text here."]),
        ("Windows line\r\n\r\nends here.", ["Windows line", "ends here."]),
        ("A wrapped line\n-not a bullet", ["A wrapped line\n-not a bullet"]),
        # other scripts' sentence ends
        ("今天天气很好。我们去公园吧！你呢？", ["今天天气很好。", "我们去公园吧！", "你呢？"]),
        ("\u300c行こう。\u300d彼は言った。", ["\u300c行こう。\u300d", "彼は言った。"]),
        ("It rained。Then stopped.", ["It rained。", "Then stopped."]),
        ("هل أنت بخير؟ نعم.", ["هل أنت بخير؟", "نعم."]),
        ("یہ پہلا جملہ ہے۔ یہ دوسرا ہے۔", ["یہ پہلا جملہ ہے۔", "یہ دوسرا ہے۔"]),
        ("यह एक वाक्य है। यह दूसरा है॥", ["यह एक वाक्य है।", "यह दूसरा है॥"]),
        ("Really‼ Yes.", ["Really‼", "Yes."]),
        # closing quotes of other languages
        ("Er sagte \u201eKomm.\u201c Dann ging er.", ["Er sagte \u201eKomm.\u201c", "Dann ging er."]),
        ("Er sagte \u00bbKomm.\u00ab Dann ging er.", ["Er sagte \u00bbKomm.\u00ab", "Dann ging er."]),
        (
            "Il a dit \u00abViens.\u00bb Puis il est parti.",
            ["Il a dit \u00abViens.\u00bb", "Puis il est parti."],
        ),
        (
            "Il a dit \u00ab Viens. \u00bb Puis il partit.",
            ["Il a dit \u00ab Viens. \u00bb", "Puis il partit."],
        ),
        (
            "Il a dit\u00a0\u00ab\u00a0Viens.\u00a0\u00bb Puis.",
            ["Il a dit\u00a0\u00ab\u00a0Viens.\u00a0\u00bb", "Puis."],
        ),
        ("\u00abViens.\u00bb dit-il.", ["\u00abViens.\u00bb dit-il."]),
        # fenced code blocks stay whole and split from their neighbours
        (
            "Run this:\n```python\nx = 1. Y = 2\n\n- not a list\n```\nThen stop. Done.",
            ["Run this:", "```python\nx = 1. Y = 2\n\n- not a list\n```", "Then stop.", "Done."],
        ),
        ("Text. ~~~\nnot a fence", ["Text.", "~~~\nnot a fence"]),
        ("Open:\n~~~\nA. B.\n\nC.", ["Open:", "~~~\nA. B.\n\nC."]),
        ("```\nA. B.\n``` not closed\nC. D.", ["```\nA. B.\n``` not closed\nC. D."]),
        ("````\nA.\n```\nB.\n````\nIt ran. Done.", ["````\nA.\n```\nB.\n````", "It ran.", "Done."]),
        # HTML paragraphs
        ("<p>One para. Two.</p><p>next para</p>", ["<p>One para.", "Two.</p>", "<p>next para</p>"]),
        ('<P class="x">A para</P>\n<p>B</p>', ['<P class="x">A para</P>', "<p>B</p>"]),
        ("a <pre>b</pre> c", ["a <pre>b</pre> c"]),
    ],
)
def test_examples(text: str, expected: list[str]) -> None:
    spans = split_sentences(text)
    assert [span.slice(text) for span in spans] == expected
    assert_invariants(text, spans)


def test_offsets_point_into_the_original_text() -> None:
    text = "  Dr. Who?  Yes.\n\nNext para."
    spans = split_sentences(text)
    assert spans == [Span(2, 10), Span(12, 16), Span(18, 28)]
    assert [s.slice(text) for s in spans] == ["Dr. Who?", "Yes.", "Next para."]


def test_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="expects a str"):
        split_sentences(b"bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "!" * 200_000 + "x",
        ". " * 100_000 + "x",
        "aa.Bb" * 40_000,
        "a" * 200_000 + ". B",
        " " * 200_000 + ".",
        "1. " * 60_000,
        "\n- x" * 50_000,
        "\u3002" * 200_000,
        "a\u3002" * 100_000,
        "```\n" * 50_000,
        "```\nx\n" * 30_000,
        "<p>a</p>" * 25_000,
        "." + " " * 200_000 + "\u00bb",
        ". \u00bb" * 60_000,
    ],
)
def test_pathological_long_inputs_finish_and_keep_invariants(text: str) -> None:
    # A quadratic scan over these 200k-character inputs would not finish in any sane time.
    assert_invariants(text, split_sentences(text))


def test_long_text_equals_its_parts() -> None:
    # Joining paragraphs with blank lines must not change how each paragraph is split.
    paragraph = "Dr. Smith arrived at 3 p.m. on Friday. He left at 5.30! Why? Nobody knows... Then rain."
    expected = sentences(paragraph)
    text = "\n\n".join([paragraph] * 2000)
    assert sentences(text) == expected * 2000


_ALPHABET = st.sampled_from(
    list("aAbBzZ019 .!?\u2026\"')]([,;:@/-*#\u2022\n\t\r\u00a0\u2003\u2028\u201d\u2019\u00bb")
    + ["e.g. ", "U.S. ", "Dr. ", "The ", " etc. ", "www.", "\n\n", "\n- ", "\n1. ", "...", ". . .", "3.14"]
    + list("\u3002\uff01\uff1f\u061f\u0964\u00ab\u201e\u201c\u300c\u300d\u00a0\u200b\u4e00")
    + ["```", "\n```\n", "~~~", "<p>", "</p>", " \u00bb", "\u0627\u0644"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_invariants_on_sentence_like_text(text: str) -> None:
    spans = split_sentences(text)
    assert_invariants(text, spans)
    assert (spans == []) == (text.strip() == "")
    assert split_sentences(text) == spans


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_invariants_on_arbitrary_unicode(text: str) -> None:
    spans = split_sentences(text)
    assert_invariants(text, spans)
    assert (spans == []) == (text.strip() == "")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["Alpha beta.", "Gamma delta!", "Is it?", "Word \u2013 word."]),
        min_size=1,
        max_size=8,
    )
)
def test_plain_sentences_split_exactly(parts: list[str]) -> None:
    text = " ".join(parts)
    assert sentences(text) == parts
