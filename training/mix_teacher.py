"""Make the teacher of the next training round: the current teacher plus a trained model's scores.

``teacher' = (z(teacher) + w * z(model logit)) / (1 + w)`` per query, with ``w`` chosen on the DL21 validation
slice (a training split; DL19/DL20/BEIR are never read). Writes a copy of the ``build_data.py`` folder
whose ``teacher`` fields are replaced (and each candidate's ``student`` logit added), so ``train.py``
trains on it unchanged. Prints the DL21 nDCG@10 of every weight tried, measured like ``train.py``'s
validation: over the judged candidates of the BM25 top-100, so relevant passages outside the run are
not in the ideal ranking and the numbers read higher than the official measure.

Measured for the first default model (2026-11-29): teacher alone 0.7491, student alone 0.6805, best
mix (w = 0.5) 0.7526. The student is well below its teacher, and mixing it in adds too little to
be worth a round; the measurement is kept because it shows where the reranker stands.

    .venv/bin/python training/mix_teacher.py --data .carry/train --scores student_scores.jsonl.gz \\
        --out .carry/train2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ragprune.training.ensembles import zscore
from ragprune.training.files import copy_data_files, read_jsonl, write_jsonl_gz
from ragprune.training.validation import RankingValidator

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 1e6)
"""Student weights tried; 1e6 stands for the student alone."""


def mixed(record: dict, scores: dict[str, float], weight: float) -> np.ndarray:
    """``(z(teacher) + weight * z(student)) / (1 + weight)`` of a record's candidates (``scores``: pid ->
    the student's logit)."""
    teacher = np.asarray([c["teacher"] for c in record["candidates"]], float)
    student = np.asarray([scores[c["pid"]] for c in record["candidates"]], float)
    return (zscore(teacher) + weight * zscore(student)) / (1 + weight)


def dl21_ndcg(records: list[dict], scores: dict[str, dict[str, float]], weight: float) -> float:
    """nDCG@10 on the DL21 validation slice (judged candidates, keyed by docno) of reranking by the mixed
    teacher (``ragprune.training.validation.RankingValidator``)."""
    validator = RankingValidator.from_records(records)
    by_qid = {r["qid"]: r for r in records}
    return validator.evaluate(
        {q.qid: mixed(by_qid[q.qid], scores[q.qid], weight) for q in validator.queries}
    ).ndcg10


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="build_data.py output")
    parser.add_argument("--scores", type=Path, required=True, help="score_candidates.py output")
    parser.add_argument("--out", type=Path, required=True, help="new data folder")
    parser.add_argument("--weight", type=float, default=None, help="student weight (default: best on DL21)")
    args = parser.parse_args(argv)

    scores = {r["qid"]: r["scores"] for r in read_jsonl(args.scores)}
    valid = read_jsonl(args.data / "valid_dl21.jsonl.gz")
    table = {w: dl21_ndcg(valid, scores, w) for w in WEIGHTS}
    for w, value in table.items():
        print(f"student weight {w:g}: DL21 nDCG@10 {value:.4f}")
    weight = args.weight if args.weight is not None else max(table, key=table.get)
    print(f"chosen weight {weight:g}")

    rewritten = ("groups.jsonl.gz", "valid_pruning.jsonl.gz", "valid_dl21.jsonl.gz")
    copy_data_files(args.data, args.out, rewritten)
    for name in rewritten:
        records = read_jsonl(args.data / name)
        for record in records:
            if record["candidates"]:
                student = scores[record["qid"]]
                for candidate, value in zip(record["candidates"], mixed(record, student, weight)):
                    candidate["student"] = student[candidate["pid"]]
                    candidate["teacher"] = round(float(value), 4)
        write_jsonl_gz(args.out / name, records)
    summary = {"student_weight": weight, "dl21_ndcg@10": {str(w): v for w, v in table.items()}}
    (args.out / "teacher_mix.json").write_text(json.dumps(summary, indent=2))
    return weight


if __name__ == "__main__":
    main()
