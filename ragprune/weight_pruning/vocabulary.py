"""Vocabulary trimming: keep the embedding rows of the tokens a corpus uses, drop the rest.

In a small encoder the word-embedding table is most of the parameters (MiniLM-L6: 11.7M of 22.6M), and
head / FFN / layer removal leaves it untouched. Trimming it to the tokens that training text actually uses
(Ushio et al. 2023, "An Efficient Multilingual Language Model Compression through Vocabulary Trimming",
Section 3; Abdaoui et al. 2020, "Load What You Need") removes most of those rows at almost no cost. Here
the kept set is every special token, every single-character piece (``a`` and ``##a``: any word the
original vocabulary could spell stays spellable, so no new ``[UNK]``), and the most frequent other tokens
of the given texts up to ``size``. WordPiece then segments a word whose long piece was dropped into
shorter kept pieces; a short distillation (``training/train.py --init``) adapts the model to that.

Only WordPiece tokenizers (BERT, MiniLM, ELECTRA) are supported: their vocabulary is a plain token -> id
map that can be renumbered. The new tokenizer is written in the model folder like any other.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from ragprune.models.encoder import RerankPruneModel, load_tokenizer

SUBWORD_PREFIX = "##"
TEXT_FIELDS = ("text", "query", "question", "title")
"""The string fields of a JSON-lines record that :func:`read_texts` counts."""


@dataclass(frozen=True)
class VocabularyReport:
    """``before`` / ``after``: vocabulary sizes; ``occurrences``: token occurrences counted in the texts;
    ``coverage``: the share of those occurrences whose token is kept (the rest are re-segmented)."""

    before: int
    after: int
    texts: int
    occurrences: int
    coverage: float


def trim_to_texts(
    model: RerankPruneModel, tokenizer: PreTrainedTokenizerBase, texts: Iterable[str], size: int
) -> tuple[RerankPruneModel, PreTrainedTokenizerBase, VocabularyReport]:
    """Count the tokens of ``texts``, keep ``size`` of them (:func:`choose_vocabulary`) and trim ``model``
    and ``tokenizer`` to them (:func:`trim_vocabulary`; both inputs unchanged). ``ValueError`` if ``size``
    is not below the current vocabulary or cannot hold the always-kept tokens."""
    before = len(tokenizer)
    if size >= before:
        raise ValueError(f"vocabulary size {size} is not below the tokenizer's {before} tokens")
    counts, read = token_counts(tokenizer, texts)
    kept = choose_vocabulary(tokenizer, counts, size)
    trimmed, trimmed_tokenizer = trim_vocabulary(model, tokenizer, kept)
    report = VocabularyReport(before, len(kept), read, sum(counts.values()), coverage(counts, kept))
    return trimmed, trimmed_tokenizer, report


def token_counts(
    tokenizer: PreTrainedTokenizerBase, texts: Iterable[str], batch_size: int = 4096
) -> tuple[Counter[int], int]:
    """How often each token id occurs in ``texts`` (no special tokens added), and how many texts were read."""
    counts: Counter[int] = Counter()
    batch: list[str] = []
    seen = 0
    for text in texts:
        batch.append(text)
        if len(batch) == batch_size:
            seen += _count_batch(tokenizer, batch, counts)
            batch = []
    if batch:
        seen += _count_batch(tokenizer, batch, counts)
    return counts, seen


def _count_batch(tokenizer: PreTrainedTokenizerBase, batch: list[str], counts: Counter[int]) -> int:
    for ids in tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]:
        counts.update(ids)
    return len(batch)


def choose_vocabulary(tokenizer: PreTrainedTokenizerBase, counts: Counter[int], size: int) -> list[int]:
    """The old ids to keep, ascending: special tokens, single-character pieces, then the most frequent other
    ids in ``counts`` (ties: lower id first), at most ``size`` in all (fewer when fewer tokens were seen).
    ``ValueError`` if ``size`` cannot hold the always-kept tokens or the tokenizer is not WordPiece."""
    vocab = _wordpiece(tokenizer)["model"]["vocab"]
    always = set(tokenizer.all_special_ids)
    always.update(i for token, i in vocab.items() if len(token.removeprefix(SUBWORD_PREFIX)) == 1)
    if size < len(always):
        raise ValueError(
            f"vocabulary size {size} is below the {len(always)} tokens always kept (special tokens and "
            "single characters); choose a larger size"
        )
    frequent = sorted((i for i in counts if i not in always), key=lambda i: (-counts[i], i))
    return sorted(always | set(frequent[: size - len(always)]))


def trim_vocabulary(
    model: RerankPruneModel, tokenizer: PreTrainedTokenizerBase, kept: Sequence[int]
) -> tuple[RerankPruneModel, PreTrainedTokenizerBase]:
    """A copy of ``model`` whose word embeddings are the rows ``kept`` (ascending old ids, as from
    :func:`choose_vocabulary`), and the matching tokenizer (ids renumbered 0..len(kept)-1 in old order).
    ``model`` and ``tokenizer`` are not changed. ``ValueError`` for a non-WordPiece tokenizer, ids out of
    range or not ascending, or a special token left out."""
    state = _wordpiece(tokenizer)
    vocab: dict[str, int] = state["model"]["vocab"]
    kept = list(kept)
    if kept != sorted(set(kept)) or not kept or kept[0] < 0 or kept[-1] >= len(vocab):
        raise ValueError(f"kept ids must be distinct, ascending and within [0, {len(vocab)})")
    missing = sorted(set(tokenizer.all_special_ids) - set(kept))
    if missing:
        raise ValueError(f"special token ids {missing} must be kept")
    new_id = {old: new for new, old in enumerate(kept)}
    by_id = {i: token for token, i in vocab.items()}
    state["model"]["vocab"] = {by_id[old]: new for old, new in new_id.items()}
    for added in state.get("added_tokens") or []:
        added["id"] = new_id[added["id"]]
    _remap_post_processor(state.get("post_processor"), new_id)
    if state.get("padding"):
        state["padding"]["pad_id"] = new_id[state["padding"]["pad_id"]]
    trimmed_tokenizer = _reload(tokenizer, state)

    trimmed = copy.deepcopy(model)
    encoder: Any = trimmed.encoder  # a transformers PreTrainedModel (nn.Module types it as a Tensor)
    embeddings = encoder.get_input_embeddings()
    index = torch.tensor(kept, dtype=torch.long, device=embeddings.weight.device)
    rows = nn.Embedding(len(kept), embeddings.embedding_dim, padding_idx=_pad(trimmed_tokenizer))
    rows.weight.data = embeddings.weight.data.index_select(0, index).clone()
    encoder.set_input_embeddings(rows.to(embeddings.weight.device))
    trimmed.backbone_config.vocab_size = len(kept)
    trimmed.backbone_config.pad_token_id = _pad(trimmed_tokenizer)
    return trimmed, trimmed_tokenizer


def coverage(counts: Counter[int], kept: Sequence[int]) -> float:
    """The share of counted token occurrences whose token is in ``kept`` (1.0 when nothing was counted)."""
    total = sum(counts.values())
    if total == 0:
        return 1.0
    keep = set(kept)
    return sum(n for i, n in counts.items() if i in keep) / total


def read_texts(paths: Sequence[str | Path]) -> list[str]:
    """Texts from files: ``.jsonl`` / ``.jsonl.gz`` (the string fields ``text``, ``query``, ``question`` and
    ``title`` of every record) or anything else as plain text, one text per line (``.gz`` read
    transparently). ``DataFormatError`` naming the file and line for a missing file or a bad line."""
    from ragprune.data.files import numbered_json_objects, numbered_lines

    texts: list[str] = []
    for path in map(Path, paths):
        if path.name.endswith((".jsonl", ".jsonl.gz")):
            for _, record in numbered_json_objects(path, "vocabulary texts"):
                texts.extend(
                    value
                    for key in TEXT_FIELDS
                    if isinstance(value := record.get(key), str) and value.strip()
                )
        else:
            texts.extend(line for _, line in numbered_lines(path, "vocabulary texts"))
    return texts


def _wordpiece(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError("vocabulary trimming needs a fast (Rust) tokenizer")
    state = json.loads(backend.to_str())
    kind = state["model"].get("type")
    if kind != "WordPiece":
        raise ValueError(
            f"vocabulary trimming supports WordPiece tokenizers (BERT, MiniLM, ELECTRA); this one is {kind}"
        )
    return state


def _remap_post_processor(processor: dict | None, new_id: dict[int, int]) -> None:
    if not processor:
        return
    kind = processor.get("type")
    if kind == "TemplateProcessing":
        for special in processor["special_tokens"].values():
            special["ids"] = [new_id[i] for i in special["ids"]]
    elif kind == "BertProcessing":
        for key in ("sep", "cls"):
            processor[key][1] = new_id[processor[key][1]]
    elif kind == "Sequence":
        for inner in processor["processors"]:
            _remap_post_processor(inner, new_id)
    else:
        raise ValueError(f"vocabulary trimming cannot renumber a {kind} post-processor")


def _reload(tokenizer: PreTrainedTokenizerBase, state: dict[str, Any]) -> PreTrainedTokenizerBase:
    """The tokenizer saved, its ``tokenizer.json`` replaced by ``state``, and loaded back (so the wrapper
    class and its settings are the original's)."""
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        for stale in ("vocab.txt",):
            (Path(folder) / stale).unlink(missing_ok=True)
        (Path(folder) / "tokenizer.json").write_text(json.dumps(state, ensure_ascii=False))
        return load_tokenizer(folder)


def _pad(tokenizer: PreTrainedTokenizerBase) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
