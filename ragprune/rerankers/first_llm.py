"""FIRST: listwise reranking from the first generated token's logits (Reddy et al., EMNLP 2024).

A decoder LLM fine-tuned for listwise ranking (rank_llm's ``FirstMistral``, ``castorini/first_mistral``) gets
the rank_llm "alpha" prompt: the query and up to 20 passages labelled ``[A]`` .. ``[T]``, through the
tokenizer's chat template, followed by ``"["``. Instead of generating a permutation, one forward pass reads
the logits of the first generated token over the identifiers' token ids, and the window is sorted by them.
Windows of 20 slide from the bottom of the list to the top with stride 10, so strong passages bubble up.
Prompt strings and procedure: see :mod:`ragprune.rerankers.llm_prompts` for the sources (castorini/rank_llm).

Differences from rank_llm, on purpose:

- the logits are the model's full-vocabulary logits at the first generated position; rank_llm's vLLM path
  sees only the top-30 log-probabilities, so identifiers can drop out there and get appended in input order.
  Here every identifier of the window has a logit, so no identifier is ever missing or out of range, and
  there is nothing to repair (ties keep the window's input order);
- one forward pass per window with ``transformers`` (no vLLM); the prompt is tokenized as the chat template
  wrote it (``add_special_tokens=False``, the template's own BOS), where vLLM's string prompts get a second
  BOS in front for templates that start with one;
- ``trust_remote_code`` is never set.

Published effectiveness (the authors' and rank_llm's numbers, not measured here): FirstMistral reranking BM25
top-100, nDCG@10 0.7294 on TREC DL19 and 0.7043 on DL20.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragprune.pipeline.inputs import PassageLike, as_documents
from ragprune.pipeline.modes import sliding_windows
from ragprune.rerankers.llm_base import CausalLMReranker, LLMPrompt, Ranked
from ragprune.rerankers.llm_prompts import (
    FIRST_ANSWER_PREFIX,
    FIRST_CONTEXT_SIZE,
    FIRST_MAX_PASSAGE_WORDS,
    TextFix,
    alpha_identifier,
    alpha_ranking,
    first_messages,
    passage_content,
)
from ragprune.types import Document, Query

if TYPE_CHECKING:
    import torch

FIRST = "first"
"""The key of FIRST's rank score in ``PassageResult.scores``."""


@dataclass(frozen=True)
class FirstWindow:
    """One window of a FIRST ranking.

    ``start``/``end``: the ``[start, end)`` slice of the list as it stood when this window ran; ``shown``:
    the caller's passage indices labelled ``A``, ``B``, ... in that order; ``logits``: the first-token logit
    of each identifier (same order as ``shown``); ``order``: the window's positions best first (0 = ``A``),
    i.e. sorted by ``logits`` descending, ties in input order.
    """

    start: int
    end: int
    shown: tuple[int, ...]
    logits: tuple[float, ...]
    order: tuple[int, ...]


class FirstLLM(CausalLMReranker):
    """FIRST reranking with a Hugging Face causal LM from a local folder (e.g. ``castorini/first_mistral``).

    ``window`` passages per prompt (at most 26: identifiers are the letters ``A``..``Z``, each of which must
    be one token of the tokenizer, else ``ValueError``), ``stride`` between windows (1..``window``). The
    tokenizer needs a chat template (``ValueError`` otherwise). ``context_size`` 4096 tokens and
    ``max_passage_words`` 300, as rank_llm's FIRST runs. ``device``, ``dtype``, ``fix_text``: see
    :class:`~ragprune.rerankers.llm_base.CausalLMReranker`. Raises ``FileNotFoundError`` for a folder
    without a checkpoint.

    Results: ``logit`` (also ``scores["first"]``) is ``n - position`` after the last window, ``probability``
    the reciprocal rank (see :mod:`ragprune.rerankers.llm_base`). After each ``process``/``rank`` call,
    ``last_windows`` holds every window of each query (:class:`FirstWindow`).
    """

    score_key = FIRST

    def __init__(
        self,
        model_path: str | Path,
        *,
        window: int = 20,
        stride: int = 10,
        device: str | None = None,
        dtype: Any = None,
        context_size: int = FIRST_CONTEXT_SIZE,
        max_passage_words: int = FIRST_MAX_PASSAGE_WORDS,
        fix_text: bool | TextFix = True,
    ) -> None:
        if not 1 <= window <= 26:
            raise ValueError(f"window={window}; FIRST labels a window's passages A..Z, so use 1..26")
        sliding_windows(window, window, stride)  # validates stride
        super().__init__(
            model_path,
            device=device,
            dtype=dtype,
            context_size=context_size,
            max_passage_words=max_passage_words,
            fix_text=fix_text,
        )
        self.window = window
        self.stride = stride
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"the tokenizer in {self.model_path} has no chat template; FIRST renders its prompt through "
                "the checkpoint's chat template (as rank_llm does): use the fine-tuned checkpoint's own "
                "tokenizer files (tokenizer_config.json / chat_template.jinja)"
            )
        self.identifier_ids = identifier_token_ids(self.tokenizer, window)
        self._output_tokens: dict[int, int] = {}

    @property
    def last_windows(self) -> list[list[FirstWindow]]:
        """Every window of each query of the last ``process`` call, in processing order."""
        return self.last_reports

    def prompt(self, query: str, passages: Sequence[PassageLike]) -> LLMPrompt:
        """The prompt of one window holding ``passages`` (at most ``window``) in this order, as the model
        reads it: chat template, ``fix_text``, then ``"["``; ``input_ids`` are ``tokenizer(text,
        add_special_tokens=False)`` (the template writes its own special tokens)."""
        docs = as_documents(passages, "replace", "passages")
        if not 1 <= len(docs) <= self.window:
            raise ValueError(f"a FIRST window holds 1..{self.window} passages; got {len(docs)}")
        return self._prompt(query, docs)

    def first_token_logits(self, input_ids: list[int]) -> torch.Tensor:
        """The logits ``[vocab]`` (float32, CPU) of the token that would follow ``input_ids``: one forward
        pass, the full vocabulary at the last position (never a top-k)."""
        import torch

        with torch.inference_mode():
            output = self.model(input_ids=self._tensor(input_ids), logits_to_keep=1)
        return output.logits[0, -1].float().cpu()

    def _prompt(self, query: str, docs: list[Document]) -> LLMPrompt:
        def render(words: int) -> tuple[str, tuple[bool, ...]]:
            pieces = [passage_content(*self._texts(doc), words, self.fix) for doc in docs]
            text = str(
                self.tokenizer.apply_chat_template(
                    first_messages(query, [content for content, _ in pieces]),
                    tokenize=False,
                    add_generation_prompt=True,
                    enable_thinking=False,  # rank_llm's default (is_thinking=False)
                )
            )
            if self.fix is not None:
                text = self.fix(text)
            return text, tuple(cut for _, cut in pieces)

        text, cut = self._fit(render, len(docs), self._answer_tokens(len(docs)))
        text += FIRST_ANSWER_PREFIX
        return LLMPrompt(text, self.tokenizer(text, add_special_tokens=False)["input_ids"], cut)

    def _answer_tokens(self, size: int) -> int:
        """Tokens of a complete answer for ``size`` passages (rank_llm reserves them in the context)."""
        if size not in self._output_tokens:
            self._output_tokens[size] = len(
                self.tokenizer(alpha_ranking(size), add_special_tokens=False)["input_ids"]
            )
        return self._output_tokens[size]

    def _rank(self, query: Query, docs: list[Document]) -> Ranked:
        import torch

        current = list(range(len(docs)))  # positions into docs, in the list's current order
        windows: list[FirstWindow] = []
        cut: set[int] = set()
        for start, end in sliding_windows(len(docs), self.window, self.stride):
            shown = current[start:end]
            prompt = self._prompt(query.text, [docs[i] for i in shown])
            cut.update(i for i, was_cut in zip(shown, prompt.cut) if was_cut)
            logits = self.first_token_logits(prompt.input_ids)
            scores = torch.nan_to_num(logits[self.identifier_ids[: len(shown)]].float(), nan=float("-inf"))
            values = scores.tolist()
            order = sorted(range(len(shown)), key=lambda i: (-values[i], i))
            current[start:end] = [shown[i] for i in order]
            windows.append(FirstWindow(start, end, tuple(shown), tuple(values), tuple(order)))
        return Ranked(current, cut, windows)


def identifier_token_ids(tokenizer: Any, count: int) -> list[int]:
    """The token ids of the identifiers ``A`` .. (``count`` letters) as the model writes them after ``"["``.

    Each letter must be one vocabulary token, and the tokenizer must write ``"[X"`` as the tokens of ``"["``
    followed by that token (so the first token after the prompt's ``"["`` is the identifier); ``ValueError``
    names the first letter that is not.
    """
    opening = tokenizer("[", add_special_tokens=False)["input_ids"]
    ids = []
    for position in range(count):
        letter = alpha_identifier(position)
        token = tokenizer.convert_tokens_to_ids(letter)
        written = tokenizer("[" + letter, add_special_tokens=False)["input_ids"]
        if token is None or token == tokenizer.unk_token_id or written != [*opening, token]:
            raise ValueError(
                f"FIRST reads one token per identifier, but this tokenizer writes '[{letter}' as "
                f"{tokenizer.convert_ids_to_tokens(written)} (after '[' the identifier {letter!r} must be "
                "the single token of that letter); FIRST needs a tokenizer with single-token capital "
                "letters, such as Mistral's or Llama 2's"
            )
        ids.append(token)
    return ids
