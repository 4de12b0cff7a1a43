"""Full ranking: every candidate in one prompt, one generated permutation (Liu et al., ACL 2025).

"Sliding Windows Are Not the End: Exploring Full Ranking with Long-Context Large Language Models" fine-tunes
Mistral-7B (RankMistral100) to rank all 100 BM25 candidates at once: one prompt with the 100 passages
labelled ``[1]`` .. ``[100]``, each cut to its first 100 words, and greedy decoding of ``"[3] > [1] > ..."``.
The output is repaired as the published code does: duplicates and identifiers outside ``1..n`` are dropped,
passages never named are appended in input order; here the repair is also reported
(:class:`~ragprune.rerankers.llm_prompts.PermutationRepair`, in ``last_repairs``). Prompt strings and
procedure: see :mod:`ragprune.rerankers.llm_prompts` for the sources (RUC-NLPIR/fullrank, FastChat).

Published effectiveness (the authors' numbers, not measured here): RankMistral100 reranking BM25 top-100,
nDCG@10 0.7255 on TREC DL19 and 0.7129 on DL20.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragprune.pipeline.inputs import PassageLike, as_documents
from ragprune.rerankers.llm_base import CausalLMReranker, LLMPrompt, Ranked
from ragprune.rerankers.llm_prompts import (
    FULL_RANK_CONTEXT_SIZE,
    FULL_RANK_MAX_PASSAGE_WORDS,
    FULL_RANK_SYSTEM_MESSAGE,
    PermutationRepair,
    TextFix,
    fastchat_mistral,
    full_rank_user_message,
    numeric_ranking,
    parse_permutation,
    passage_content,
)
from ragprune.types import Document, Query

FULL_RANK = "full_rank"
"""The key of the full ranking's rank score in ``PassageResult.scores``."""

CONVERSATIONS = ("mistral", "chat_template")

logger = logging.getLogger(__name__)


class FullRankLLM(CausalLMReranker):
    """Full ranking with a Hugging Face causal LM from a local folder (e.g. RankMistral100).

    ``conversation``: ``"mistral"`` (default) wraps the prompt as RankMistral100 was trained and evaluated,
    FastChat's ``"[INST] {system}\\n{user} [/INST]"`` with the tokenizer's BOS in front; ``"chat_template"``
    uses the tokenizer's own chat template instead (for other fine-tuned models; tokenized as the template
    wrote it). ``system_message``: fullrank's by default. ``max_new_tokens`` ``None``: the tokens of a
    complete answer ``"[1] > [2] > ... > [n]"`` for the query's ``n`` passages, as fullrank sizes it;
    ``min_new_tokens`` ``None``: the same number (fullrank forces the full length; 0 lets the model stop at
    its end-of-sequence token). Greedy decoding. ``context_size`` 32768 tokens and ``max_passage_words``
    100, as RankMistral100's runs. ``device``, ``dtype``, ``fix_text``: see
    :class:`~ragprune.rerankers.llm_base.CausalLMReranker`. Raises ``FileNotFoundError`` for a folder without
    a checkpoint, ``ValueError`` for an unknown ``conversation`` or a tokenizer without the chat template it
    asks for.

    Results: ``logit`` (also ``scores["full_rank"]``) is ``n - position`` in the repaired permutation,
    ``probability`` the reciprocal rank (see :mod:`ragprune.rerankers.llm_base`). After each ``process``/
    ``rank`` call, ``last_repairs`` holds one :class:`~ragprune.rerankers.llm_prompts.PermutationRepair` per
    query: the raw output, what was dropped and what was appended (``.summary()`` says it in one line; a
    ranking that had to be completed is also logged as a warning).
    """

    score_key = FULL_RANK

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_new_tokens: int | None = None,
        min_new_tokens: int | None = None,
        conversation: str = "mistral",
        system_message: str = FULL_RANK_SYSTEM_MESSAGE,
        device: str | None = None,
        dtype: Any = None,
        context_size: int = FULL_RANK_CONTEXT_SIZE,
        max_passage_words: int = FULL_RANK_MAX_PASSAGE_WORDS,
        fix_text: bool | TextFix = True,
    ) -> None:
        if conversation not in CONVERSATIONS:
            raise ValueError(f"conversation={conversation!r}; use one of {CONVERSATIONS}")
        for name, value in (("max_new_tokens", max_new_tokens), ("min_new_tokens", min_new_tokens)):
            if value is not None and value < 0:
                raise ValueError(f"{name}={value}; use 0 or more, or None for the published setting")
        super().__init__(
            model_path,
            device=device,
            dtype=dtype,
            context_size=context_size,
            max_passage_words=max_passage_words,
            fix_text=fix_text,
        )
        if conversation == "chat_template" and not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"conversation='chat_template' but the tokenizer in {self.model_path} has none; "
                "use conversation='mistral' (RankMistral100's format) or a tokenizer with a chat template"
            )
        self.conversation = conversation
        self.system_message = system_message
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = min_new_tokens

    @property
    def last_repairs(self) -> list[PermutationRepair]:
        """How each query's generated permutation of the last ``process`` call was read and repaired."""
        return self.last_reports

    def prompt(self, query: str, passages: Sequence[PassageLike]) -> LLMPrompt:
        """The prompt for ``passages`` (all of them, in this order) as the model reads it; ``input_ids``
        are ``tokenizer(text)`` for ``"mistral"`` (BOS added) and
        ``tokenizer(text, add_special_tokens=False)`` for ``"chat_template"`` (the template writes its own
        special tokens)."""
        docs = as_documents(passages, "replace", "passages")
        if not docs:
            raise ValueError("passages is empty; pass at least one passage")
        return self._prompt(query, docs)

    def answer_tokens(self, count: int) -> int:
        """``max_new_tokens`` for ``count`` passages: the setting, or the tokens of ``"[1] > ... > [count]"``
        counted as fullrank does (the tokenizer's encode, special tokens included)."""
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        return len(self.tokenizer(numeric_ranking(count))["input_ids"])

    def generate_ranking(self, input_ids: list[int], count: int) -> str:
        """Greedy-decode the answer to ``input_ids`` (``count`` passages) and return its text as decoded
        with special tokens kept (fullrank's ``run_llm``)."""
        import torch
        from transformers import GenerationConfig

        max_new = self.answer_tokens(count)
        min_new = max_new if self.min_new_tokens is None else min(self.min_new_tokens, max_new)
        defaults = self.model.generation_config
        eos = defaults.eos_token_id if defaults.eos_token_id is not None else self.tokenizer.eos_token_id
        pad = defaults.pad_token_id if defaults.pad_token_id is not None else self.tokenizer.pad_token_id
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=max_new,
            min_new_tokens=min_new,
            eos_token_id=eos,
            pad_token_id=pad if pad is not None else (eos[0] if isinstance(eos, list) else eos),
            bos_token_id=defaults.bos_token_id,
        )
        ids = self._tensor(input_ids)
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config
            )
        return str(self.tokenizer.decode(output[0, ids.shape[1] :].tolist(), skip_special_tokens=False))

    def _prompt(self, query: str, docs: list[Document]) -> LLMPrompt:
        def render(words: int) -> tuple[str, tuple[bool, ...]]:
            pieces = [passage_content(*self._texts(doc), words, self.fix) for doc in docs]
            user = full_rank_user_message(query, [content for content, _ in pieces])
            if self.conversation == "mistral":
                text = fastchat_mistral(self.system_message, user)
            else:
                text = str(
                    self.tokenizer.apply_chat_template(
                        [
                            {"role": "system", "content": self.system_message},
                            {"role": "user", "content": user},
                        ],
                        tokenize=False,
                        add_generation_prompt=True,
                    )
                )
            if self.fix is not None:
                text = self.fix(text)
            return text, tuple(cut for _, cut in pieces)

        text, cut = self._fit(render, len(docs), self.answer_tokens(len(docs)))
        encoded = self.tokenizer(text, add_special_tokens=self.conversation == "mistral")
        return LLMPrompt(text, encoded["input_ids"], cut)

    def _rank(self, query: Query, docs: list[Document]) -> Ranked:
        if not docs:
            return Ranked([], set(), parse_permutation("", 0))
        prompt = self._prompt(query.text, docs)
        output = self.generate_ranking(prompt.input_ids, len(docs))
        repair = parse_permutation(output, len(docs))
        if repair.missing:
            logger.warning("FullRankLLM, query %r: %s", query.id, repair.summary())
        return Ranked(list(repair.order), {i for i, was_cut in enumerate(prompt.cut) if was_cut}, repair)
