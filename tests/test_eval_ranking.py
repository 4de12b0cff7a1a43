from __future__ import annotations

import math

import pytest

from ragprune.data import DataMismatchError
from ragprune.evaluation import DEFAULT_MEASURES, evaluate_run, parse_measures, unreachable_measures

QRELS = {"q1": {"a": 2, "b": 0, "c": 1}, "q2": {"x": 1, "y": 3}, "q3": {"z": 1}}
RUN = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"w": 5.0, "x": 4.0}, "q9": {"a": 1.0}}


def test_parse_measures_accepts_ir_measures_names_and_drops_duplicates() -> None:
    measures = parse_measures(["nDCG@10", "RR(rel=2)@10", "R@100", "AP(rel=2)", "nDCG@10"])
    assert [str(m) for m in measures] == ["nDCG@10", "RR(rel=2)@10", "R@100", "AP(rel=2)"]
    assert [str(m) for m in parse_measures(DEFAULT_MEASURES)] == list(DEFAULT_MEASURES)


def test_bad_measure_name() -> None:
    with pytest.raises(ValueError) as error:
        parse_measures(["nDCG@10", "ndcg@10"])
    assert str(error.value) == (
        "unknown measure 'ndcg@10' (measure not found: ndcg); "
        "use ir-measures names such as nDCG@10, RR(rel=2)@10, R@100, AP(rel=2), P@5"
    )


def test_values_match_hand_computation() -> None:
    result = evaluate_run(QRELS, RUN, ["nDCG@10", "RR(rel=2)@10", "R@100", "P@2"])
    # trec_eval nDCG uses the grade as gain: q1 DCG = 2/log2(2) + 0 + 1/log2(4); ideal = 2 + 1/log2(3).
    q1_ndcg = (2 + 1 / 2) / (2 + 1 / math.log2(3))
    # q2: x (grade 1) at rank 2, y (grade 3) not retrieved.
    q2_ndcg = (1 / math.log2(3)) / (3 + 1 / math.log2(3))
    # q3 is judged but not in the run: it scores 0 and counts in the mean; q9 is not judged: ignored.
    assert result.per_query["nDCG@10"] == pytest.approx({"q1": q1_ndcg, "q2": q2_ndcg, "q3": 0.0})
    assert result.per_query["RR(rel=2)@10"] == {"q1": 1.0, "q2": 0.0, "q3": 0.0}
    assert result.per_query["R@100"] == pytest.approx({"q1": 1.0, "q2": 0.5, "q3": 0.0})
    assert result.per_query["P@2"] == pytest.approx({"q1": 0.5, "q2": 0.5, "q3": 0.0})
    assert result.aggregate["nDCG@10"] == pytest.approx((q1_ndcg + q2_ndcg) / 3)
    assert result.queries == ["q1", "q2", "q3"]
    assert result.unranked_queries == ["q3"]


def test_qrels_and_run_without_common_queries() -> None:
    with pytest.raises(DataMismatchError, match="the run and the qrels share no query ids"):
        evaluate_run(QRELS, {"other": {"a": 1.0}})


def test_unreachable_measures_flags_rel_thresholds_above_every_grade() -> None:
    binary = {"q1": {"a": 1, "b": 0}}
    assert unreachable_measures(binary, DEFAULT_MEASURES) == ["RR(rel=2)@10", "AP(rel=2)"]
    assert unreachable_measures(QRELS, DEFAULT_MEASURES) == []
    assert unreachable_measures({"q1": {"a": 0}}, ["nDCG@10"]) == ["nDCG@10"]
