"""Prompts and output formats of the published decoder-LLM listwise rerankers (FIRST and full ranking).

The strings below are the published ones, character for character; the code around them is ragprune's.
Sources (read, not copied as code):

- **FIRST** (Reddy et al., "FIRST: Faster Improved Listwise Reranking with Single Token Decoding", EMNLP
  2024; rank_llm's ``FirstMistral``): castorini/rank_llm, ``src/rank_llm/rerank/prompt_templates/
  rank_zephyr_alpha_template.yaml`` (system message, prefix, body, suffix), rendered by
  ``src/rank_llm/rerank/listwise/singleturn_listwise_inference_handler.py`` and ``.../inference_handler.py``
  (passage content, number replacement), applied through the tokenizer's chat template in
  ``src/rank_llm/rerank/listwise/rank_listwise_os_llm.py`` (``create_prompt``), all at commit
  1b3cabbc3564441bdcda6c6a2e92137b9faa0660 (2026-08-22). The answer prefix ``"["`` after the chat template
  and the read-out of the first generated token are from the FIRST fix of the same file at commit
  26e2bf3f31392189af9244d6751f3beb739f0650 ("Bug Fix - FIRSTMistral (#319)"); the sliding-window order is
  ``src/rank_llm/rerank/listwise/listwise_rankllm.py`` (``_sliding_windows_batched_async``) at 1b3cabb.
- **Full ranking** (Liu et al., "Sliding Windows Are Not the End: Exploring Full Ranking with Long-Context
  Large Language Models", ACL 2025; RankMistral100): RUC-NLPIR/fullrank, ``utils.py``
  (``add_prefix_prompt`` / ``add_post_prompt`` in ``rank_GPT`` mode, ``convert_doc_to_prompt_content``),
  ``rerank/rank_listwise_os_llm.py`` (``create_prompt``, ``run_llm``), ``rerank/rankllm.py``
  (``receive_permutation``), ``run_rank_llm.py`` (system message) and ``run_rank_llm.sh`` (RankMistral100:
  window 100, 100 words per passage, ``--variable_passages``, context 32768), all at commit
  8395a7ab91b5a702e71ee80b8f9fca68d02aa8d5. Its conversation format is FastChat's ``"mistral"`` template
  (lm-sys/FastChat ``fastchat/conversation.py``, ``SeparatorStyle.LLAMA2``, commit
  0e6d3e4beaab66f4d3f93db72541a4abab8af28d), which FastChat picks for any model path containing "mistral".

Both codes pass every passage and the whole prompt through ``ftfy.fix_text``; here that is the ``fix``
argument (``None``: text as given).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TextFix = Callable[[str], str]

# --- FIRST: rank_llm's "alpha" listwise prompt (rank_zephyr_alpha_template.yaml) -------------------------

FIRST_SYSTEM_MESSAGE = (
    "You are RankLLM, an intelligent assistant that can rank passages based on their relevancy to the query"
)
"""The system message (no final full stop, as published)."""

FIRST_PREFIX = (
    "I will provide you with {num} passages, each indicated by an alphabetical identifier []. "
    "Rank the passages based on their relevance to the search query: {query}.\n"
)
"""Opens the user message; ``{num}`` passages in the window, ``{query}`` the query."""

FIRST_BODY = "[{identifier}] {content}\n"
"""One line per passage: ``[A] content``."""

FIRST_SUFFIX = (
    "Search Query: {query}.\n"
    "Rank the {num} passages above based on their relevance to the search query. All the passages should "
    "be included and listed using identifiers, in descending order of relevance. The output format should "
    "be [] > [], e.g., [B] > [A], Answer concisely and directly and only respond with the ranking results, "
    "do not say any word or explain."
)
"""Closes the user message (no final newline: the YAML block is ``|-``)."""

FIRST_ANSWER_PREFIX = "["
"""Written after the chat template's generation prompt, so the first generated token is an identifier."""

FIRST_MAX_PASSAGE_WORDS = 300
"""rank_llm's ``max_passage_words`` default: each passage's first 300 words (fewer if the window does not
fit the context)."""

FIRST_CONTEXT_SIZE = 4096
"""rank_llm's FIRST runs use ``--context_size=4096`` tokens."""

# --- Full ranking: fullrank's rank_GPT prompt -------------------------------------------------------------

FULL_RANK_SYSTEM_MESSAGE = (
    "You are RankLLM, an intelligent assistant that can rank passages based on their relevancy to the query."
)
"""``run_rank_llm.py``'s default system message (with a final full stop, unlike rank_llm's)."""

FULL_RANK_PREFIX = (
    "I will provide you with {num} passages, each indicated by a numerical identifier []. "
    "Rank the passages based on their relevance to the search query: {query}.\n\n"
)
"""``add_prefix_prompt`` (ends in ``".\\n"``) plus the ``"\\n"`` that ``create_prompt`` adds after it."""

FULL_RANK_BODY = "[{identifier}] {content}\n"

FULL_RANK_SUFFIX = (
    "Search Query: {query}.\n"
    "Rank the {num} passages above based on their relevance to the search query. All the passages should "
    "be included and listed using identifiers, in descending order of relevance. The output format should "
    "be [] > [], e.g., [2] > [1], Only respond with the ranking results, do not say any word or explain."
)
"""``add_post_prompt`` in ``rank_GPT`` mode with ``variable_passages`` (the ``[2] > [1]`` example)."""

FASTCHAT_MISTRAL = "[INST] {system}\n{user} [/INST]"
"""FastChat's ``"mistral"`` conversation (``system_template="[INST] {system_message}\\n"``, LLAMA2 style:
first message + ``" "``, then the assistant role tag); the tokenizer adds the BOS token in front."""

FULL_RANK_MAX_PASSAGE_WORDS = 100
"""RankMistral100's ``--max_passage_length 100`` (words)."""

FULL_RANK_CONTEXT_SIZE = 32768
"""RankMistral100's ``--context_size 32768`` tokens."""

_BRACKETED_NUMBER = re.compile(r"\[(\d+)\]")
_ASCII_NUMBER = re.compile(r"[0-9]+")


def replace_number(text: str) -> str:
    """``"[12]"`` -> ``"(12)"`` everywhere in ``text``, so a query or passage cannot forge an identifier
    (both codes' ``_replace_number``)."""
    return _BRACKETED_NUMBER.sub(r"(\1)", text)


def passage_content(text: str, title: str, max_words: int, fix: TextFix | None = None) -> tuple[str, bool]:
    """One passage as the prompt shows it, and whether words were cut.

    ``"Title: {title} Content: {text}"`` when there is a title, else the text; stripped, ``fix`` applied
    (ftfy in the published code), cut to its first ``max_words`` whitespace-separated words joined by single
    spaces, then ``[n]`` -> ``(n)``. ``max_words`` < 0 raises ``ValueError``.
    """
    if max_words < 0:
        raise ValueError(f"max_words={max_words}; use 0 or more")
    content = f"Title: {title} Content: {text}" if title else text
    content = content.strip()
    if fix is not None:
        content = fix(content)
    words = content.split()
    return replace_number(" ".join(words[:max_words])), len(words) > max_words


def alpha_identifier(position: int) -> str:
    """The FIRST identifier of the 0-based ``position`` in a window: ``A`` .. ``Z`` (``ValueError`` after
    25)."""
    if not 0 <= position < 26:
        raise ValueError(f"FIRST labels at most 26 passages per window (A..Z); got position {position}")
    return chr(ord("A") + position)


def first_user_message(query: str, contents: Sequence[str]) -> str:
    """The FIRST user message for ``query`` and the window's passage ``contents`` (already cut), labelled
    ``[A]``, ``[B]``, ... in order. The query gets ``[n]`` -> ``(n)``, as in rank_llm."""
    query = replace_number(query)
    num = len(contents)
    body = "".join(
        FIRST_BODY.format(identifier=alpha_identifier(i), content=content)
        for i, content in enumerate(contents)
    )
    return FIRST_PREFIX.format(num=num, query=query) + body + FIRST_SUFFIX.format(num=num, query=query)


def first_messages(query: str, contents: Sequence[str]) -> list[dict[str, str]]:
    """The FIRST chat: the system message, then the user message of :func:`first_user_message`."""
    return [
        {"role": "system", "content": FIRST_SYSTEM_MESSAGE},
        {"role": "user", "content": first_user_message(query, contents)},
    ]


def full_rank_user_message(query: str, contents: Sequence[str]) -> str:
    """The fullrank user message: every passage of ``contents`` labelled ``[1]`` .. ``[n]``. The query is
    stripped and gets ``[n]`` -> ``(n)``, as in fullrank."""
    query = replace_number(query).strip()
    num = len(contents)
    body = "".join(
        FULL_RANK_BODY.format(identifier=i, content=content) for i, content in enumerate(contents, start=1)
    )
    return (
        FULL_RANK_PREFIX.format(num=num, query=query) + body + FULL_RANK_SUFFIX.format(num=num, query=query)
    )


def fastchat_mistral(system: str, user: str) -> str:
    """The FastChat ``"mistral"`` conversation text of one system and one user message, ready for the
    assistant's answer (no BOS: the tokenizer adds it)."""
    return FASTCHAT_MISTRAL.format(system=system, user=user)


def alpha_ranking(size: int) -> str:
    """A complete FIRST answer for ``size`` passages, ``"[A] > [B] > ..."`` (rank_llm sizes its output
    token budget with it)."""
    return " > ".join(f"[{alpha_identifier(i)}]" for i in range(size))


def numeric_ranking(size: int) -> str:
    """A complete fullrank answer for ``size`` passages, ``"[1] > [2] > ..."`` (fullrank's output budget)."""
    return " > ".join(f"[{i}]" for i in range(1, size + 1))


@dataclass(frozen=True)
class PermutationRepair:
    """How a generated ranking was read and repaired (fullrank's and rank_llm's ``receive_permutation``).

    ``output`` is the model's text; ``identifiers`` every number read from it, in order, 1-based as written;
    ``duplicates`` the numbers written again after their first time (dropped); ``out_of_range`` those outside
    ``1..count`` (dropped); ``missing`` the passages never named, appended after the named ones in input
    order (1-based); ``order`` the resulting ranking as 0-based input positions, best first.
    """

    output: str
    count: int
    identifiers: tuple[int, ...]
    duplicates: tuple[int, ...]
    out_of_range: tuple[int, ...]
    missing: tuple[int, ...]
    order: tuple[int, ...]

    @property
    def repaired(self) -> bool:
        """Whether the output was not a clean permutation of ``1..count``."""
        return bool(self.duplicates or self.out_of_range or self.missing)

    def summary(self) -> str:
        """One line for a person: ``"clean permutation of 4"`` or what was dropped and appended."""
        if not self.repaired:
            return f"clean permutation of {self.count}"

        def ids(values: tuple[int, ...]) -> str:
            return " ".join(f"[{v}]" for v in values)

        parts = []
        if self.duplicates:
            parts.append(f"dropped {len(self.duplicates)} duplicate(s) {ids(self.duplicates)}")
        if self.out_of_range:
            parts.append(
                f"dropped {len(self.out_of_range)} id(s) outside 1..{self.count} {ids(self.out_of_range)}"
            )
        if self.missing:
            parts.append(f"appended {len(self.missing)} missing id(s) in input order {ids(self.missing)}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {
            "output": self.output,
            "count": self.count,
            "identifiers": list(self.identifiers),
            "duplicates": list(self.duplicates),
            "out_of_range": list(self.out_of_range),
            "missing": list(self.missing),
            "order": list(self.order),
            "repaired": self.repaired,
        }


def parse_permutation(output: str, count: int) -> PermutationRepair:
    """Read a ranking such as ``"[3] > [1] > [2]"`` over ``count`` passages and repair it.

    Every run of ASCII digits is an identifier (fullrank's ``_clean_response`` turns every non-digit into a
    space; other digit characters, e.g. superscripts, are separators here instead of voiding the whole
    output as ``int()`` did there). Then, as fullrank and rank_llm do: keep each identifier's first
    occurrence, drop those outside ``1..count``, append the passages never named in input order.
    ``"[3] > [3] > [99] > [1]"`` over 4 gives order ``(2, 0, 1, 3)``, duplicates ``(3,)``, out of range
    ``(99,)``, missing ``(2, 4)``.
    """
    identifiers = tuple(int(match) for match in _ASCII_NUMBER.findall(output))
    seen: set[int] = set()
    named: list[int] = []
    duplicates: list[int] = []
    out_of_range: list[int] = []
    for identifier in identifiers:
        if not 1 <= identifier <= count:
            out_of_range.append(identifier)
        elif identifier in seen:
            duplicates.append(identifier)
        else:
            seen.add(identifier)
            named.append(identifier)
    missing = tuple(i for i in range(1, count + 1) if i not in seen)
    order = tuple(i - 1 for i in [*named, *missing])
    return PermutationRepair(
        output, count, identifiers, tuple(duplicates), tuple(out_of_range), missing, order
    )
