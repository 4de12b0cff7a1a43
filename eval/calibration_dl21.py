"""Reliability of the shipped model's relevance probability on TREC DL21 (the tuning set), as a table.

``probability`` is Platt scaling of the rank logit fitted on DL21 at training time:
P(grade >= 2 | logit). This script bins DL21's BM25 top-100 predictions and compares each bin with the
observed share of passages judged >= 2 (and >= 1), with the expected calibration error
(``ragprune.evaluation.calibration``). It reads the DL21 logits that ``eval/choose_fusion.py`` caches
(``eval/results/fusion_dl21_logits.json.gz``), so run that first; the cache must belong to the model.

    python eval/calibration_dl21.py   # -> eval/results/calibration_dl21.md / .json
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from ragprune.data import data_root, load_trec_dl
from ragprune.evaluation.calibration import expected_calibration_error, reliability
from ragprune.models import RerankPruneConfig
from ragprune.models.registry import model_digest, resolve_model_path


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument("--logits", type=Path, default=Path("eval/results/fusion_dl21_logits.json.gz"))
    p.add_argument("--out", type=Path, default=Path("eval/results"))
    args = p.parse_args(argv)

    folder = resolve_model_path(args.model)
    if not args.logits.is_file():
        raise SystemExit(
            f"{args.logits} is missing: run `python eval/choose_fusion.py` first (it caches the logits)"
        )
    with gzip.open(args.logits, "rt", encoding="utf-8") as handle:
        cached = json.load(handle)
    if cached["model_sha256"] != model_digest(folder):
        raise SystemExit(f"{args.logits} holds another model's logits: rerun `python eval/choose_fusion.py`")
    calibration = RerankPruneConfig.load(folder).calibration
    dl21 = load_trec_dl(data_root() / "trec-dl/dl21")
    probabilities, grades = [], []
    for qid, ranked in dl21.run.items():
        if qid not in dl21.qrels:
            continue
        for doc in sorted(ranked, key=lambda d: -ranked[d])[:100]:
            logit = cached["logits"][qid].get(doc)
            if logit is None or doc not in dl21.qrels[qid]:
                continue  # unjudged (or empty) passages have no label
            probabilities.append(calibration.probability(logit))
            grades.append(dl21.qrels[qid][doc])
    report = {}
    for name, cut in (("grade >= 2", 2), ("grade >= 1", 1)):
        table = reliability(probabilities, [g >= cut for g in grades])
        report[name] = {"ece": expected_calibration_error(table), "bins": [vars(b) for b in table]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration_dl21.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Reliability of `probability` on TREC DL21 (BM25 top-100, judged pairs)",
        "",
        f"{len(probabilities)} judged (query, passage) pairs; `probability` = P(grade >= 2 | logit), Platt "
        "scaling fitted on DL21 by `training/train.py`. ECE: grade >= 2 "
        f"{report['grade >= 2']['ece']:.3f}, grade >= 1 {report['grade >= 1']['ece']:.3f}.",
        "",
        "| probability bin | pairs | mean probability | share grade >= 2 | share grade >= 1 |",
        "|---|---|---|---|---|",
    ]
    at_least_one = {b["low"]: b["observed"] for b in report["grade >= 1"]["bins"]}
    for b in report["grade >= 2"]["bins"]:
        lines.append(
            f"| [{b['low']:.1f}, {b['high']:.1f}) | {b['count']} | {b['mean_predicted']:.3f} | "
            f"{b['observed']:.3f} | {at_least_one[b['low']]:.3f} |"
        )
    (args.out / "calibration_dl21.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
