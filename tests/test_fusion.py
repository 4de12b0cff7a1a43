"""ragprune.fusion: the math on hand-computed inputs, parsing and errors, and fuse_run's run."""

from __future__ import annotations

import math

import pytest

from ragprune.data import format_run, ranked_items
from ragprune.fusion import (
    DEFAULT_FUSION,
    INTERPOLATE_ALPHA,
    RRF_K,
    Interpolate,
    NoFusion,
    Rrf,
    best_first,
    parse_fusion,
    ranks,
    resolve_fusion,
    z_scores,
)
from ragprune.pipeline.rerank_run import fuse_run

A = math.sqrt(1.5)  # z-score of 3 (and -z of 1) among 1, 2, 3: (3 - 2) / sqrt(2/3)


def test_z_scores_by_hand():
    assert z_scores([1.0, 2.0, 3.0]) == pytest.approx([-A, 0.0, A])
    assert z_scores([10.0, 30.0]) == pytest.approx([-1.0, 1.0])
    assert z_scores([4.0, 4.0, 4.0]) == [0.0, 0.0, 0.0]  # no spread: no information, not nan
    assert z_scores([7.0]) == [0.0]


def test_interpolate_by_hand():
    reranker, first = [1.0, 2.0, 3.0], [30.0, 20.0, 10.0]  # opposite orders
    assert Interpolate(0.75).fuse(reranker, first) == pytest.approx([-0.5 * A, 0.0, 0.5 * A])
    assert best_first(Interpolate(1.0).fuse(reranker, first)) == [2, 1, 0]  # reranker alone
    assert best_first(Interpolate(0.0).fuse(reranker, first)) == [0, 1, 2]  # first stage alone
    # scale-free: multiplying either score list by a positive constant changes nothing
    assert Interpolate(0.3).fuse([x * 100 for x in reranker], first) == pytest.approx(
        Interpolate(0.3).fuse(reranker, [x / 7 for x in first])
    )


def test_interpolate_equal_weights_tie_keeps_input_order():
    fused = Interpolate(0.5).fuse([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    assert fused == pytest.approx([0.0, 0.0, 0.0])
    assert best_first(fused) == [0, 1, 2]


def test_rrf_by_hand():
    fused = Rrf(60).fuse([0.1, 0.9, 0.5], [3.0, 2.0, 1.0])  # reranker ranks 3,1,2; first stage 1,2,3
    assert fused == pytest.approx([1 / 63 + 1 / 61, 1 / 61 + 1 / 62, 1 / 62 + 1 / 63])
    assert best_first(fused) == [1, 0, 2]
    assert Rrf(1).fuse([2.0, 1.0], [1.0, 2.0]) == [1 / 2 + 1 / 3, 1 / 3 + 1 / 2]


def test_ranks_and_ties_keep_input_order():
    assert ranks([5.0, 5.0, 1.0, 9.0]) == [2, 3, 4, 1]
    assert best_first([1.0, 3.0, 3.0, -math.inf, 3.0]) == [1, 2, 4, 0, 3]
    tied = Rrf().fuse([1.0, 2.0], [2.0, 1.0])  # swapped ranks: exactly equal sums
    assert tied[0] == tied[1] and best_first(tied) == [0, 1]


def test_empty_passages_take_no_part_and_go_last():
    fused = Interpolate(0.5).fuse([1.0, -math.inf, 3.0], [1.0, 100.0, 3.0])
    assert fused[1] == -math.inf and fused[0] == pytest.approx(-1.0) and fused[2] == pytest.approx(1.0)
    assert Rrf(60).fuse([-math.inf, 1.0], [2.0, 1.0]) == [-math.inf, 1 / 61 + 1 / 61]


def test_none_is_the_reranker_alone_and_needs_no_first_stage():
    assert NoFusion().fuse([0.5, -1.0], None) == [0.5, -1.0]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("none", NoFusion()),
        ("interpolate", Interpolate(INTERPOLATE_ALPHA)),
        ("interpolate:0.7", Interpolate(0.7)),
        (" Interpolate:1 ", Interpolate(1.0)),
        ("rrf", Rrf(RRF_K)),
        ("rrf:10", Rrf(10)),
    ],
)
def test_parse_and_print_round_trip(spec, expected):
    parsed = parse_fusion(spec)
    assert parsed == expected and parse_fusion(str(parsed)) == parsed
    assert parse_fusion(parsed) is parsed


def test_printed_forms():
    assert (str(NoFusion()), str(Interpolate(0.7)), str(Rrf())) == ("none", "interpolate:0.7", "rrf:60")
    assert Rrf() == Rrf(60) and hash(Interpolate(0.2)) == hash(Interpolate(0.2))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("linear", "unknown fusion 'linear'"),
        ("none:3", "unknown fusion 'none:3'"),
        ("interpolate:1.5", r"alpha=1\.5: use a number in \[0, 1\]"),
        ("interpolate:-0.1", r"use a number in \[0, 1\]"),
        ("interpolate:nan", r"use a number in \[0, 1\]"),
        ("interpolate:high", "fusion 'interpolate:high'"),
        ("rrf:0", "rrf k=0: use a positive integer"),
        ("rrf:6.5", "fusion 'rrf:6.5'"),
    ],
)
def test_bad_specs_name_the_problem_and_the_forms(spec, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_fusion(spec)
    assert "interpolate" in str(error.value)


def test_bad_values_and_types():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Interpolate(2.0)
    with pytest.raises(ValueError, match="positive integer"):
        Rrf(True)
    with pytest.raises(TypeError, match="fusion must be a string"):
        parse_fusion(0.5)


def test_missing_or_bad_first_stage_scores():
    with pytest.raises(ValueError, match="needs the first stage's scores.*fusion='none'"):
        Interpolate(0.5).fuse([1.0, 2.0], None)
    with pytest.raises(ValueError, match="1 first-stage scores for 2 candidates"):
        Rrf().fuse([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="score nan of candidate 1 is not a finite number"):
        Interpolate(0.5).fuse([1.0, 2.0], [1.0, math.nan])
    with pytest.raises(ValueError, match="score None of candidate 0"):
        Rrf().fuse([1.0], [None])


def test_resolve_default():
    assert resolve_fusion(None, has_first_stage=True) == DEFAULT_FUSION
    assert resolve_fusion(None, has_first_stage=False) == NoFusion()
    assert resolve_fusion("rrf", has_first_stage=False) == Rrf()


def test_fuse_run_orders_the_head_and_keeps_the_tail():
    run = {"q": {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}}
    logits = {"q": {"a": 0.0, "b": 5.0, "c": -math.inf}}  # c is an empty passage; d below top_k
    for fusion, head in (("none", ["b", "a"]), ("interpolate:0", ["a", "b"]), ("interpolate:1", ["b", "a"])):
        out = fuse_run(logits, run, fusion, top_k=3)
        assert [doc for doc, _ in ranked_items(out["q"])] == [*head, "c", "d"]


def test_fuse_run_ties_keep_the_first_stage_order_in_the_written_run():
    run = {"q": {"z": 2.0, "a": 1.0}}  # z first; doc-id order would put a first on a tie
    out = fuse_run({"q": {"z": 1.0, "a": 2.0}}, run, Rrf(), top_k=2)
    assert out["q"]["z"] > out["q"]["a"]  # RRF tie, nudged apart in the first stage's order
    assert out["q"]["z"] == pytest.approx(out["q"]["a"], abs=1e-12)
    assert format_run(out).split("\n")[0].split()[2] == "z"
