"""Multi-hop pruning: a second pass, with the first hop's kept evidence in the query, picks the passages
of the evidence chain, and only the chain's passages keep sentences.

A bridge passage of a multi-hop question (HotpotQA: "Which magazine was started first, the one that
employs X or ...") names an entity that the question does not: alone it looks irrelevant to the
question. Appending the sentences kept from the top-ranked passages to the query lets the second pass
see the bridge entity, and so choose which passages join the evidence chain. The second pass never
adds a sentence: the kept text is a subset of the first pass's (a bridge passage the first pass dropped
stays dropped), which trades recall for compression (HotpotQA dev at the default threshold, paragraphs
with their titles: 65% of tokens removed at gold recall 0.915, against 47% at 0.948 in one pass; without
titles 64% at 0.869, against 45% at 0.956; ``eval/results/multihop_dev_cpu.md``, with its caveats).
The design follows the iterative-retrieval idea of multi-hop QA systems (Xiong et al., "Answering
Complex Open-Domain Questions with Multi-Hop Dense Retrieval", ICLR 2021, Sec. 2: the second hop's query
is the question plus the first hop's passage), applied to passage selection before sentence selection.

The policy (``process(..., hops=2)``):

1. The first pass scores every passage; its ``hop_passages`` best are the first hop (the evidence
   sources). Their kept sentences, appended to the question, are the second-hop query
   (:func:`expand_query`).
2. The second pass scores every other passage with that query. A passage's chain score is the sum of its
   two hops' rank logits (log-odds: the product of the two odds), as beam search over evidence chains
   scores a chain by combining its hops' scores (Xiong et al. 2021; Zhao et al., "Multi-Step Reasoning
   Over Unstructured Text with Beam Dense Retrieval", NAACL 2021). Passages that the question or the
   evidence names by their title (:func:`linked_passages`) come first, then the others by chain score;
   the ``BRIDGE_PASSAGES`` first join the chain. A title named in the evidence stands for the hyperlink
   that multi-hop retrievers over Wikipedia follow from one hop's passage to the next (Asai et al.,
   "Learning to Retrieve Reasoning Paths over Wikipedia Graph for Question Answering", ICLR 2020,
   Sec. 3.1); a title named in the question is the title matching of HotpotQA paragraph selectors (Fang
   et al. 2020, below). On the HotpotQA training file with titles, at 4 bridge passages, links raise
   gold recall from 0.933 to 0.961 at the same compression (the chain without titles: 0.946;
   ``eval/results/multihop_train.md``). Links take precedence over any logit, which suits titles that
   name distinct entities (Wikipedia-style); passages without a title are ranked by chain score alone.
3. Sentence decisions are the first pass's inside the chain; a passage outside it keeps nothing. This
   is paragraph selection before supporting-sentence selection, as HotpotQA systems do (Fang et al.,
   "Hierarchical Graph Network for Multi-hop Question Answering", EMNLP 2020, Sec. 3.1: a first-hop
   and a second-hop paragraph selection, then sentences only from the selected paragraphs), and what
   Provence (Chirkova et al., ICLR 2025) leaves to the reranker's cut-off. The first pass's sentence
   score estimates P(sentence needed | the passage holds the answer), which is the right quantity once
   the chain has decided which passages hold it.

Why not the second pass's sentence scores, nor the rise of a passage's score: on the HotpotQA *training*
file (``eval/multihop_train.py``, ``eval/results/multihop_train.md``) the expanded query raises
distractors more than the missing supporting passage (ranking the missing gold passage above a
distractor, paragraphs with titles: first-pass logit 0.72 of pairs, second-hop logit 0.76, their sum
0.78, the rise 0.41), and keeping the higher of the two passes' sentence scores added 290 distractor
sentences against 13 in gold passages.

Training (``training/build_spliced.py``) builds second-hop examples with :func:`expand_query`, so the
model sees the query format it gets at inference time.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ragprune.pipeline.results import PassageResult, QueryResult

EVIDENCE_SEPARATOR = " | "
"""Between the question and the evidence, and between evidence sentences (plain text, so any
tokenizer keeps it)."""

BRIDGE_PASSAGES = 4
"""Passages besides the first hop's that the chain keeps. Chosen for the chain without title links on the
HotpotQA training file only (``eval/multihop_train.py``) by a rule fixed before its table: the most tokens
removed at the default threshold with gold recall >= 0.93. When the links were added the budget was kept,
not chosen again: that rule would now pick 1 on train (recall 0.938, 84% removed), but HotpotQA dev had
shown its margin too small for chain policies (train 0.946 -> dev 0.869), so this decision was informed by
a dev figure (``eval/results/multihop_dev_cpu.md``). With links and titles: train recall 0.961 at 0.671
removed (``eval/results/multihop_train.md``); dev, measured once: 0.915 at 0.652."""


def expand_query(query: str, evidence: list[str]) -> str:
    """The second-hop query: ``query`` followed by the ``evidence`` sentences, in the order given.

    Args:
        query: the user's question, unchanged.
        evidence: sentence texts kept from the first hop's top passages (empty strings are skipped).

    Returns:
        ``query`` itself when there is no evidence, otherwise ``"query | sentence | sentence"``.
        The caller cuts the result to the model's query-token limit.
    """
    parts = [query.strip()] + [text.strip() for text in evidence if text.strip()]
    return EVIDENCE_SEPARATOR.join(parts)


def evidence_of(result: QueryResult, top_passages: int) -> tuple[list[str], set[int]]:
    """Kept sentence texts of the ``top_passages`` best-scored passages (best first, sentences in text
    order), and the input indices of those passages."""
    ranked = sorted(result.passages, key=lambda p: (-p.logit, p.index))[:top_passages]
    texts = [p.document.text[s.span.start : s.span.end] for p in ranked for s in p.sentences if s.kept]
    return texts, {p.index for p in ranked}


def second_hop_passages(result: QueryResult, sources: set[int]) -> list[PassageResult]:
    """The passages the second hop re-scores: those outside the first hop's ``sources`` that have
    sentences, in input order."""
    return [p for p in result.passages if p.index not in sources and p.sentences]


def linked_passages(result: QueryResult, sources: set[int], evidence: list[str]) -> set[int]:
    """Input indices of the passages outside ``sources`` whose title the question (``result.query``) or
    an ``evidence`` sentence names: the title, without a trailing parenthesised qualifier ("Mercury
    (planet)" → "mercury"), as whole words inside one of those texts, ignoring case. When several
    passages share one title (chunks of one document; titles differing only in their qualifier are
    different documents), only the one with the highest first-pass logit is linked. Passages without
    a title, or whose title is only :data:`FUNCTION_WORDS` ("It (novel)", "Who"), are never linked.
    Titles are compared as given: no Unicode normalisation, and only in text with spaces between
    words (titles in scripts without them, e.g. Chinese, rarely link).
    """
    text = "\n".join([result.query.text, *evidence]).casefold()  # a title never spans two texts
    best: dict[str, PassageResult] = {}  # title -> its linked passage
    for passage in second_hop_passages(result, sources):
        title = passage.document.title.strip().casefold()
        name = _TITLE_QUALIFIER.sub("", title)
        if not set(name.split()) - FUNCTION_WORDS or (title in best and best[title].logit >= passage.logit):
            continue
        if title in best or re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text):
            best[title] = passage
    return {passage.index for passage in best.values()}


FUNCTION_WORDS = frozenset(
    (  # noqa: SIM905 (a list literal would take a line per word)
        "a an the it its is are was be this that these those he she they we you i me my his her their our"
        " of in on at to for from by with and or not no who whom whose what which when where why how"
    ).split()
)
"""English function and question words: a title made only of them ("It", "The", "Who") would link to
almost any question or evidence."""
_TITLE_QUALIFIER = re.compile(r"\s*\([^()]*\)\s*$")
"""A trailing "(qualifier)" of a title, as Wikipedia disambiguates pages."""


def chain_of(
    result: QueryResult,
    sources: set[int],
    second_logits: dict[int, float],
    bridges: int = BRIDGE_PASSAGES,
    linked: set[int] | None = None,
) -> set[int]:
    """Input indices of the evidence chain: the first hop's ``sources`` and ``bridges`` other passages
    with sentences: the ``linked`` ones (:func:`linked_passages`) first, then those with the highest chain
    score (first-pass logit + second-hop logit); ties: input order.

    ``second_logits`` maps a passage's index to its second-hop logit. A passage without one (the query had
    no evidence to add, so its second-hop query would be the question itself) counts its first-pass logit
    twice, so without any second pass or link the chain is the first pass's top ``len(sources) + bridges``.
    """
    linked = linked or set()
    others = second_hop_passages(result, sources)
    others.sort(
        key=lambda p: (p.index not in linked, -(p.logit + second_logits.get(p.index, p.logit)), p.index)
    )
    return sources | {p.index for p in others[:bridges]}


def keep_chain(result: QueryResult, chain: set[int]) -> QueryResult:
    """``result`` with every passage outside ``chain`` keeping no sentence (its sentence scores, logit,
    probability and rank unchanged: hops change pruning only); the chain's passages as they are."""
    result.passages = [p if p.index in chain else _keep_nothing(p) for p in result.passages]
    return result


def _keep_nothing(passage: PassageResult) -> PassageResult:
    return replace(passage, sentences=[replace(s, kept=False) for s in passage.sentences])
