"""Decoder-LLM backends (FIRST, full ranking) on tiny randomly initialised Mistral / Llama models.

No real checkpoint is needed: the tests build a byte-level tokenizer (every byte one token, so ``A``..``Z``
are single tokens) with a Mistral-style chat template, save it with a 2-layer random model, and load the
folder as a user would. The expected prompts are written out by hand from the published templates
(castorini/rank_llm ``rank_zephyr_alpha_template.yaml``; RUC-NLPIR/fullrank ``utils.py``; FastChat's
``"mistral"`` conversation), so the rendering is checked against them and not against itself.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest
import torch

from ragprune.pipeline.modes import sliding_windows
from ragprune.rerankers import FirstLLM, FullRankLLM, Reranker
from ragprune.rerankers.llm_prompts import PermutationRepair, parse_permutation

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)

FIRST_SYSTEM = (
    "You are RankLLM, an intelligent assistant that can rank passages based on their relevancy to the query"
)
FULL_RANK_SYSTEM = FIRST_SYSTEM + "."

QUERY = "how long do fleas live [2]"
PASSAGES = [
    {"text": "Adult fleas live for months.", "title": "Fleas"},
    "  The Eiffel   Tower\nis in Paris, see [3].  ",
    "one two three four five six seven eight nine ten eleven twelve",
]
# Passage contents as both codes write them with 10 words per passage: title prefix, whitespace collapsed,
# "[3]" -> "(3)", the third cut to its first 10 words.
CONTENTS = [
    "Title: Fleas Content: Adult fleas live for months.",
    "The Eiffel Tower is in Paris, see (3).",
    "one two three four five six seven eight nine ten",
]


def _tokenizer(merges: list[tuple[str, str]] = (), chat_template: str | None = CHAT_TEMPLATE):
    """A byte-level BPE tokenizer (GPT-2 alphabet, ``<s>`` added in front like Llama/Mistral's)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tokens = ["<unk>", "<s>", "</s>", *sorted(pre_tokenizers.ByteLevel.alphabet())]
    tokens += ["".join(pair) for pair in merges]
    backend = Tokenizer(
        models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=list(merges), unk_token="<unk>")
    )
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def _save_model(folder: Path, config_name: str, tokenizer) -> Path:
    import transformers

    config_class = getattr(transformers, f"{config_name}Config")
    model_class = getattr(transformers, f"{config_name}ForCausalLM")
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=8192,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random Mistral and a tiny random Llama, each in its own folder with the test tokenizer."""
    return {
        name: _save_model(tmp_path_factory.mktemp(name.lower()), name, _tokenizer())
        for name in ("Mistral", "Llama")
    }


@pytest.fixture(scope="module")
def first(model_dirs) -> FirstLLM:
    return FirstLLM(model_dirs["Mistral"], device="cpu", fix_text=False)


@pytest.fixture(scope="module")
def full_rank(model_dirs) -> FullRankLLM:
    return FullRankLLM(model_dirs["Llama"], device="cpu", fix_text=False)


def test_both_backends_are_rerankers_behind_the_lazy_table():
    import ragprune.rerankers as rerankers

    assert issubclass(FirstLLM, Reranker) and issubclass(FullRankLLM, Reranker)
    assert {"FirstLLM", "FullRankLLM"} <= set(rerankers.__all__)


def test_first_prompt_is_rank_llms_alpha_template_token_for_token(first):
    first.max_passage_words = 10
    try:
        prompt = first.prompt(QUERY, PASSAGES)
    finally:
        first.max_passage_words = 300
    user = (
        "I will provide you with 3 passages, each indicated by an alphabetical identifier []. Rank the "
        "passages based on their relevance to the search query: how long do fleas live (2).\n"
        f"[A] {CONTENTS[0]}\n[B] {CONTENTS[1]}\n[C] {CONTENTS[2]}\n"
        "Search Query: how long do fleas live (2).\n"
        "Rank the 3 passages above based on their relevance to the search query. All the passages should "
        "be included and listed using identifiers, in descending order of relevance. The output format "
        "should be [] > [], e.g., [B] > [A], Answer concisely and directly and only respond with the ranking "
        "results, do not say any word or explain."
    )
    # the checkpoint's chat template (here the test's Mistral-style one), then FIRST's answer prefix "["
    assert prompt.text == f"<s>{FIRST_SYSTEM}\n\n[INST] {user} [/INST]["
    assert prompt.input_ids == first.tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
    assert prompt.input_ids.count(first.tokenizer.bos_token_id) == 1 and prompt.input_ids[0] == 1
    assert first.tokenizer.convert_ids_to_tokens(prompt.input_ids[-1]) == "["
    assert prompt.cut == (False, False, True)
    assert first.identifier_ids[:3] == first.tokenizer.convert_tokens_to_ids(["A", "B", "C"])


def test_full_rank_prompt_is_fullranks_template_token_for_token(model_dirs, full_rank):
    full_rank.max_passage_words = 10
    try:
        prompt = full_rank.prompt(QUERY, PASSAGES)
    finally:
        full_rank.max_passage_words = 100
    user = (
        "I will provide you with 3 passages, each indicated by a numerical identifier []. Rank the passages "
        "based on their relevance to the search query: how long do fleas live (2).\n\n"
        f"[1] {CONTENTS[0]}\n[2] {CONTENTS[1]}\n[3] {CONTENTS[2]}\n"
        "Search Query: how long do fleas live (2).\n"
        "Rank the 3 passages above based on their relevance to the search query. All the passages should "
        "be included and listed using identifiers, in descending order of relevance. The output format "
        "should be [] > [], e.g., [2] > [1], Only respond with the ranking results, do not say any word or "
        "explain."
    )
    # FastChat's "mistral" conversation; the tokenizer puts the BOS in front
    assert prompt.text == f"[INST] {FULL_RANK_SYSTEM}\n{user} [/INST]"
    assert prompt.input_ids == full_rank.tokenizer(prompt.text)["input_ids"]
    assert prompt.input_ids[0] == full_rank.tokenizer.bos_token_id and prompt.cut == (False, False, True)

    templated = FullRankLLM(
        model_dirs["Llama"], device="cpu", fix_text=False, conversation="chat_template", max_passage_words=10
    ).prompt(QUERY, PASSAGES)
    assert templated.text == f"<s>{FULL_RANK_SYSTEM}\n\n[INST] {user} [/INST]"
    assert templated.input_ids == full_rank.tokenizer(templated.text, add_special_tokens=False)["input_ids"]


def _fake_first_forward(model, monkeypatch, letter_logits):
    """Make ``model``'s forward return logits where every non-identifier token scores 50 and the window's
    identifiers get ``letter_logits(size)`` (far below: a top-k read-out would see none of them)."""
    seen = []

    def forward(input_ids=None, logits_to_keep=None, **kwargs):
        from transformers.modeling_outputs import CausalLMOutputWithPast

        seen.append((input_ids, logits_to_keep))
        text = model.tokenizer.decode(input_ids[0].tolist())
        size = int(text.split("I will provide you with ")[1].split(" ")[0])
        logits = torch.full((1, 1, model.model.config.vocab_size), 50.0)
        logits[0, 0, model.identifier_ids[:size]] = torch.tensor(letter_logits(size), dtype=torch.float32)
        return CausalLMOutputWithPast(logits=logits)

    monkeypatch.setattr(model.model, "forward", forward)
    return seen


def test_first_orders_a_window_by_the_full_vocabulary_first_token_logits(first, monkeypatch):
    chosen = [-90.0, -70.0, -95.0, -60.0, -80.0]  # A..E: best D, then B, E, A, C
    seen = _fake_first_forward(first, monkeypatch, lambda size: chosen[:size])
    docs = [f"passage number {i}" for i in range(5)]
    results = first.rank("query", docs, doc_ids=list("abcde"))
    assert [d.doc_id for d in results] == ["d", "b", "e", "a", "c"]
    (window,) = first.last_windows[0]
    assert (window.start, window.end, window.shown) == (0, 5, (0, 1, 2, 3, 4))
    assert window.logits == tuple(chosen) and window.order == (3, 1, 4, 0, 2)
    ((input_ids, logits_to_keep),) = seen
    assert logits_to_keep == 1 and input_ids.shape[0] == 1
    assert input_ids[0].tolist() == first.prompt("query", docs).input_ids
    # one rank score per passage: n - position, reciprocal rank as the probability
    assert [d.logit for d in results] == [5.0, 4.0, 3.0, 2.0, 1.0]
    assert [d.score for d in results] == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert results["d"].result.scores == {"first": 5.0}


def test_first_slides_20_10_windows_from_the_bottom_as_rank_llm(first, monkeypatch):
    assert sliding_windows(45, 20, 10) == [(25, 45), (15, 35), (5, 25), (0, 15)]
    assert sliding_windows(100, 20, 10)[0] == (80, 100) and sliding_windows(100, 20, 10)[-1] == (0, 20)
    assert len(sliding_windows(100, 20, 10)) == 9
    assert sliding_windows(7, 20, 10) == [(0, 7)] and sliding_windows(0, 20, 10) == []
    covered = {i for start, end in sliding_windows(45, 20, 10) for i in range(start, end)}
    assert covered == set(range(45))

    # a model that puts the last identifier first reverses every window it sees
    _fake_first_forward(first, monkeypatch, lambda size: [-100.0 + i for i in range(size)])
    results = first.process("query", [f"passage number {i}" for i in range(45)])
    (windows,) = first.last_windows
    assert [(w.start, w.end) for w in windows] == [(25, 45), (15, 35), (5, 25), (0, 15)]
    # by hand: reverse [25, 45), then [15, 35), [5, 25), [0, 15) of the list as each left it
    expected = [*range(35, 45), *range(4, -1, -1), *range(14, 4, -1), *range(24, 14, -1), *range(34, 24, -1)]
    assert [p.index for p in results.passages] == expected
    assert windows[1].shown == (*range(15, 25), *range(44, 34, -1))
    assert sorted(p.index for p in results.passages) == list(range(45))


@pytest.mark.parametrize(
    ("output", "order", "duplicates", "out_of_range", "missing"),
    [
        ("[3] > [3] > [99] > [1]", (2, 0, 1, 3), (3,), (99,), (2, 4)),
        ("[2] > [4] > [1] > [3]", (1, 3, 0, 2), (), (), ()),
        ("I cannot rank these.", (0, 1, 2, 3), (), (), (1, 2, 3, 4)),
        ("[0] > [4]>[4] > [²] > [1]</s>", (3, 0, 1, 2), (4,), (0,), (2, 3)),
    ],
)
def test_generated_permutations_are_repaired_as_published(output, order, duplicates, out_of_range, missing):
    repair = parse_permutation(output, 4)
    assert (repair.order, repair.duplicates, repair.out_of_range, repair.missing) == (
        order,
        duplicates,
        out_of_range,
        missing,
    )
    assert repair.repaired == bool(duplicates or out_of_range or missing)


def test_repair_summary_names_what_was_dropped_and_appended():
    repair = parse_permutation("[3] > [3] > [99] > [1]", 4)
    assert repair.identifiers == (3, 3, 99, 1)
    assert repair.summary() == (
        "dropped 1 duplicate(s) [3]; dropped 1 id(s) outside 1..4 [99]; "
        "appended 2 missing id(s) in input order [2] [4]"
    )
    assert parse_permutation("[1] > [2]", 2).summary() == "clean permutation of 2"
    assert repair.to_dict()["order"] == [2, 0, 1, 3] and repair.to_dict()["repaired"] is True


def test_full_rank_repairs_a_malformed_generation_and_reports_it(full_rank, monkeypatch, caplog):
    answer = "[3] > [3] > [99] > [1]"
    calls = []

    def generate(input_ids=None, generation_config=None, **kwargs):
        calls.append(generation_config)
        new = full_rank.tokenizer(answer, add_special_tokens=False)["input_ids"]
        return torch.cat([input_ids, torch.tensor([new])], dim=1)

    monkeypatch.setattr(full_rank.model, "generate", generate)
    docs = ["alpha text", "beta text", "gamma text", "delta text"]
    with caplog.at_level(logging.WARNING, logger="ragprune.rerankers.full_rank_llm"):
        results = full_rank.rank("q", docs, doc_ids=["a", "b", "c", "d"])
    assert [d.doc_id for d in results] == ["c", "a", "b", "d"]
    (repair,) = full_rank.last_repairs
    assert isinstance(repair, PermutationRepair) and repair.output == answer
    assert (repair.duplicates, repair.out_of_range, repair.missing) == ((3,), (99,), (2, 4))
    assert "appended 2 missing id(s) in input order [2] [4]" in caplog.text
    # greedy, and the answer length fullrank budgets: the tokens of "[1] > [2] > [3] > [4]" with the BOS
    (config,) = calls
    budget = len(full_rank.tokenizer("[1] > [2] > [3] > [4]")["input_ids"])
    assert config.do_sample is False and config.max_new_tokens == config.min_new_tokens == budget


@pytest.mark.parametrize("config_name", ["Mistral", "Llama"])
@pytest.mark.parametrize("backend", [FirstLLM, FullRankLLM])
def test_rank_end_to_end_with_a_tiny_random_model(model_dirs, config_name, backend):
    reranker = backend(model_dirs[config_name], device="cpu", fix_text=False)
    count = 25 if backend is FirstLLM else 5  # FIRST: two windows (5, 25) and (0, 15)
    docs = [f"Passage {i} says something. It has two sentences." for i in range(count)] + ["  "]
    ids = [f"d{i}" for i in range(len(docs))]
    results = reranker.rank("what do passages say?", docs, doc_ids=ids)
    assert sorted(d.doc_id for d in results) == sorted(ids)
    assert results[-1].doc_id == ids[-1] and results[-1].logit == float("-inf") and results[-1].score == 0.0
    assert [d.logit for d in results][:-1] == [float(count - i) for i in range(count)]
    assert all(d.pruned_text == d.text and d.truncated == () for d in results[:-1])
    key = "first" if backend is FirstLLM else "full_rank"
    assert results[0].result.scores == {key: float(count)}
    if backend is FirstLLM:
        assert [(w.start, w.end) for w in reranker.last_windows[0]] == [(5, 25), (0, 15)]
    else:
        assert reranker.last_repairs[0].count == count


def test_passages_lose_words_until_the_prompt_fits_and_say_so(model_dirs, full_rank):
    docs = [" ".join(f"word{j}" for j in range(60)) for _ in range(3)]
    whole = len(full_rank.tokenizer(full_rank.prompt("q", docs).text)["input_ids"])
    small = FullRankLLM(model_dirs["Llama"], device="cpu", fix_text=False, context_size=whole - 100)
    prompt = small.prompt("q", docs)
    assert prompt.cut == (True, True, True)
    assert len(small.tokenizer(prompt.text)["input_ids"]) <= small.context_size - small.answer_tokens(3)
    small.generate_ranking = lambda input_ids, count: "[2] > [1] > [3]"
    assert all(d.truncated == ("text",) for d in small.rank("q", docs))
    with pytest.raises(ValueError, match="context_size=50"):
        FullRankLLM(model_dirs["Llama"], device="cpu", fix_text=False, context_size=50).prompt("q", docs)


def test_clear_errors(model_dirs, tmp_path):
    with pytest.raises(FileNotFoundError, match="local folder"):
        FirstLLM(tmp_path / "no-such-checkpoint", fix_text=False)
    with pytest.raises(ValueError, match="A..Z"):
        FirstLLM(model_dirs["Mistral"], window=27, fix_text=False)
    with pytest.raises(ValueError, match="stride"):
        FirstLLM(model_dirs["Mistral"], stride=21, fix_text=False)
    with pytest.raises(ValueError, match="conversation"):
        FullRankLLM(model_dirs["Llama"], conversation="vicuna", fix_text=False)
    # a tokenizer that writes "[A" as one token cannot be read out after "["
    merged = _save_model(tmp_path / "merged", "Mistral", _tokenizer(merges=[("[", "A")]))
    with pytest.raises(ValueError, match="one token per identifier"):
        FirstLLM(merged, device="cpu", fix_text=False)
    bare = _save_model(tmp_path / "bare", "Mistral", _tokenizer(chat_template=None))
    with pytest.raises(ValueError, match="chat template"):
        FirstLLM(bare, device="cpu", fix_text=False)


def test_the_published_text_fixing_needs_ftfy(model_dirs, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ftfy" else find_spec(name, *a)
    )
    with pytest.raises(ImportError, match="pip install ftfy"):
        FirstLLM(model_dirs["Mistral"], device="cpu")


def test_the_published_text_fixing_uses_ftfy(model_dirs):
    pytest.importorskip("ftfy", reason="the llm extra")
    reranker = FirstLLM(model_dirs["Mistral"], device="cpu")
    assert "âœ”" not in reranker.prompt("q", ["It says âœ” here."]).text  # ftfy repairs the mojibake


def test_a_text_fixer_of_your_own_is_applied_to_passages_and_prompt(model_dirs):
    reranker = FirstLLM(model_dirs["Mistral"], device="cpu", fix_text=lambda text: text.replace("’", "'"))
    prompt = reranker.prompt("it’s", ["don’t"])
    assert "’" not in prompt.text and "[A] don't\n" in prompt.text
