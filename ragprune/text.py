"""Sentence segmentation with exact character offsets.

Pruning keeps or drops whole sentences, and every kept piece must be a span into the caller's
original text, so the splitter returns ``Span`` offsets rather than rewritten strings. It is a small
deterministic rule set (compiled regular expressions, no model, no state) because it runs on every
passage the pipeline sees and must be fast, offline and reproducible.

Guarantees, for any input string: the spans are sorted, non-overlapping and non-empty; each starts
and ends on a non-whitespace character; every non-whitespace character lies inside a span, so the
text between spans is whitespace only and spans plus gaps reproduce the input exactly.

Rules (English-oriented, with the sentence ends of other scripts):

* A run of ``.``, ``!``, ``?`` (or ``‼``, Arabic ``؟`` and ``۔``, Devanagari ``।`` and ``॥``),
  with any closing quotes or brackets right after it, ends a sentence when whitespace follows and the
  next character is not lowercase and not one of ``,;:.``. So a sentence that starts in lowercase is
  not split off (rare in edited text, common in chat logs). Closing quotes include the German ``“``
  and ``‘`` (``„Komm.“ Dann``), guillemets both ways (``«Viens.»``, ``»Komm.«``), French spaced
  guillemets (``« Viens. » Puis``) and CJK brackets (``」``, ``』``, ``）``).
* The CJK full stop, exclamation and question marks (``。``, ``｡``, ``！``, ``？``) end a sentence
  whatever follows, since CJK text puts no space between sentences.
* A full stop does not end a sentence after a known abbreviation: capitalised titles (``Dr.``,
  ``Mr.``, ``St.``) and ``e.g.``, ``i.e.``, ``vs.``, ``cf.``; words that precede a number when a digit
  follows (``No. 5``, ``Fig. 2``, ``Jan. 5``); words that may also close a sentence, unless an
  uppercase letter follows (``etc.``, ``Inc.``, ``Jr.``, ``et al.``); and dotted initialisms or single
  letters (``U.S.``, ``Ph.D.``, ``a.m.``, ``J.``) unless the next word is a common sentence starter
  (``U.S. Army`` stays together, ``in the U.S. The`` splits). A number or single letter that opens a
  sentence or line or follows a colon (``1.``, ``b.``) is a list marker, not a sentence.
* An ellipsis (``...``, ``. . .``, ``\u2026``) ends a sentence only before an uppercase letter.
* Decimals, URLs and e-mail addresses contain no full stop followed by whitespace, so they never split.
* Text glued without a space (an MS MARCO artefact, ``fleas.The cat``): a terminator between an
  all-lowercase word of two or more letters and an uppercase letter followed by a lowercase one is a
  boundary, unless the word is an abbreviation or the token is a URL or e-mail address
  (``System.Console``, ``obj.method.Call`` and ``Node.js`` stay whole). A terminator followed
  directly by a lowercase letter (``Control.ancel``) is never a boundary.
* Layout: a blank line is a boundary, and so are the start and end of a list-item line (a line that
  starts with a bullet, ``#`` heading marker, ``1.``, ``1)``, ``a)`` and so on), and HTML paragraph
  tags (before ``<p>``, after ``</p>``). A single newline inside running text is not a boundary (it is
  usually a line wrap).
* A fenced code block (a line opening with three or more backticks or tildes, up to the closing fence
  line or the end of the text) is one sentence: nothing inside it splits, and it splits from its
  neighbours.

Not handled: sentence ends inside a quote that the next sentence continues, and scripts without
sentence punctuation (Thai). ``eval/bench_split.py`` measures speed and agreement with the pruning data
sets' own sentence boundaries.
"""

from __future__ import annotations

import re
from bisect import bisect_right

from ragprune.types import Span

__all__ = ["sentence_bounds", "split_sentences"]

_CLOSERS = (
    "\"'\u201d\u2019\u201c\u2018\u00bb\u00ab\u203a\u2039)]}"
    "\u300d\u300f\uff09\u3011\u3015\u3009\u300b\u3017\u3019\u301b\uff02\uff07\uff3d\uff5d"
)
_UNSPACED_TERMINATORS = "\u3002\uff61\uff01\uff1f"  # CJK: a sentence end whatever follows
_TERMINATORS = ".!?\u2026\u203c\u2047\u2048\u2049\u061f\u06d4\u0964\u0965" + _UNSPACED_TERMINATORS

# A terminator run and its closing quotes/brackets (a French closing guillemet may stand after a
# space), then optionally either whitespace (consumed) up to the next visible character, or a glued
# capitalised word. Every run matches whole, whatever follows it, so the scan never restarts inside a
# long run of punctuation (no quadratic retries).
_TERMINATOR = re.compile(
    rf"(?P<term>[{re.escape(_TERMINATORS)}]++)"
    rf"(?P<close>(?:[{re.escape(_CLOSERS)}]|[^\S\n]++[\u00bb\u203a])*+)"
    r"(?:\s++(?=(?P<next>\S))|(?P<glued>(?=[A-Z][a-z])))?"
)
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
_PARAGRAPH_TAG = re.compile(r"(?P<open><p(?:\s[^<>]*)?>)|</p\s*>", re.IGNORECASE)
_FENCE = re.compile(r"^[^\S\n]{0,3}(?P<fence>`{3,}|~{3,})(?P<rest>[^\n]*)", re.MULTILINE)
_LIST_ITEM = re.compile(
    r"^[^\S\n]*(?:[-*+\u2022\u25e6\u25aa\u2023\u25cf\u25cb\u25a0\u25a1\u25ba\u25b8\u27a2\u2013]|#{1,6}"
    r"|\(?\d{1,3}[.)]|\(?[A-Za-z][.)])(?=[^\S\n]+\S)",
    re.MULTILINE,
)
_TOKEN_BEFORE = re.compile(r"[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*\Z")
_INITIALISM = re.compile(r"[A-Za-z]\Z|(?:[A-Za-z]{1,2}\.)+[A-Za-z]{1,2}\Z")
_WORD_AFTER = re.compile(r"[A-Za-z]+")
_TOKEN_WINDOW = 32  # longest token looked at before a full stop; longer words are never abbreviations
_URL_WINDOW = 64  # how far a glued terminator looks either side for URL/e-mail markers


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


_TITLES = _words(
    "mr mrs ms mx dr prof rev hon sen rep gov gen col lt capt sgt maj cmdr adm pres supt st mt ft "
    "messrs mme mlle fr dept univ assn ave blvd"
)
_NEVER_END = _words("e.g i.e vs cf viz approx esp")
_BEFORE_NUMBER = _words(
    "no nos vol vols fig figs eq eqs ch chap sec pp art ref refs ed est ca op "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
_MAY_END = _words("etc inc ltd co corp jr sr bros al")
_SENTENCE_STARTERS = _words(
    "The A An This That These Those It Its In On At For If When While He She They We I You There Here "
    "His Her Their Our My Your As But And So However Also Some Many Most All Each Other One What Which "
    "Who How Why Where After Before During Since To From By With Although Because Then Today Yes No "
    "Not Now Thus Therefore Both Such Only Later Finally"
)


def split_sentences(text: str) -> list[Span]:
    """Split ``text`` into sentences, returned as sorted character spans into ``text``.

    Empty or whitespace-only text gives ``[]``. See the module docstring for the rules.
    """
    return [Span(start, end) for start, end in sentence_bounds(text)]


def sentence_bounds(text: str) -> list[tuple[int, int]]:
    """The sentences of :func:`split_sentences` as ``(start, end)`` character offsets (no ``Span`` objects:
    the pipeline keeps them in flat arrays)."""
    if not isinstance(text, str):
        raise TypeError(f"split_sentences expects a str, got {type(text).__name__}")
    boundaries = _layout_boundaries(text)
    boundaries.extend(_punctuation_boundaries(text))
    blocks = _code_blocks(text)
    if blocks:  # a code block is one sentence: its edges are boundaries, nothing inside is
        starts = [block_start for block_start, _ in blocks]
        boundaries = [b for b in boundaries if not _inside(blocks, starts, b)]
        boundaries.extend(edge for block in blocks for edge in block)
    bounds: list[tuple[int, int]] = []
    start = 0
    for end in sorted(set(boundaries)) + [len(text)]:
        if end <= start:
            continue
        segment = text[start:end]
        lead = len(segment) - len(segment.lstrip())
        kept = len(segment.rstrip())
        if kept > lead:
            bounds.append((start + lead, start + kept))
        start = end
    return bounds


def _layout_boundaries(text: str) -> list[int]:
    """Boundaries from blank lines, list-item lines and HTML paragraph tags."""
    out = [m.start() for m in _BLANK_LINE.finditer(text)]
    for m in _LIST_ITEM.finditer(text):
        out.append(m.start())
        out.append(_line_end(text, m.end()))
    out.extend(m.start() if m.group("open") else m.end() for m in _PARAGRAPH_TAG.finditer(text))
    return out


def _code_blocks(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each fenced code block: from its opening fence line to the end of its closing
    fence line (a line of at least as many of the same fence character), or to the end of the text."""
    blocks = []
    opening = None
    for m in _FENCE.finditer(text):
        if opening is None:
            opening = m
            continue
        fence, opened = m.group("fence"), opening.group("fence")
        if fence[0] == opened[0] and len(fence) >= len(opened) and not m.group("rest").strip():
            blocks.append((opening.start(), _line_end(text, m.end())))
            opening = None
    if opening is not None:
        blocks.append((opening.start(), len(text)))
    return blocks


def _inside(blocks: list[tuple[int, int]], starts: list[int], pos: int) -> bool:
    """Whether ``pos`` lies strictly inside one of the sorted, disjoint ``blocks``."""
    i = bisect_right(starts, pos) - 1
    return i >= 0 and blocks[i][0] < pos < blocks[i][1]


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def _punctuation_boundaries(text: str) -> list[int]:
    """Boundaries after sentence-ending punctuation, in text order."""
    out = [0]
    for m in _TERMINATOR.finditer(text):
        term_start = m.start("term")
        if any(char in _UNSPACED_TERMINATORS for char in m.group("term")):
            out.append(m.end("close"))
        elif m.group("glued") is not None:
            if _glued_boundary(text, term_start, m.end(), m.group("close")):
                out.append(m.end())
        elif m.group("next") is not None and _spaced_boundary(
            text, term_start, m.group("term"), m.end(), out[-1]
        ):
            out.append(m.end("close"))
    return out[1:]


def _spaced_boundary(text: str, term_start: int, term: str, next_pos: int, sentence_start: int) -> bool:
    """Whether a terminator followed by whitespace and then ``text[next_pos]`` ends a sentence.

    ``sentence_start`` is the previous boundary found, so a list marker (``1.``) opening a sentence
    can be told from a number closing one.
    """
    nxt = text[next_pos]
    if nxt.islower() or nxt in ",;:.":
        return False  # a following "." continues a spaced ellipsis (". . .")
    if "\u2026" in term or ".." in term:
        return nxt.isupper()
    if term[0] != ".":
        return True
    token = _token_before(text, term_start)
    if token is None:
        return True
    key = token.lower()
    if key in _NEVER_END or (key in _TITLES and token[0].isupper()):
        return False
    if key in _BEFORE_NUMBER and nxt.isdigit():
        return False
    if key in _MAY_END:
        return nxt.isupper()
    is_marker = len(token) == 1 or (len(token) <= 3 and token.isdigit())
    if is_marker and _opens_sentence(text, term_start - len(token), sentence_start):
        return False  # list marker such as "1." or "b."
    if _INITIALISM.match(token):
        word = _WORD_AFTER.match(text, next_pos)
        return word is not None and word.group() in _SENTENCE_STARTERS
    return True


def _glued_boundary(text: str, term_start: int, after: int, close: str) -> bool:
    """Whether a terminator glued to a following capitalised word (``fleas.The``) ends a sentence."""
    token = _token_before(text, term_start)
    if close or token is None or len(token) < 2 or not (token.isalpha() and token.islower()):
        return False
    if token in _NEVER_END or token in _TITLES or token in _BEFORE_NUMBER or token in _MAY_END:
        return False
    left = text[max(0, term_start - _URL_WINDOW) : term_start].split()[-1]
    around = left + text[after : after + _URL_WINDOW].split()[0]
    return not ("@" in around or "://" in around or "/" in around or "www." in around.lower())


def _token_before(text: str, pos: int) -> str | None:
    """The alphanumeric token (with inner full stops) that ends right before ``pos``."""
    m = _TOKEN_BEFORE.search(text, max(0, pos - _TOKEN_WINDOW), pos)
    if m is None or (m.start() > 0 and text[m.start() - 1].isalnum()):
        return None
    return m.group()


def _opens_sentence(text: str, pos: int, sentence_start: int) -> bool:
    """Whether only spaces or an opening bracket stand between ``pos`` and the sentence or line start,
    or a colon or semicolon (``Steps: 1. Mix``)."""
    i = pos - 1
    while i >= sentence_start and text[i] in " \t(":
        i -= 1
    return i < sentence_start or text[i] in "\n:;"
