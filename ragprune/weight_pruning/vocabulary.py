"""Vocabulary trimming: keep the embedding rows of the tokens a corpus uses, drop the rest.

In a small encoder the word-embedding table is most of the parameters (MiniLM-L6: 11.7M of 22.6M), and
head / FFN / layer removal leaves it untouched. Trimming it to the tokens that training text actually uses
(Ushio et al. 2023, "An Efficient Multilingual Language Model Compression through Vocabulary Trimming",
Section 3; Abdaoui et al. 2020, "Load What You Need") removes most of those rows at almost no cost. Here
the kept set is every special and added token, every single-character piece (``a`` and ``##a``: in
BERT's vocabulary, where every character is such a piece, any word stays spellable, so no new ``[UNK]``),
and the most frequent other tokens of the given texts up to ``size``. WordPiece then segments a word
whose long piece was dropped into shorter kept pieces; a short distillation (``training/train.py
--init``) adapts the model to that.

Only WordPiece tokenizers (BERT, MiniLM, ELECTRA) are supported: their vocabulary is a plain token -> id
map that can be renumbered. The new tokenizer is written in the model folder like any other.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from ragprune.models.encoder import RerankPruneModel, load_tokenizer
from ragprune.pipeline.encoding import tokenize_texts

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
    is not below the current vocabulary or cannot hold the always-kept tokens, or ``texts`` hold no token."""
    check_size(tokenizer, size)
    counts, read = token_counts(tokenizer, texts)
    if not counts.sum():
        raise ValueError(f"no token to count in the {read} texts given; pass training text to count")
    kept = choose_vocabulary(tokenizer, counts, size)
    trimmed, trimmed_tokenizer = trim_vocabulary(model, tokenizer, kept)
    occurrences = int(counts.sum())
    report = VocabularyReport(
        len(tokenizer), len(kept), read, occurrences, float(counts[kept].sum()) / occurrences
    )
    return trimmed, trimmed_tokenizer, report


def check_size(tokenizer: PreTrainedTokenizerBase, size: int) -> set[int]:
    """The :func:`always_kept` ids; ``ValueError`` naming the valid range unless ``size`` lies between
    their count and the tokenizer's size (or the tokenizer is not WordPiece)."""
    always = always_kept(tokenizer)
    floor = len(always)
    if not floor <= size < len(tokenizer):
        raise ValueError(
            f"vocabulary size {size} must lie in [{floor}, {len(tokenizer)}): at least the {floor} tokens "
            "always kept (special and added tokens, single characters), below the tokenizer's size"
        )
    return always


def token_counts(
    tokenizer: PreTrainedTokenizerBase, texts: Iterable[str], batch_size: int = 4096
) -> tuple[np.ndarray, int]:
    """How often each token id occurs in ``texts`` (``[len(tokenizer)]`` int64; no special tokens added,
    tokenized as the pipeline tokenizes passages) and how many texts were read."""
    texts = list(texts)
    counts = np.zeros(len(tokenizer), dtype=np.int64)
    for first in range(0, len(texts), batch_size):
        ids = tokenize_texts(tokenizer, texts[first : first + batch_size]).ids
        counts += np.bincount(ids, minlength=len(tokenizer))
    return counts, len(texts)


def always_kept(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Ids every trimmed vocabulary keeps: special and added tokens, and single-character pieces (``a``,
    ``##a``). In vocabularies where every character of a token is itself a piece in both forms (BERT's,
    MiniLM's), that keeps every word spellable: no new ``[UNK]``."""
    state = _wordpiece(tokenizer)
    vocab = state["model"]["vocab"]
    single = {i for token, i in vocab.items() if len(token.removeprefix(SUBWORD_PREFIX)) == 1}
    return _required(tokenizer, state) | single


def choose_vocabulary(tokenizer: PreTrainedTokenizerBase, counts: np.ndarray, size: int) -> list[int]:
    """The old ids to keep, ascending: :func:`always_kept`, then the most frequent other ids of ``counts``
    (``[len(tokenizer)]``, from :func:`token_counts`; ties: lower id first), at most ``size`` in all (fewer
    when fewer tokens were seen). ``ValueError`` from :func:`check_size`."""
    always = check_size(tokenizer, size)
    seen = np.flatnonzero(counts)
    seen = seen[~np.isin(seen, list(always))]
    frequent = seen[np.lexsort((seen, -counts[seen]))][: size - len(always)]
    return sorted(always | set(frequent.tolist()))


def trim_vocabulary(
    model: RerankPruneModel, tokenizer: PreTrainedTokenizerBase, kept: Sequence[int]
) -> tuple[RerankPruneModel, PreTrainedTokenizerBase]:
    """A copy of ``model`` whose word embeddings are the rows ``kept`` (ascending old ids, as from
    :func:`choose_vocabulary`), and the matching tokenizer (ids renumbered 0..len(kept)-1 in old order).
    ``model`` and ``tokenizer`` are not changed. ``ValueError`` for a non-WordPiece tokenizer, ids out of
    range or not ascending, or a special or added token left out."""
    state = _wordpiece(tokenizer)
    vocab: dict[str, int] = state["model"]["vocab"]
    kept = list(kept)
    if kept != sorted(set(kept)) or not kept or kept[0] < 0 or kept[-1] >= len(tokenizer):
        raise ValueError(f"kept ids must be distinct, ascending and within [0, {len(tokenizer)})")
    missing = sorted(_required(tokenizer, state) - set(kept))
    if missing:
        raise ValueError(f"special and added token ids {missing} must be kept")
    new_id = {old: new for new, old in enumerate(kept)}
    by_id = {i: token for token, i in vocab.items()}
    state["model"]["vocab"] = {by_id[old]: new for old, new in new_id.items() if old in by_id}
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
    pad = trimmed_tokenizer.pad_token_id or 0
    rows = nn.Embedding(len(kept), embeddings.embedding_dim, padding_idx=pad)
    rows.weight.data = embeddings.weight.data.index_select(0, index).clone()
    encoder.set_input_embeddings(rows.to(embeddings.weight.device))
    trimmed.backbone_config.vocab_size = len(kept)
    trimmed.backbone_config.pad_token_id = pad
    return trimmed, trimmed_tokenizer


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


def _required(tokenizer: PreTrainedTokenizerBase, state: dict[str, Any]) -> set[int]:
    """The special and added tokens' ids: a trimmed vocabulary must keep them."""
    return set(tokenizer.all_special_ids) | {added["id"] for added in state.get("added_tokens") or []}


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
        (Path(folder) / "tokenizer.json").write_text(json.dumps(state, ensure_ascii=False))
        return load_tokenizer(folder)
