"""CUDA graphs of the encoder (``ragprune.pipeline.graphs``): what can be checked without a GPU.

Capture and replay need CUDA (measured on the H200 in ``eval/results/bench_graphs_h200.md``: the same
logits and decisions as eager). Here: the CPU falls back to the eager forward, the runner calls the graphs
object it is given and its outputs do not change, the pruner builds graphs only on CUDA, and the 4-D mask
that ``encode`` passes on CUDA means to transformers what the 2-D one means.
"""

from __future__ import annotations

import threading

import pytest
import torch
from sample_texts import QUERY, TEXTS
from tiny_models import minilm_tokenizer_path

from ragprune.models import load_model, load_tokenizer
from ragprune.pipeline import RerankPruner
from ragprune.pipeline.graphs import EncoderGraphs, row_bucket


def _inputs(texts: list[str]) -> dict[str, torch.Tensor]:
    tokenizer = load_tokenizer(minilm_tokenizer_path())
    return tokenizer([QUERY] * len(texts), texts, return_tensors="pt", padding=True)


def test_cpu_inputs_run_eagerly_and_capture_nothing(tiny_model_dir):
    model = load_model(tiny_model_dir)[0].eval()
    batch = _inputs(TEXTS)
    graphs = EncoderGraphs(model)
    with torch.inference_mode():
        hidden = graphs.encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        expected = model.encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert torch.equal(hidden, expected)
    assert graphs.graphs == {} and graphs.disabled is None and (graphs.eager, graphs.replayed) == (1, 0)


def test_row_buckets_make_shapes_repeat_and_pad_at_most_a_fifth():
    assert [row_bucket(n) for n in (1, 8, 9, 13, 200, 256, 257)] == [8, 8, 10, 14, 224, 256, 320]
    buckets = [row_bucket(n) for n in range(9, 4097)]
    assert all(b >= n and (b - n) / b < 0.2 for n, b in zip(range(9, 4097), buckets))
    assert len(set(buckets)) == 4 * 9  # four per doubling, from (8, 16] to (2048, 4096]


def test_moved_or_replaced_weights_are_noticed(tiny_model_dir):
    model = load_model(tiny_model_dir)[0].eval()
    graphs = EncoderGraphs(model)
    assert not graphs._weights_moved()
    model.heads.to(torch.float64)  # the graphs do not read the heads
    assert not graphs._weights_moved()
    model.load_state_dict(model.state_dict())  # copied in place: the graphs still read the right memory
    assert not graphs._weights_moved()
    model.to(torch.float64)  # new storage for every parameter, the same Parameter objects
    assert graphs._weights_moved()
    graphs._watched, graphs._pointers = graphs._watch()
    assert not graphs._weights_moved()
    for name in (next(n for n, _ in model.encoder.named_parameters()), "encoder.layer.0.output.dense.weight"):
        module_name, _, attribute = name.rpartition(".")  # the first parameter, then one in the middle
        module = model.encoder.get_submodule(module_name)
        setattr(module, attribute, torch.nn.Parameter(getattr(module, attribute).detach().clone()))
        assert graphs._weights_moved()  # another first tensor, or the replaced one was freed
        graphs._watched, graphs._pointers = graphs._watch()


def test_graphs_of_another_model_are_refused(tiny_model_dir):
    from ragprune.weight_pruning.measure import prepare_pairs_once, score_pairs

    model, tokenizer = load_model(tiny_model_dir)
    pairs = prepare_pairs_once(tokenizer, 64, [QUERY], [(0, TEXTS[0], "")], workers=0)
    with pytest.raises(ValueError, match="graphs belong to another model"):
        score_pairs(model, pairs, "cpu", graphs=EncoderGraphs(model))  # ready=False: scored on a copy


def test_the_4d_boolean_mask_means_what_the_2d_mask_means(tiny_model_dir):
    """``encode`` gives a BERT backbone with SDPA a ``[B, 1, 1, L]`` boolean mask on CUDA; transformers must
    pass it on unchanged, so padded rows (texts of different lengths) get the same hidden states."""
    model = load_model(tiny_model_dir)[0].eval()
    assert model.takes_4d_mask  # BERT with SDPA attention: the case the CUDA path covers
    batch = _inputs([TEXTS[0], TEXTS[0] + " " + TEXTS[1] + " " + TEXTS[2]])
    assert not bool(batch["attention_mask"].all())  # the first row is padded
    mask = batch["attention_mask"]
    with torch.inference_mode():
        flat = model.encoder(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        four = model.encoder(
            input_ids=batch["input_ids"], attention_mask=mask[:, None, None, :].bool()
        ).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(four[real], flat[real], rtol=0, atol=1e-6)


class _Counting:
    """A graphs stand-in that counts the calls and runs the eager forward."""

    def __init__(self, model) -> None:
        self.model, self.calls, self.lock = model, 0, threading.Lock()

    def encode(self, *inputs):
        self.calls += 1
        return self.model.encode(*inputs)


def test_the_runner_encodes_through_its_graphs_object(tiny_model_dir):
    with RerankPruner.load(tiny_model_dir, device="cpu", batch_size=4) as pruner:
        assert pruner.runner.graphs is None  # graphs are built on CUDA only
        expected = pruner.process(QUERY, TEXTS, reorder=False)
        counting = _Counting(pruner.model)
        pruner.runner.graphs = counting  # type: ignore[assignment]
        result = pruner.process(QUERY, TEXTS, reorder=False)
    assert counting.calls >= 1
    assert [p.logit for p in result] == [p.logit for p in expected]
    assert [[s.kept for s in p.sentences] for p in result] == [
        [s.kept for s in p.sentences] for p in expected
    ]
    with RerankPruner.load(tiny_model_dir, device="cpu", cuda_graphs=False) as pruner:
        assert pruner.runner.graphs is None
