"""Provence's ``process`` on ragprune, so code written for Provence runs unchanged.

Provence (naver/provence-reranker-debertav3-v1) is used as ``model.process(question, context, ...)``;
:class:`ProvenceModel` offers that call over a :class:`~ragprune.RerankPruner` (the shipped model, any
ragprune model or a Provence checkpoint folder), returning the dict Provence returns::

    model = ProvenceModel.load()                   # or ProvenceModel(RerankPruner.load("folder"))
    out = model.process("how long do fleas live?", "Fleas. Fleas live up to a year. Cats sleep.")
    out["pruned_context"], out["reranking_score"], out["compression_rate"]

Shapes follow Provence: a question and a context given as strings give scalars; a list of questions
with one list of contexts each gives nested lists ``[question][context]``; one question with a list of
contexts gives flat lists. ``reranking_score`` is the raw relevance logit (what Provence's ranking head
outputs; ``-inf`` for an empty context) and ``compression_rate`` the percentage (0-100) of the
context's characters pruning removed. ``pruned_context`` is built from the kept character spans, with
the original separators between them (ragprune's pruned text).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from ragprune.types import Document

if TYPE_CHECKING:
    from ragprune.pipeline.process import RerankPruner
    from ragprune.pipeline.results import PassageResult

FIRST_SENTENCE = "first_sentence"


class ProvenceModel:
    """A Provence-style front for a ``RerankPruner``: ``process(question, context, title=..., ...)``."""

    def __init__(self, pruner: RerankPruner) -> None:
        self.pruner = pruner

    @classmethod
    def load(cls, model: str | Path | None = None, **kwargs: Any) -> ProvenceModel:
        """``RerankPruner.load(model, **kwargs)`` behind Provence's API (``None``: the shipped model)."""
        from ragprune.pipeline.process import RerankPruner

        return cls(RerankPruner.load(model, **kwargs))

    def process(
        self,
        question: str | Sequence[str],
        context: str | Sequence[str] | Sequence[Sequence[str]],
        title: str | Sequence[Sequence[str]] | None = FIRST_SENTENCE,
        batch_size: int | None = None,
        threshold: float | None = None,
        always_select_title: bool = False,
        reorder: bool = False,
        top_k: int = 5,
        enable_warnings: bool = True,
    ) -> dict[str, Any]:
        """Prune (and score) each context for its question, as Provence's ``process`` does.

        ``title``: ``"first_sentence"`` treats each context's first sentence as its title (kept whatever
        its score when ``always_select_title``); a string (with a single context) or a
        ``[question][context]`` list of strings gives explicit titles, read as context for the score
        and, when ``always_select_title``, put before the pruned text; ``None``: no titles.
        ``threshold``: sentence keep threshold (``None``: the model's; Provence's own default is 0.1,
        which a Provence checkpoint loaded by ragprune also uses). ``reorder`` sorts each question's
        contexts by score and keeps the ``top_k`` best. ``batch_size`` and ``enable_warnings`` are
        accepted for compatibility (batching is the pruner's own). Raises ``ValueError`` when the
        numbers of questions, contexts and titles disagree.
        """
        del batch_size, enable_warnings
        scalar = isinstance(question, str) and isinstance(context, str)
        questions, contexts, flat = _nested_inputs(question, context)
        titles = _nested_titles(title, contexts)
        documents = [
            [Document(str(j), text, title=titles[i][j] if titles else "") for j, text in enumerate(texts)]
            for i, texts in enumerate(contexts)
        ]
        results = self.pruner.process(questions, documents, threshold=threshold, reorder=reorder)
        keep_first = always_select_title and title == FIRST_SENTENCE
        keep_title = always_select_title and titles is not None
        out: dict[str, list] = {"pruned_context": [], "reranking_score": [], "compression_rate": []}
        for result in results:
            passages = result.passages[:top_k] if reorder else result.passages
            if keep_first:
                passages = [_with_first_sentence_kept(p) for p in passages]
            out["pruned_context"].append([_pruned_context(p, keep_title) for p in passages])
            out["reranking_score"].append([p.logit for p in passages])
            out["compression_rate"].append([100.0 * p.compression for p in passages])
        if scalar:
            return {key: values[0][0] for key, values in out.items()}
        if flat:
            return {key: values[0] for key, values in out.items()}
        return out


def _nested_inputs(
    question: str | Sequence[str], context: str | Sequence[str] | Sequence[Sequence[str]]
) -> tuple[list[str], list[list[str]], bool]:
    """Questions and one list of contexts per question, and whether the caller gave one flat list."""
    if isinstance(question, str):
        if isinstance(context, str):
            return [question], [[context]], False
        if _all_strings(context):
            return [question], [list(context)], True
        if len(context) == 1:
            return [question], [list(context[0])], False
        raise ValueError(
            f"one question but {len(context)} lists of contexts; pass a list of questions, one per list"
        )
    questions = list(question)
    if isinstance(context, str) or not all(not isinstance(c, str) for c in context):
        raise ValueError("with a list of questions, pass one list of contexts per question ([[...], [...]])")
    if len(context) != len(questions):
        raise ValueError(
            f"{len(questions)} questions but {len(context)} lists of contexts; pass one per question"
        )
    return questions, [list(c) for c in context], False


def _all_strings(items: Sequence[str] | Sequence[Sequence[str]]) -> TypeGuard[Sequence[str]]:
    return all(isinstance(item, str) for item in items)


def _nested_titles(title: Any, contexts: list[list[str]]) -> list[list[str]] | None:
    if title is None or title == FIRST_SENTENCE:
        return None
    if isinstance(title, str):
        if sum(len(c) for c in contexts) != 1:
            raise ValueError("a single title string goes with a single context; pass [[title, ...], ...]")
        return [[title]]
    titles = [list(t) for t in title]
    if [len(t) for t in titles] != [len(c) for c in contexts]:
        raise ValueError(
            "title must be 'first_sentence', None or one title per context ([question][context])"
        )
    return titles


def _with_first_sentence_kept(passage: PassageResult) -> PassageResult:
    if not passage.sentences or passage.sentences[0].kept:
        return passage
    first = dataclasses.replace(passage.sentences[0], kept=True)
    return dataclasses.replace(passage, sentences=[first, *passage.sentences[1:]])


def _pruned_context(passage: PassageResult, with_title: bool) -> str:
    title = passage.document.title
    if with_title and title:
        return f"{title}\n{passage.pruned_text}" if passage.pruned_text else title
    return passage.pruned_text
