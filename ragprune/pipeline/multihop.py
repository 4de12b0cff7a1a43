"""Multi-hop pruning: the query of the second pass carries the evidence the first pass kept.

A bridge passage of a multi-hop question (HotpotQA: "Which magazine was started first, the one that
employs X or ...") names an entity that the question does not: alone it looks irrelevant to the
question, and a per-passage pruner drops it. Appending the sentences kept from the top-ranked passages
to the query lets the second pass see the bridge entity. The design follows the iterative-retrieval
idea of multi-hop QA systems (e.g. Xiong et al., "Answering Complex Open-Domain Questions with
Multi-Hop Dense Retrieval", ICLR 2021, Sec. 2: the second hop's query is the question plus the first
hop's passage), applied to sentence selection instead of retrieval.

Training (``training/build_spliced.py``) builds second-hop examples with the same function, so the
model sees the query format it gets at inference time.
"""

from __future__ import annotations

from dataclasses import replace

from ragprune.pipeline.results import PassageResult, QueryResult, SentenceScore

EVIDENCE_SEPARATOR = " | "
"""Between the question and the evidence, and between evidence sentences (plain text, so any
tokenizer keeps it)."""


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


def merge_hop(first: PassageResult, second: PassageResult) -> PassageResult:
    """``first`` with each sentence's score raised to its second-hop score where that is higher and kept
    when either pass kept it (so every sentence reduction's own keep rule holds, ``vote`` included); the
    passage's logit, probability and rank stay those of the first pass (hops change pruning only)."""
    sentences = [
        SentenceScore(a.span, max(a.score, b.score), a.kept or b.kept)
        for a, b in zip(first.sentences, second.sentences, strict=True)
    ]
    return replace(first, sentences=sentences)
