"""Vocabulary trimming (``ragprune.weight_pruning.vocabulary``) on a tiny model with MiniLM's real tokenizer:
text made of kept tokens scores exactly as before, dropped tokens re-segment into kept pieces (no new
[UNK]), the trimmed model round-trips through save / load, the pipeline and the CLI, bad input is refused."""

from __future__ import annotations

import copy
import gzip
import json

import numpy as np
import pytest
import torch
from sample_texts import QUERY, TEXTS

from ragprune.models import load_model
from ragprune.weight_pruning.measure import parameter_counts
from ragprune.weight_pruning.vocabulary import (
    always_kept,
    choose_vocabulary,
    read_texts,
    token_counts,
    trim_to_texts,
    trim_vocabulary,
)

SIZE = 3000


@pytest.fixture(scope="module")
def dense(tiny_model_dir):
    return load_model(tiny_model_dir)


@pytest.fixture(scope="module")
def trimmed(dense):
    model, tokenizer = dense
    return trim_to_texts(model, tokenizer, TEXTS + [QUERY], SIZE)


def _outputs(model, tokenizer, query: str, texts: list[str]) -> dict[str, torch.Tensor]:
    """The rank logits and the token keep logits (what ranking and pruning read)."""
    batch = tokenizer([query] * len(texts), texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    return {"rank": out["rank"], "token": out["token"]}


def test_text_of_kept_tokens_scores_exactly_as_before(dense, trimmed):
    model, tokenizer = dense
    small, small_tokenizer, report = trimmed
    # few texts: fewer tokens than SIZE are seen, and only seen ones join the always-kept set
    assert (report.before, report.coverage) == (len(tokenizer), 1.0) and report.after < SIZE
    assert len(small_tokenizer) == report.after == small.backbone_config.vocab_size
    assert small.encoder.get_input_embeddings().weight.shape[0] == report.after
    torch.testing.assert_close(
        _outputs(small, small_tokenizer, QUERY, TEXTS), _outputs(model, tokenizer, QUERY, TEXTS)
    )
    before = parameter_counts(model)["embeddings"] - parameter_counts(small)["embeddings"]
    assert before == (len(tokenizer) - report.after) * model.backbone_config.hidden_size
    assert model.encoder.get_input_embeddings().weight.shape[0] == len(tokenizer)  # the input is unchanged


def test_dropped_tokens_resegment_into_kept_pieces(dense, trimmed):
    _, tokenizer = dense
    _, small_tokenizer, _ = trimmed
    word = "cryptocurrency"
    assert tokenizer.convert_ids_to_tokens(tokenizer(word, add_special_tokens=False)["input_ids"]) != [
        "[UNK]"
    ]
    pieces = small_tokenizer.convert_ids_to_tokens(
        small_tokenizer(word, add_special_tokens=False)["input_ids"]
    )
    assert "[UNK]" not in pieces and "".join(p.removeprefix("##") for p in pieces) == word
    assert small_tokenizer.cls_token == "[CLS]" and small_tokenizer.pad_token_id == 0
    ids = small_tokenizer(QUERY, TEXTS[0])["input_ids"]
    assert ids[0] == small_tokenizer.cls_token_id and ids.count(small_tokenizer.sep_token_id) == 2


def test_the_kept_set_is_specials_single_characters_then_the_most_frequent(dense):
    _, tokenizer = dense
    vocab = tokenizer.get_vocab()
    low, high = sorted([vocab["tower"], vocab["river"]])
    counts = np.zeros(len(tokenizer), dtype=np.int64)
    counts[[vocab["paris"], high, low, vocab["[unused5]"]]] = [5, 3, 3, 1]
    always = always_kept(tokenizer)
    assert set(tokenizer.all_special_ids) <= always and {vocab["##q"], vocab["q"]} <= always
    assert choose_vocabulary(tokenizer, np.zeros_like(counts), len(always) + 5) == sorted(always)
    kept = choose_vocabulary(tokenizer, counts, len(always) + 2)
    assert kept == sorted(kept)
    assert vocab["paris"] in kept and low in kept  # the tie breaks to the lower id
    assert high not in kept and vocab["[unused5]"] not in kept
    with pytest.raises(ValueError, match=r"must lie in \[\d+, 30522\)"):
        choose_vocabulary(tokenizer, counts, 10)


def test_added_tokens_are_always_kept(dense):
    model, tokenizer = dense
    extended = copy.deepcopy(tokenizer)
    extended.add_tokens(["ragprunish"])
    grown = copy.deepcopy(model)
    grown.encoder.resize_token_embeddings(len(extended))
    small, small_tokenizer, _ = trim_to_texts(grown, extended, TEXTS + ["ragprunish text"], SIZE)
    ids = small_tokenizer("ragprunish", add_special_tokens=False)["input_ids"]
    assert small_tokenizer.convert_ids_to_tokens(ids) == ["ragprunish"]
    assert ids[0] == len(small_tokenizer) - 1 < small.backbone_config.vocab_size


def test_trimmed_model_round_trips_through_the_pipeline_and_cli(tmp_path, tiny_model_dir, trimmed, capsys):
    from ragprune.cli import main
    from ragprune.pipeline import RerankPruner

    small, small_tokenizer, _ = trimmed
    folder = tmp_path / "small"
    small.save_pretrained(folder, small_tokenizer)
    loaded, loaded_tokenizer = load_model(folder)
    assert len(loaded_tokenizer) == len(small_tokenizer)
    torch.testing.assert_close(
        _outputs(loaded, loaded_tokenizer, QUERY, TEXTS), _outputs(small, small_tokenizer, QUERY, TEXTS)
    )
    with RerankPruner.load(folder, device="cpu") as pruner:
        assert len(pruner.process(QUERY, TEXTS)) == len(TEXTS)

    texts = tmp_path / "texts.jsonl.gz"
    with gzip.open(texts, "wt") as handle:
        for text in TEXTS:
            handle.write(json.dumps({"query": QUERY, "text": text, "score": 1}) + "\n")
    output = tmp_path / "compressed"
    argv = ["compress", "--model", str(tiny_model_dir), "--method", "magnitude", "--structure", "layers",
            "--sparsity", "0.5", "--vocabulary-size", str(SIZE), "--vocabulary-texts", str(texts),
            "--device", "cpu", "--output", str(output)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert f"vocabulary 30,522 -> {len(small_tokenizer):,} tokens, 100.00%" in capsys.readouterr().out
    report = json.loads((output / "compression.json").read_text())
    assert report["vocabulary"]["after"] == len(small_tokenizer) and report["vocabulary"]["texts"] == 2 * len(
        TEXTS
    )
    model, tokenizer = load_model(output)
    assert (len(tokenizer), model.backbone_config.num_hidden_layers) == (len(small_tokenizer), 1)
    no_texts = [a for a in argv if a not in ("--vocabulary-texts", str(texts))][:-1] + [str(tmp_path / "x")]
    assert main(no_texts) == 2 and "--vocabulary-size needs --vocabulary-texts" in capsys.readouterr().err

    def refused(change: dict[str, str], output: str) -> str:
        """The error of the CLI run with some option values changed (nothing may be written)."""
        bad = argv[:-1] + [str(tmp_path / output)]
        for option, value in change.items():
            bad[bad.index(option) + 1] = value
        assert main(bad) == 2 and not (tmp_path / output).exists()
        return capsys.readouterr().err

    assert "must lie in [" in refused({"--vocabulary-size": "50"}, "y")
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"score": 1}\n')
    assert "no text read from" in refused({"--vocabulary-texts": str(empty)}, "z")
    broken = tmp_path / "broken.jsonl"
    broken.write_text("not json\n")
    assert "--vocabulary-texts: " in refused({"--vocabulary-texts": str(broken)}, "w")
    assert "--vocabulary-texts needs --vocabulary-size" in refused({"--vocabulary-size": "0"}, "v")


def test_bad_input_is_refused(dense, tmp_path):
    model, tokenizer = dense
    with pytest.raises(ValueError, match="ascending"):
        trim_vocabulary(model, tokenizer, [5, 3, 0])
    with pytest.raises(ValueError, match="special and added token"):
        trim_vocabulary(model, tokenizer, [1, 2, 3])
    with pytest.raises(ValueError, match="must lie in"):
        trim_to_texts(model, tokenizer, TEXTS, len(tokenizer))
    with pytest.raises(ValueError, match="no token to count"):
        trim_to_texts(model, tokenizer, ["", "   "], SIZE)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        read_texts([bad])
    with pytest.raises(FileNotFoundError, match="vocabulary texts"):
        read_texts([tmp_path / "missing.txt"])
    plain = tmp_path / "plain.txt"
    plain.write_text("one text\n\nanother text\n")
    assert read_texts([plain]) == ["one text", "another text"]
    assert token_counts(tokenizer, read_texts([plain]))[1] == 2
