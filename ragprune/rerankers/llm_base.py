"""What the decoder-LLM rerankers (:class:`~ragprune.rerankers.first_llm.FirstLLM`,
:class:`~ragprune.rerankers.full_rank_llm.FullRankLLM`) share: loading a Hugging Face causal LM from a local
folder, fitting a prompt into the context, and turning a ranking into ``QueryResult``\\ s.

An LLM reranker returns an order, not a score per passage. The results carry a rank score that sorts the
list: ``logit`` is ``n - position`` (``n`` for the best of the ``n`` ranked passages, 1 for the last) and
``probability`` the reciprocal rank ``1 / (position + 1)`` (rank_llm's own rescoring); neither is a calibrated
probability, and neither compares across queries. Passages without a visible character are not shown to the
model: they come last with ``logit = -inf`` and probability 0, as in every backend. Nothing is pruned: every
sentence is kept. A passage whose prompt text was cut to the method's word limit has ``"text"`` in
``PassageResult.truncated`` (the published methods show the model only each passage's first words).
"""

from __future__ import annotations

import importlib.util
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragprune.normalize import is_blank, repair_text
from ragprune.pipeline.results import PassageResult, QueryResult, SentenceScore
from ragprune.rerankers.base import Reranker
from ragprune.rerankers.llm_prompts import TextFix
from ragprune.text import split_sentences
from ragprune.types import Document, Query

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class LLMPrompt:
    """One prompt as the model reads it: ``text`` (chat template applied), ``input_ids`` (what the forward
    pass gets, ``[len]`` token ids) and, per passage shown, whether its words were cut (``cut``)."""

    text: str
    input_ids: list[int]
    cut: tuple[bool, ...]


@dataclass(frozen=True)
class Ranked:
    """A backend's ranking of one query's visible passages: ``order`` (0-based positions in the list the
    backend got, best first), ``cut`` (positions whose prompt text was cut) and the backend's ``report``."""

    order: list[int]
    cut: set[int]
    report: Any


def resolve_fix_text(fix_text: bool | TextFix, owner: str) -> TextFix | None:
    """``ftfy.fix_text`` for ``True`` (``ImportError`` naming the fix when ftfy is missing), ``None`` for
    ``False``, or the caller's own function."""
    if fix_text is False:
        return None
    if fix_text is True:
        if importlib.util.find_spec("ftfy") is None:
            raise ImportError(
                f"{owner} passes passages and prompts through ftfy.fix_text, as the published code does; "
                "install it with `pip install ftfy`, or pass fix_text=False to use the text as given "
                "(prompts then differ from the published ones wherever ftfy would change the text: "
                "mojibake, curly quotes, ligatures, full-width characters)"
            )
        import ftfy

        return ftfy.fix_text
    return fix_text


def checkpoint_folder(model_path: str | Path, owner: str) -> Path:
    """``model_path`` as a folder holding a Hugging Face checkpoint (``config.json``), or
    ``FileNotFoundError`` that says how to get one (nothing is downloaded at run time)."""
    folder = Path(model_path).expanduser()
    if not (folder / "config.json").is_file():
        what = "does not exist" if not folder.exists() else "has no config.json"
        raise FileNotFoundError(
            f"{owner} loads a Hugging Face causal LM from a local folder, and {folder} {what}. Download "
            "the checkpoint where a model hub is reachable (e.g. `huggingface-cli download "
            "castorini/first_mistral --local-dir first_mistral`), copy the folder here and pass its path; "
            "ragprune never downloads at run time"
        )
    return folder


class CausalLMReranker(Reranker):
    """Base of the decoder-LLM backends: loads ``AutoModelForCausalLM`` and its tokenizer from a local folder.

    ``device`` ``None``: CUDA when available, else CPU. ``dtype`` (a ``torch.dtype`` or its name) ``None``:
    bfloat16 on CUDA (as the published runs), float32 on CPU. ``context_size`` is the prompt + answer token
    budget; passages start at ``max_passage_words`` words and lose words until the prompt fits (the published
    rule). ``fix_text``: ``True`` passes text through ``ftfy.fix_text`` as the published code does (needs
    ``ftfy``), ``False`` keeps it as given, or a function of your own. Raises ``FileNotFoundError`` for a
    folder without a checkpoint.
    """

    score_key = "llm"

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: str | None = None,
        dtype: Any = None,
        context_size: int,
        max_passage_words: int,
        fix_text: bool | TextFix = True,
    ) -> None:
        owner = type(self).__name__
        if context_size < 1 or max_passage_words < 0:
            raise ValueError(
                f"context_size={context_size}, max_passage_words={max_passage_words}; "
                "need context_size >= 1 and max_passage_words >= 0"
            )
        self.fix = resolve_fix_text(fix_text, owner)
        folder = checkpoint_folder(model_path, owner)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype is None:
            dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
        elif isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, local_files_only=True)
        self.model.to(self.device).eval()  # type: ignore[arg-type]
        self.model_path = folder
        self.context_size = context_size
        self.max_passage_words = max_passage_words
        self.last_reports: list[Any] = []

    def score_lists(
        self,
        queries: list[Query],
        documents: list[list[Document]],
        *,
        threshold: float | None = None,
        truncate: bool = False,
    ) -> list[QueryResult]:
        """Rank scores in input order (see :meth:`Reranker.score_lists`). ``threshold`` and ``truncate`` do
        not apply: nothing is pruned, and passages are cut to the method's word limit (reported in
        ``truncated``). Each query's backend report (windows or permutation repair) is in ``last_reports``,
        one per query, after the call."""
        results, reports = [], []
        for query, docs in zip(queries, documents):
            visible = [i for i, doc in enumerate(docs) if not is_blank(doc.text)]
            ranked = self._rank(query, [docs[i] for i in visible])
            reports.append(ranked.report)
            position = {visible[j]: p for p, j in enumerate(ranked.order)}
            cut = {visible[j] for j in ranked.cut}
            passage_results = [
                self._passage(doc, i, position.get(i), len(visible), i in cut) for i, doc in enumerate(docs)
            ]
            results.append(QueryResult(query, passage_results))
        self.last_reports = reports
        return results

    @abstractmethod
    def _rank(self, query: Query, docs: list[Document]) -> Ranked:
        """Rank ``docs`` (every one visible) for ``query``."""

    def _passage(
        self, doc: Document, index: int, position: int | None, count: int, cut: bool
    ) -> PassageResult:
        if position is None:  # blank: never shown to the model
            return PassageResult(doc, index, float("-inf"), 0.0, scores={self.score_key: float("-inf")})
        score = float(count - position)
        sentences = [SentenceScore(span, 1.0, True) for span in split_sentences(doc.text)]
        return PassageResult(
            doc,
            index,
            score,
            1.0 / (position + 1),
            sentences,
            chunks=1,
            truncated=("text",) if cut else (),
            scores={self.score_key: score},
        )

    @staticmethod
    def _texts(doc: Document) -> tuple[str, str]:
        """The passage's text and title with lone surrogates shown as U+FFFD (tokenizers refuse them)."""
        return repair_text(doc.text), repair_text(doc.title)

    def _fit(
        self, render: Callable[[int], tuple[str, tuple[bool, ...]]], count: int, output_tokens: int
    ) -> tuple[str, tuple[bool, ...]]:
        """``render(max_words)`` with the most words per passage (from ``max_passage_words`` down) whose
        prompt leaves ``output_tokens`` of ``context_size``; the published step:
        ``max(1, excess // (4 * count))`` words fewer per try, tokens counted by the tokenizer's encode,
        special tokens included. ``ValueError`` when even 0 words per passage do not fit."""
        budget = self.context_size - output_tokens
        words = self.max_passage_words
        while True:
            text, cut = render(words)
            used = len(self.tokenizer(text)["input_ids"])
            if used <= budget:
                return text, cut
            if words == 0:
                raise ValueError(
                    f"{type(self).__name__}: the prompt for {count} passages takes {used} tokens with no "
                    f"passage text, more than context_size={self.context_size} minus {output_tokens} answer "
                    "tokens; raise context_size or pass fewer passages (or a shorter query)"
                )
            words = max(0, words - max(1, (used - budget) // (4 * max(count, 1))))

    def _tensor(self, input_ids: list[int]) -> torch.Tensor:
        import torch

        return torch.tensor([input_ids], dtype=torch.long, device=self.device)
