"""Is a DL21 validation gain a DL19/DL20 gain? Per-query nDCG@10 of two models on DL21 (the training
split train.py validates on) and on DL19/DL20 (BM25 top-100), with the paired tests of
``ragprune.evaluation.significance``. Reads the evaluation sets, so it only reports models already chosen.

    RAGPRUNE_DATA=../shared/data python training/experiments/session15/paired.py --data .cache/s13/train \
        ragprune/models/default .cache/s15/b7 .cache/s15/soup3/model
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ragprune.data import load_trec_dl
from ragprune.evaluation.ranking import evaluate_run
from ragprune.evaluation.significance import paired_test
from ragprune.models import load_tokenizer
from ragprune.pipeline import RerankPruner
from ragprune.pipeline.rerank_run import rerank_run
from ragprune.training.config import TrainConfig
from ragprune.training.data import load_training_data
from ragprune.training.validation import RankingValidator
from ragprune.types import Document


def trec_per_query(pruner: RerankPruner, name: str) -> dict[str, float]:
    """Per-query nDCG@10 of reranking the set's BM25 top-100 by the model's logit (no fusion)."""
    dl = load_trec_dl(name)
    corpus = {pid: Document(pid, text) for pid, text in dl.passages.items()}
    run = rerank_run(pruner, dl.topics, dl.run, corpus, top_k=100, fusion="none").run
    return evaluate_run(dl.qrels, run, ["nDCG@10"]).per_query["nDCG@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="build_data.py output (DL21 validation)")
    parser.add_argument("models", type=Path, nargs="+", help="model folders; the first is the baseline")
    args = parser.parse_args()
    config = TrainConfig(init=args.models[0], data=args.data, out=Path("/tmp/paired"), device="cpu")
    data = load_training_data(config, load_tokenizer(args.models[0]))
    validator = RankingValidator.from_records(data.valid)
    per_query: dict[Path, dict[str, dict[str, float]]] = {}
    for folder in args.models:
        with RerankPruner.load(folder, device="cpu", progress=False) as pruner:
            per_query[folder] = {
                "DL21": validator.validate_model(pruner, data.texts).per_query,
                "DL19": trec_per_query(pruner, "dl19"),
                "DL20": trec_per_query(pruner, "dl20"),
            }
    base = args.models[0]
    print(f"baseline {base}; nDCG@10 on the CPU (fp32), paired over queries")
    for folder in args.models[1:]:
        for name in ("DL21", "DL19", "DL20"):
            test = paired_test(per_query[base][name], per_query[folder][name])
            print(
                f"{folder} {name} ({test.n} q): {test.mean_b:.4f} vs {test.mean_a:.4f}, "
                f"diff {test.mean_diff:+.4f}, p (t) {test.t_pvalue:.3f}, p (randomization) "
                f"{test.randomization_pvalue:.3f}"
            )


if __name__ == "__main__":
    main()
