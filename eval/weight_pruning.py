"""Weight pruning table: sparsity x method x granularity -> nDCG@10 (TREC DL19 = general, BEIR SciFact =
domain), sentence-pruning recall (WikiQA dev answerable, SciFact rationales dev), parameters, fp16 size and
pairs/s on the GPU and on the CPU, each measured side by side with the dense model in this one run.

Pipeline (``ragprune.weight_pruning``): calibration sets from training splits (domain = SciFact rationales
train + biomedical-looking DL21 queries, general = MS MARCO triples + other DL21 queries + NQ + WikiQA
train), k-means-sampled with the dense model's query embeddings; one pass of the joint rank + token loss
for the Fisher / gradient / activation statistics, shared by every row; then per row: prune (one-shot),
evaluate, distil from the dense model for ``--recover-steps`` steps, evaluate again. Every model is scored
on pairs tokenized once (``weight_pruning.measure``: the pipeline's own stage runner, so the numbers are
what ``RerankPruner.process`` returns). Pairs/s: encoder + heads + sentence scoring on pre-tokenized DL19
pairs, the dense model and the pruned one in alternation (median of ``--repeats``); masks run dense kernels,
2:4 runs torch's semi-structured sparse kernels where the GPU supports them.

Rows run in priority order (50% first: every method x granularity, one-shot and recovered; then 70% and
25%, recovered) and stop starting new rows after ``--time-budget`` seconds; results are written after every
row (``weight_pruning<suffix>.md / .json / .png`` in ``--out``). Evaluation sets only are read for the
measures; nothing is tuned on them.

H200, the whole table in one device call (carry ``.carry/wp`` and ``.whl``, timeout 600 s):
    # here, once: the wheels the GPU image lacks (as training/pack_for_gpu.sh) and this script's data
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl ir-measures==0.4.3 pytrec-eval-terrier==0.5.11 bm25s==0.3.16 PyStemmer==3.1.0
    RAGPRUNE_DATA=../shared/data .venv/bin/python eval/weight_pruning.py --pack-data .carry/wp
    # the device command
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 RAGPRUNE_DATA=$PWD/.carry/wp &&
    (cd .carry/wp && xargs gunzip -kf < gunzip.txt) &&
    python3 eval/weight_pruning.py --device cuda --time-budget 400 --out $OUT 2>&1 | grep -v "it/s]"
Rows not started within the budget are listed in the table; ``--sparsities 0.25 --suffix=-25`` runs them
in a second call. CPU smoke run (what the developer ran here):
    python eval/weight_pruning.py --device cpu --limit 5 --depth 20 --calibration-size 16 --recover-steps 20 \
        --sparsities 0.5 --dai-variants --throughput-pairs 48 --cpu-throughput-pairs 48 --repeats 2 \
        --time-budget 5000 --suffix=-cpu-smoke
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ragprune.data import data_root, load_beir, load_trec_dl, read_pruning_jsonl
from ragprune.devices import default_device, describe_hardware
from ragprune.evaluation import evaluate_run
from ragprune.evaluation.pruning import context_text, score_pruning
from ragprune.models.registry import load_model
from ragprune.pipeline.graphs import EncoderGraphs
from ragprune.pipeline.rerank_run import fuse_run
from ragprune.retrieval import get_retriever
from ragprune.weight_pruning.api import build_calibration, compress, measure
from ragprune.weight_pruning.calibration import load_source
from ragprune.weight_pruning.importance import PUBLISHED_BETA, DAIConfig
from ragprune.weight_pruning.loss import JointLoss, group_batches, model_inputs
from ragprune.weight_pruning.measure import (
    PreparedPairs,
    fp16_megabytes,
    inference_copy,
    kept_spans,
    parameter_counts,
    prepare_pairs_once,
    score_pairs,
    throughput,
)
from ragprune.weight_pruning.recovery import RecoveryConfig, distill
from ragprune.weight_pruning.sampling import kmeans_sample
from ragprune.weight_pruning.unstructured import parse_nm, to_semi_structured

METHODS = ("magnitude", "wanda", "fisher", "gaprune")
VARIANTS: dict[str, tuple[str, DAIConfig | None]] = {
    "magnitude": ("magnitude", None),
    "wanda": ("wanda", None),
    "fisher": ("fisher", None),
    "gaprune": ("gaprune", DAIConfig()),
    "gaprune-b1": ("gaprune", DAIConfig(beta=PUBLISHED_BETA)),
    "gaprune-ascoded": ("gaprune", DAIConfig(beta=PUBLISHED_BETA, normalize=False, alignment="paper")),
    "gaprune-b0": ("gaprune", DAIConfig(beta=0.0)),
    "gaprune-b0.5": ("gaprune", DAIConfig(beta=0.5)),
    "gaprune-noalign": ("gaprune", DAIConfig(alpha=0.0)),
}
"""Row name -> (importance method, DAI parameters). ``gaprune``: the library default (beta 0.25, terms
normalised, alignment per structure); ``gaprune-b1``: the published beta; ``gaprune-ascoded``: the authors'
code (beta 1, raw units, element-wise alignment); the others only for ``--dai-sweep``."""
STRUCTURES = ("unstructured", "2:4", "heads", "ffn", "layers", "heads+ffn")
RANKING = {"DL19": "TREC DL19 nDCG@10", "SciFact": "BEIR SciFact nDCG@10"}
PRUNING = {
    "WikiQA": "pruning/wikiqa_dev_answerable.jsonl",
    "SciFact-rationales": "pruning/scifact_rationales_dev.jsonl",
}
GATE = {"encoder_share": 0.70, "speedup": 1.3, "ndcg_drop": 0.01, "wikiqa_recall_drop": 0.02}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="dense model folder (default: the shipped model)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--out", type=Path, default=Path("eval/results"))
    p.add_argument("--suffix", default="", help="file names weight_pruning<suffix>.md/.json/.png")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(VARIANTS))
    p.add_argument(
        "--dai-variants",
        nargs="*",
        default=["gaprune-b1", "gaprune-ascoded"],
        choices=list(VARIANTS),
        help="extra rows at --variant-sparsities, after that sparsity's main rows",
    )
    p.add_argument("--variant-sparsities", nargs="*", type=float, default=[0.5])
    p.add_argument("--structures", nargs="+", default=list(STRUCTURES))
    p.add_argument("--sparsities", nargs="+", type=float, default=[0.5, 0.7, 0.25], help="in priority order")
    p.add_argument("--one-shot-at", nargs="*", type=float, default=[0.5], help="also evaluate one-shot here")
    p.add_argument("--recover-steps", type=int, default=200, help="distillation steps per model (0: none)")
    p.add_argument("--recover-lr", type=float, default=1e-4)
    p.add_argument("--calibration-size", type=int, default=128, help="groups per side (k-means sampled)")
    p.add_argument("--candidates", type=int, default=8)
    p.add_argument("--limit", type=int, default=0, help="first N queries / examples per set (smoke runs)")
    p.add_argument("--depth", type=int, default=100, help="first-stage candidates reranked per query")
    p.add_argument("--batch-size", type=int, default=256, help="encoder rows per batch on the main device")
    p.add_argument("--throughput-pairs", type=int, default=4096, help="pairs timed on the main device")
    p.add_argument("--cpu-throughput-pairs", type=int, default=96, help="pairs timed on the CPU (0: skip)")
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed rounds per throughput comparison (default: 10 for --candidate, 3 per table row). On the "
        "H200 a 4,096-pair round takes ~0.07 s: with 256-row batches the median of 3 put one candidate at "
        "1.01x and 1.05x the dense model in two runs, the median of 10 at 1.17x (session 11)",
    )
    p.add_argument("--time-budget", type=float, default=420.0, help="seconds after which no new row starts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dai-sweep",
        action="store_true",
        help="instead of the table: one-shot pruning at 50%% scored on held-out TRAINING groups (rank KL to "
        "the dense model, joint loss) for every method and DAI variant; how DAIConfig's beta was chosen",
    )
    p.add_argument("--heldout-size", type=int, default=12, help="held-out groups per side for --dai-sweep")
    p.add_argument(
        "--candidate",
        type=Path,
        default=None,
        metavar="DIR",
        help="instead of the table: the ship gate for one saved model (e.g. a pruned, vocabulary-trimmed and "
        "distilled `fast`) against --model, each on pairs tokenized by its own tokenizer "
        "(weight_pruning-candidate<suffix>.md/.json)",
    )
    p.add_argument(
        "--pack-data",
        type=Path,
        default=None,
        metavar="DIR",
        help="only copy the data files this script reads into DIR (for a GPU machine; two gzipped) and exit",
    )
    return p.parse_args(argv)


PACKED = (
    "trec-dl/dl19/topics.tsv",
    "trec-dl/dl19/qrels.txt",
    "trec-dl/dl19/bm25.top100.trec",
    "trec-dl/dl19/passages.tsv.gz",
    "trec-dl/dl20/topics.tsv",
    "trec-dl/dl20/passages.tsv.gz",
    "trec-dl/dl21/topics.tsv",
    "trec-dl/dl21/qrels.txt",
    "trec-dl/dl21/bm25.top100.trec",
    "trec-dl/dl21/passages.tsv.gz",
    "beir/scifact/corpus.jsonl",
    "beir/scifact/queries.jsonl",
    "beir/scifact/qrels/test.tsv",
    "pruning/wikiqa_dev_answerable.jsonl",
    "pruning/scifact_rationales_dev.jsonl",
    "pruning/scifact_rationales_train.jsonl",
    "pruning/nq_oracle_silver_train.jsonl",
    "pruning/wikiqa_train_pairs.tsv",
    "msmarco/triples.toy100.tsv",
    "trec-dl/dl22-unjudged/topics.tsv",
    "trec-dl/dl22-unjudged/bm25.top100.trec",
    "trec-dl/dl22-unjudged/passages.tsv.gz",
    "msmarco/dev-small.queries.tsv",
    "pruning/hotpotqa_train_distractor_100.jsonl",
)
"""Every data file the table, the sweep and ``training/gpu_fast.sh`` read: evaluation sets, calibration and
recovery sources (``msmarco-dev`` reads DL19 / DL20 only to leave their queries and passages out)."""
GZIPPED = (
    "beir/scifact/corpus.jsonl",
    "pruning/wikiqa_train_pairs.tsv",
    "pruning/nq_oracle_silver_train.jsonl",
    "pruning/scifact_rationales_train.jsonl",
    "pruning/hotpotqa_train_distractor_100.jsonl",
)
"""Packed gzipped and listed in the pack's ``gunzip.txt``; on the GPU machine:
``(cd DIR && xargs gunzip -kf < gunzip.txt)``."""


def pack_data(target: Path) -> None:
    """Copy :data:`PACKED` from the data root into ``target`` (same layout; :data:`GZIPPED` as ``.gz``)."""
    import gzip
    import shutil

    root = data_root()
    for relative in PACKED:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if relative in GZIPPED:
            with (root / relative).open("rb") as source, gzip.open(f"{destination}.gz", "wb", 9) as packed:
                shutil.copyfileobj(source, packed)
        else:
            shutil.copyfile(root / relative, destination)
    (target / "gunzip.txt").write_text("".join(f"{g}.gz\n" for g in GZIPPED), encoding="utf-8")
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(
        f"packed {len(PACKED)} files into {target} ({size / 1e6:.1f} MB); on the GPU machine first run: "
        f"(cd {target} && xargs gunzip -kf < gunzip.txt)"
    )


# ---- evaluation sets -------------------------------------------------------------------------------


def evaluation_sets(tokenizer: Any, max_length: int, limit: int, depth: int) -> dict[str, dict]:
    """Each set's pairs tokenized once, with what scoring needs (qrels and run, or pruning examples)."""
    sets: dict[str, dict] = {}
    dl = load_trec_dl("dl19")
    qids = sorted(dl.run)[: limit or None]
    runs = {q: dict(sorted(dl.run[q].items(), key=lambda kv: -kv[1])[:depth]) for q in qids}
    sets["DL19"] = _ranking_set(
        tokenizer, max_length, dl.topics, runs, dl.qrels, {p: (t, "") for p, t in dl.passages.items()}
    )
    beir = load_beir("scifact")
    qids = sorted(q for q in beir.queries if q in beir.qrels)[: limit or None]
    retriever = get_retriever("bm25s")
    retriever.index(beir.corpus)
    run = retriever.search({q: beir.queries[q] for q in qids}, k=depth)
    corpus = {d: (doc.text, doc.title) for d, doc in beir.corpus.items()}
    sets["SciFact"] = _ranking_set(tokenizer, max_length, beir.queries, run, beir.qrels, corpus)
    for name, relative in PRUNING.items():
        examples = [
            replace(e, answers=[]) for e in read_pruning_jsonl(data_root() / relative)[: limit or None]
        ]
        queries = [e.question for e in examples]
        pairs, owner = [], []
        for i, example in enumerate(examples):
            for context in example.contexts:
                pairs.append((i, context_text(context.sentences)[0], ""))
                owner.append(i)
        prepared = prepare_pairs_once(tokenizer, max_length, queries, pairs)
        sets[name] = {"kind": "pruning", "pairs": prepared, "examples": examples, "owner": owner}
    return sets


def _ranking_set(tokenizer: Any, max_length: int, topics: dict, run: dict, qrels: dict, corpus: dict) -> dict:
    qids = sorted(run)
    queries = [topics[q] for q in qids]
    keys, pairs = [], []
    for i, q in enumerate(qids):
        for doc_id in run[q]:
            text, title = corpus[doc_id]
            keys.append((q, doc_id))
            pairs.append((i, text, title))
    prepared = prepare_pairs_once(tokenizer, max_length, queries, pairs)
    judged = {q: qrels[q] for q in qids if q in qrels}
    depth = max(len(ranked) for ranked in run.values())
    return {"kind": "ranking", "pairs": prepared, "keys": keys, "run": run, "qrels": judged, "depth": depth}


def evaluate(model: Any, sets: dict[str, dict], device: torch.device, batch_size: int, pad_id: int) -> dict:
    """nDCG@10 of each ranking set, recall / tokens removed of each pruning set (model's threshold)."""
    start = time.perf_counter()
    ready = inference_copy(model, device)
    graphs = EncoderGraphs(ready) if device.type == "cuda" else None  # shared by the sets: shapes repeat
    out: dict[str, float] = {}
    for name, entry in sets.items():
        columns = score_pairs(
            ready, entry["pairs"], device, batch_size=batch_size, pad_id=pad_id, ready=True, graphs=graphs
        )
        if entry["kind"] == "ranking":
            logits: dict[str, dict[str, float]] = {}
            for (q, doc_id), value in zip(entry["keys"], columns.scores["rank"]):
                logits.setdefault(q, {})[doc_id] = float(value)
            reranked = fuse_run(logits, entry["run"], "none", entry["depth"])
            out[name] = evaluate_run(entry["qrels"], reranked, ["nDCG@10"]).aggregate["nDCG@10"]
        else:
            spans = kept_spans(entry["pairs"], columns)
            per_example: list[list] = [[] for _ in entry["examples"]]
            for i, kept in zip(entry["owner"], spans):
                per_example[i].append(kept)
            report = score_pruning(entry["examples"], per_example)
            out[f"{name} recall"] = report.recall
            out[f"{name} removed"] = report.compression
    out["seconds"] = time.perf_counter() - start
    del ready
    return out


# ---- throughput ------------------------------------------------------------------------------------


def measure_speed(
    dense: Any,
    model: Any,
    key: str,
    pairs: PreparedPairs | dict[str, PreparedPairs],
    cpu_pairs: PreparedPairs | dict[str, PreparedPairs] | None,
    device: torch.device,
    args: argparse.Namespace,
    cache: dict,
) -> dict:
    """Pairs/s of ``model`` and the dense model side by side, on the main device and on the CPU (cached per
    shape ``key``: uniform pruning at one sparsity gives every method the same shapes). ``pairs`` may give
    each model (``"dense"``, ``"pruned"``) its own tokenization of the same pairs."""
    if key in cache:
        return cache[key]
    entry: dict[str, Any] = {}
    targets = [(device, pairs, args.batch_size)]
    if device.type != "cpu" and cpu_pairs is not None:
        targets.append((torch.device("cpu"), cpu_pairs, 32))
    for target, target_pairs, batch in targets:
        ready = {"dense": inference_copy(dense, target), "pruned": inference_copy(model, target)}
        note = None
        if key.startswith("2:4") and target.type == "cuda":
            note = to_semi_structured(ready["pruned"])
            note = note or "torch semi-structured 2:4 kernels"
        elif key.startswith(("unstructured", "2:4")):
            note = "masks on dense kernels"
        try:
            timed = throughput(ready, target_pairs, target, repeats=args.repeats, batch_size=batch)
        except RuntimeError as error:  # a sparse kernel that converts but does not run: time the masks
            note = f"semi-structured kernels failed ({str(error)[:120]}); masks on dense kernels"
            ready["pruned"] = inference_copy(model, target)
            timed = throughput(ready, target_pairs, target, repeats=args.repeats, batch_size=batch)
        entry[target.type] = {
            "dense": timed["dense"]["median"],
            "pruned": timed["pruned"]["median"],
            "speedup": timed["pruned"]["median"] / timed["dense"]["median"],
            "pairs": len(target_pairs["dense"] if isinstance(target_pairs, dict) else target_pairs),
            "note": note,
            "rounds": timed,
        }
        del ready
    cache[key] = entry
    return entry


# ---- the run ---------------------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> list[tuple[float, str, str]]:
    """(sparsity, structure, row name) in priority order: each sparsity's main rows, then its DAI variants."""
    rows = []
    for sparsity in args.sparsities:
        names = list(args.methods)
        if any(abs(sparsity - v) < 1e-9 for v in args.variant_sparsities):
            names += [v for v in args.dai_variants if v not in names]
        for name in names:
            for structure in args.structures:
                nm = parse_nm(structure)
                if nm and abs(sparsity - (1 - nm[0] / nm[1])) > 1e-9:
                    continue
                rows.append((sparsity, structure, name))
    return rows


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.repeats is None:
        args.repeats = 10 if args.candidate is not None else 3
    if args.pack_data is not None:
        pack_data(args.pack_data)
        return {}
    for structure in args.structures:
        if structure not in STRUCTURES and parse_nm(structure) is None:
            raise SystemExit(f"--structures: unknown {structure!r}; use {STRUCTURES} or N:M")
    started = time.perf_counter()
    device = torch.device(args.device or default_device())
    torch.manual_seed(args.seed)
    dense, tokenizer = load_model(args.model)
    dense.to(device).eval()
    pad_id = tokenizer.pad_token_id or 0
    if args.dai_sweep:
        return heldout_sweep(args, dense, tokenizer, device)
    if args.candidate is not None:
        return candidate_gate(args, dense, tokenizer, device)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    sets = evaluation_sets(tokenizer, dense.config.max_length, args.limit, args.depth)
    timings["evaluation sets"] = time.perf_counter() - t
    t = time.perf_counter()
    calibration = build_calibration(
        dense, tokenizer, ["domain"], ["general"], args.calibration_size, args.candidates, args.seed
    )
    timings["calibration sets"] = time.perf_counter() - t
    stats = measure(dense, calibration, device)
    timings["statistics"] = stats.seconds
    speed_pairs = sets["DL19"]["pairs"].subset(args.throughput_pairs)
    cpu_pairs = sets["DL19"]["pairs"].subset(args.cpu_throughput_pairs) if args.cpu_throughput_pairs else None
    results: dict[str, Any] = {
        "model": str(args.model or "default"),
        "device": str(device),
        "hardware": describe_hardware(str(device)),
        "cpu": describe_hardware("cpu"),
        "limit": args.limit,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "sets": {name: len(entry["pairs"]) for name, entry in sets.items()},
        "calibration": calibration.summary(),
        "statistics_loss": stats.loss,
        "dense": {
            "metrics": evaluate(dense, sets, device, args.batch_size, pad_id),
            "parameters": parameter_counts(dense),
            "fp16_megabytes": fp16_megabytes(dense),
        },
        "rows": [],
        "not_run": [],
        "timings": timings,
    }
    print(f"dense: {json.dumps(results['dense']['metrics'])}")
    speed_cache: dict[str, dict] = {}
    recovery_batches = calibration.all_batches()
    for sparsity, structure, method in plan(args):
        library_method, dai = VARIANTS[method]
        elapsed = time.perf_counter() - started
        if elapsed > args.time_budget:
            results["not_run"].append({"sparsity": sparsity, "structure": structure, "method": method})
            continue
        row_start = time.perf_counter()
        result = compress(
            dense,
            tokenizer,
            method=library_method,
            structure=structure,
            sparsity=sparsity,
            statistics=stats,
            dai=dai,
            device=device,
        )
        model = result.model
        row: dict[str, Any] = {
            "sparsity": sparsity,
            "structure": structure,
            "method": method,
            "parameters": parameter_counts(model),
            "fp16_megabytes": fp16_megabytes(model),
            "weight_sparsity": result.report["weight_sparsity"],
            "encoder_structure": result.report["encoder_structure"],
            "num_hidden_layers": result.report["num_hidden_layers"],
        }
        if any(abs(sparsity - s) < 1e-9 for s in args.one_shot_at) or args.recover_steps == 0:
            row["one_shot"] = evaluate(model, sets, device, args.batch_size, pad_id)
        if args.recover_steps > 0:
            config = RecoveryConfig(steps=args.recover_steps, lr=args.recover_lr, seed=args.seed)
            row["recovery"] = distill(model, dense, recovery_batches, config, result.masks, device)
            row["recovered"] = evaluate(model, sets, device, args.batch_size, pad_id)
        key = structure if parse_nm(structure) or structure == "unstructured" else f"{structure}@{sparsity}"
        row["speed_key"] = key
        row["speed"] = measure_speed(dense, model, key, speed_pairs, cpu_pairs, device, args, speed_cache)
        row["seconds"] = time.perf_counter() - row_start
        results["rows"].append(row)
        final = row.get("recovered") or row.get("one_shot")
        print(f"{sparsity} {structure} {method}: {json.dumps(final)} ({row['seconds']:.1f}s)")
        del model, result
        write_outputs(results, args)
    results["timings"]["total"] = time.perf_counter() - started
    write_outputs(results, args, plot=True)
    return results


# ---- one saved model against the dense one -------------------------------------------------------


def candidate_gate(args: argparse.Namespace, dense: Any, tokenizer: Any, device: torch.device) -> dict:
    """The ship gate (:func:`gate`) for ``--candidate`` against the dense model: the same evaluation sets,
    each model reading pairs tokenized by its own tokenizer (a trimmed vocabulary segments some words
    differently), pairs/s side by side on the main device and on the CPU."""
    started = time.perf_counter()
    candidate, candidate_tokenizer = load_model(args.candidate)
    candidate.to(device).eval()
    sets = evaluation_sets(tokenizer, dense.config.max_length, args.limit, args.depth)
    same_tokens = candidate_tokenizer.get_vocab() == tokenizer.get_vocab()
    candidate_sets = (
        sets
        if same_tokens
        else evaluation_sets(candidate_tokenizer, candidate.config.max_length, args.limit, args.depth)
    )
    models = {
        "dense": (dense, tokenizer, sets),
        "candidate": (candidate, candidate_tokenizer, candidate_sets),
    }
    entries = {
        name: {
            "metrics": evaluate(
                model, model_sets, device, args.batch_size, model_tokenizer.pad_token_id or 0
            ),
            "parameters": parameter_counts(model),
            "fp16_megabytes": fp16_megabytes(model),
            "vocabulary": len(model_tokenizer),
            "layers": model.backbone_config.num_hidden_layers,
            "threshold": model.config.threshold,
        }
        for name, (model, model_tokenizer, model_sets) in models.items()
    }

    def own(count: int) -> dict[str, PreparedPairs]:
        """Each model's tokenization of the first ``count`` DL19 pairs."""
        return {
            "dense": sets["DL19"]["pairs"].subset(count),
            "pruned": candidate_sets["DL19"]["pairs"].subset(count),
        }

    cpu_pairs = own(args.cpu_throughput_pairs) if args.cpu_throughput_pairs else None
    speed = measure_speed(
        dense, candidate, "candidate", own(args.throughput_pairs), cpu_pairs, device, args, {}
    )
    row = {
        "parameters": entries["candidate"]["parameters"],
        "speed": speed,
        "recovered": entries["candidate"]["metrics"],
    }
    results = {
        "model": str(args.model or "default"),
        "candidate": str(args.candidate),
        "hardware": describe_hardware(str(device)),
        "cpu": describe_hardware("cpu"),
        "limit": args.limit,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "entries": entries,
        "speed": speed,
        "gate": gate(row, entries["dense"]),
        "seconds": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"weight_pruning-candidate{args.suffix}"
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (args.out / f"{stem}.md").write_text("\n".join(candidate_lines(results)) + "\n")
    print("\n".join(candidate_lines(results)))
    return results


MARKS = {True: "yes", False: "**no**", None: "n/a"}


def candidate_lines(results: dict) -> list[str]:
    """The candidate gate as Markdown: one column per model, then the checks."""
    entries = results["entries"]
    names = list(entries)
    lines = [
        f"# Ship gate: `{results['candidate']}` against `{results['model']}`\n",
        f"Main device: {results['hardware']}; CPU: {results['cpu']}. Produced by `eval/weight_pruning.py "
        "--candidate` (args in the JSON). Each model reads pairs tokenized by its own tokenizer; nDCG@10 on "
        "BM25 top-100, pruning recall at each model's own default threshold; pairs/s: encoder + heads + "
        "sentence scoring on pre-tokenized DL19 pairs, the two models in alternation (median of rounds).\n",
        "| | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    rows = [
        ("encoder parameters", lambda e: f"{e['parameters']['encoder']:,}"),
        ("layers / vocabulary", lambda e: f"{e['layers']} / {e['vocabulary']:,}"),
        ("fp16 MB", lambda e: f"{e['fp16_megabytes']:.1f}"),
        ("default threshold", lambda e: f"{e['threshold']}"),
    ]
    rows += [
        (key, lambda e, key=key: f"{e['metrics'][key]:.4f}")
        for key in entries["dense"]["metrics"]
        if key != "seconds"
    ]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(entries[name]) for name in names) + " |")
    for kind, s in results["speed"].items():
        spread = {name: f"{r['min']:.0f}-{r['max']:.0f}" for name, r in s["rounds"].items()}
        lines.append(
            f"| pairs/s, {kind} ({s['pairs']} pairs; median, min-max of {results['args']['repeats']}) | "
            f"{s['dense']:.0f} ({spread['dense']}) | {s['pruned']:.0f} ({spread['pruned']}), "
            f"x{s['speedup']:.2f} |"
        )
    lines += ["", "| check | pass |", "|---|---|"]
    verdict = results["gate"]
    for check, value in verdict["checks"].items():
        lines.append(f"| {check} | {MARKS[value]} |")
    lines.append(
        "\nRecall is compared at each model's own default threshold, as the gate says: a model that removes "
        "less keeps more, so read it beside the removed shares above."
    )
    passed = "**PASS**" if verdict["passed"] else "not passed"
    lines.append(f"\nEncoder share: {verdict['encoder_share']:.1%}. Gate: {passed}.\n")
    return lines


# ---- DAI parameters on held-out training groups ----------------------------------------------------

SWEEP = (
    "magnitude",
    "wanda",
    "fisher",
    "gaprune-ascoded",
    "gaprune-b1",
    "gaprune-b0.5",
    "gaprune",
    "gaprune-b0",
)
SWEEP_STRUCTURES = ("heads", "ffn", "unstructured", "layers")


def heldout_sweep(args: argparse.Namespace, dense: Any, tokenizer: Any, device: torch.device) -> dict:
    """One-shot pruning at 50% with every method and DAI variant, scored on held-out *training* groups
    (k-means-sampled with another seed from the same pools, without the calibration queries): the KL from
    the dense model's rank softmax to the pruned one's over each group's candidates, and the joint loss
    against the gold labels. No evaluation set is read. Writes ``weight_pruning-dai-heldout.md / .json``."""
    started = time.perf_counter()
    calibration = build_calibration(
        dense, tokenizer, ["domain"], ["general"], args.calibration_size, args.candidates, args.seed
    )
    stats = measure(dense, calibration, device)
    chosen = {group.query for s in calibration.sets.values() for group in s.groups}
    held: dict[str, list] = {}
    for side in ("domain", "general"):
        pool = [g for g in load_source(side, args.candidates, args.seed + 1) if g.query not in chosen]
        sample = kmeans_sample(pool, args.heldout_size, dense, tokenizer, side, args.seed + 1)
        held[side] = group_batches(sample.groups, tokenizer, dense.config.max_length, groups_per_batch=4)
    loss = JointLoss()

    def outputs(model: Any) -> dict[str, list]:
        with torch.no_grad():
            return {
                side: [model(**model_inputs(b, device)) for b in batches] for side, batches in held.items()
            }

    reference = outputs(dense)

    def score(model: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        for side, produced in outputs(model).items():
            kl = joint = 0.0
            for batch, mine, ref in zip(held[side], produced, reference[side]):
                shape = batch["gold"].shape
                target = torch.softmax(ref["rank"].float().view(shape), -1)
                log_p = torch.log_softmax(mine["rank"].float().view(shape), -1)
                kl += float(torch.nn.functional.kl_div(log_p, target, reduction="batchmean"))
                joint += float(loss(mine, {k: v.to(device) for k, v in batch.items()})["loss"])
            out[f"{side} rank KL"] = kl / len(produced)
            out[f"{side} joint loss"] = joint / len(produced)
        return out

    rows = [{"structure": "dense", "method": "dense", **score(dense)}]
    names = [name for name in SWEEP if name in VARIANTS]
    for structure in SWEEP_STRUCTURES:
        for name in names:
            method, dai = VARIANTS[name]
            pruned = compress(
                dense, tokenizer, method=method, structure=structure, sparsity=0.5, statistics=stats, dai=dai
            ).model.to(device)
            rows.append({"structure": structure, "method": name, **score(pruned)})
            print(json.dumps(rows[-1]))
    results = {
        "calibration": calibration.summary(),
        "heldout_groups": {side: sum(len(b["gold"]) for b in batches) for side, batches in held.items()},
        "rows": rows,
        "seconds": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"weight_pruning-dai-heldout{args.suffix}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    keys = [k for k in rows[0] if k not in ("structure", "method")]
    lines = [
        "# DAI parameters on held-out training groups (one-shot, 50%)\n",
        "`python eval/weight_pruning.py --dai-sweep` (no evaluation set is read). Calibration "
        f"{results['calibration']}; held-out groups (other k-means seed, calibration queries excluded): "
        f"{results['heldout_groups']}. Lower is better. DAI variants: `gaprune` = library default "
        "(beta 0.25, normalised terms, alignment per structure); `-b1` / `-b0.5` / `-b0`: other beta; "
        "`-ascoded`: the authors' code (beta 1, raw units, element-wise alignment).\n",
        "| structure | method | " + " | ".join(keys) + " |",
        "|---" * (2 + len(keys)) + "|",
    ]
    lines += [
        f"| {r['structure']} | {r['method']} | " + " | ".join(f"{r[k]:.4f}" for k in keys) + " |"
        for r in rows
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return results


# ---- report ----------------------------------------------------------------------------------------


def _final(row: dict) -> dict:
    return row.get("recovered") or row.get("one_shot") or {}


def gate(row: dict, dense: dict) -> dict[str, Any]:
    """The issue's ship gate for a structured row (recovered numbers): ``None`` where not measured."""
    metrics, base = _final(row), dense["metrics"]
    share = row["parameters"]["encoder"] / dense["parameters"]["encoder"]
    speed = row["speed"]
    checks = {
        "encoder parameters <= 70%": share <= GATE["encoder_share"],
        "GPU speed-up >= 1.3": speed["cuda"]["speedup"] >= GATE["speedup"] if "cuda" in speed else None,
        "CPU speed-up >= 1.3": speed["cpu"]["speedup"] >= GATE["speedup"] if "cpu" in speed else None,
        "DL19 within 0.01": metrics["DL19"] >= base["DL19"] - GATE["ndcg_drop"],
        "SciFact within 0.01": metrics["SciFact"] >= base["SciFact"] - GATE["ndcg_drop"],
        "WikiQA recall within 0.02": metrics["WikiQA recall"]
        >= base["WikiQA recall"] - GATE["wikiqa_recall_drop"],
    }
    known = [v for v in checks.values() if v is not None]
    return {"checks": checks, "passed": all(known) and len(known) == len(checks), "encoder_share": share}


def dai_comparison(results: dict) -> list[str]:
    """Per granularity, sparsity and stage: SciFact nDCG@10 of every method, and where GAPrune's DAI (the
    library default, ``gaprune``) ranks among magnitude, Wanda, Fisher and itself."""
    lines = ["## DAI (gaprune) against magnitude, Wanda and Fisher at equal sparsity, SciFact nDCG@10\n"]
    groups: dict[tuple[float, str], dict[str, dict]] = {}
    for row in results["rows"]:
        groups.setdefault((row["sparsity"], row["structure"]), {})[row["method"]] = row
    names = [m for m in VARIANTS if any(m in rows for rows in groups.values())]
    wins = ties = total = 0
    table = [
        "| sparsity | granularity | stage | " + " | ".join(names) + " | DAI rank (of the 4) |",
        "|---" * (4 + len(names)) + "|",
    ]
    for (sparsity, structure), rows in sorted(groups.items()):
        for stage in ("one_shot", "recovered"):
            values = {m: rows[m][stage]["SciFact"] for m in rows if stage in rows[m]}
            main = {m: v for m, v in values.items() if m in METHODS}
            if "gaprune" not in main or len(main) < 2:
                continue
            rank = 1 + sum(v > main["gaprune"] for v in main.values())  # ties share the better rank
            tied = sum(v == main["gaprune"] for v in main.values()) > 1
            wins += rank == 1 and not tied
            ties += rank == 1 and tied
            total += 1
            cells = [f"{values[m]:.4f}" if m in values else "" for m in names]
            table.append(
                f"| {sparsity:.0%} | {structure} | {stage.replace('_', '-')} | "
                + " | ".join(cells)
                + f" | {rank} of {len(main)} |"
            )
    if not total:
        return [*lines, "No comparison measured.\n"]
    verdict = (
        f"DAI (`gaprune`) has the best SciFact nDCG@10 of the four methods in {wins} of {total} comparisons "
        f"(granularity x sparsity x stage) and ties for best in {ties} more"
        + (": it does not win in general." if wins * 2 <= total else ".")
        + " `gaprune-b1` is the published beta, `gaprune-ascoded` the authors' code (raw units, element-wise "
        "alignment)."
    )
    return [*lines, verdict, "", *table, ""]


def write_outputs(results: dict, args: argparse.Namespace, plot: bool = False) -> None:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    stem = f"weight_pruning{args.suffix}"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / f"{stem}.md").write_text("\n".join(report_lines(results)) + "\n")
    if plot and results["rows"]:
        _plot(results, out / f"{stem}.png")


def report_lines(results: dict) -> list[str]:
    dense = results["dense"]
    base = dense["metrics"]
    lines = [
        "# Weight pruning of the shared encoder\n",
        f"Model `{results['model']}` on {results['hardware']} ({results['device']}); CPU column: "
        f"{results['cpu']}. Produced by `eval/weight_pruning.py` (args in the JSON).\n",
    ]
    if results["limit"]:
        lines.append(f"**Smoke run: only the first {results['limit']} queries / examples per set.**\n")
    lines.append(
        f"Sets (pairs): {results['sets']}. Calibration: {results['calibration']}. "
        f"Joint loss of the dense model on it: {results['statistics_loss']}.\n"
    )
    lines.append(
        f"Dense: DL19 {base['DL19']:.4f}, SciFact {base['SciFact']:.4f}, WikiQA recall "
        f"{base['WikiQA recall']:.4f}, SciFact-rationales recall {base['SciFact-rationales recall']:.4f}; "
        f"encoder {dense['parameters']['encoder']:,} parameters (layers {dense['parameters']['layers']:,}), "
        f"{dense['fp16_megabytes']:.1f} MB fp16.\n"
    )
    lines.append(
        "Columns: nDCG@10 and recall after recovery where run (one-shot in brackets where measured), "
        "Δ against the dense model; parameters as a share of the dense encoder (embeddings included) and "
        "nonzero transformer-layer weights; pairs/s of the pruned model / dense model on pre-tokenized "
        "pairs, same run.\n"
    )
    header = (
        "| sparsity | granularity | method | DL19 | SciFact | WikiQA recall | SciFact-rat. recall | "
        "encoder params | nonzero layer params | fp16 MB | GPU pairs/s (x dense) | CPU pairs/s (x dense) |"
    )
    lines += [header, "|---" * 12 + "|"]
    for row in results["rows"]:
        final, one = _final(row), row.get("one_shot") if "recovered" in row else None
        cells = []
        for key in ("DL19", "SciFact", "WikiQA recall", "SciFact-rationales recall"):
            cell = f"{final[key]:.4f} ({final[key] - base[key]:+.4f})"
            if one is not None:
                cell += f" [{one[key]:.4f}]"
            cells.append(cell)
        p, dp = row["parameters"], dense["parameters"]
        speeds = []
        for kind in ("cuda", "cpu"):
            s = row["speed"].get(kind)
            speeds.append(f"{s['pruned']:.0f} (x{s['speedup']:.2f})" if s else "n/a")
        lines.append(
            f"| {row['sparsity']:.0%} | {row['structure']} | {row['method']} | "
            + " | ".join(cells)
            + f" | {p['encoder'] / dp['encoder']:.1%} | {p['nonzero_layers'] / dp['nonzero_layers']:.1%} | "
            f"{row['fp16_megabytes']:.1f} | " + " | ".join(speeds) + " |"
        )
    if results["not_run"]:
        lines.append(
            f"\nNot run within --time-budget: {len(results['not_run'])} rows: {results['not_run']}\n"
        )
    lines.append("")
    lines += dai_comparison(results)
    lines += ["## Ship gate for a second model (`fast`), structured rows\n"]
    lines.append(
        "Gate: <= 70% of the dense encoder's parameters, >= 1.3x pairs/s on the CPU and the GPU, within 0.01 "
        "nDCG@10 on DL19 and SciFact, within 0.02 WikiQA recall. The encoder's parameters include the "
        "embedding table (about half of MiniLM's, untouched by head / FFN / layer pruning), so only the 70% "
        "rows can reach the 70% share; the share of transformer-layer parameters is given beside it.\n"
    )
    lines += [
        "| sparsity | granularity | method | encoder share | layer share | "
        + " | ".join(_gate_names())
        + " | pass |"
    ]
    lines += ["|---" * (6 + len(_gate_names())) + "|"]
    passing = []
    for row in results["rows"]:
        if row["structure"] in ("unstructured",) or parse_nm(row["structure"]):
            continue
        verdict = gate(row, dense)
        cells = [{True: "yes", False: "no", None: "n/a"}[v] for v in verdict["checks"].values()]
        lines.append(
            f"| {row['sparsity']:.0%} | {row['structure']} | {row['method']} | "
            f"{verdict['encoder_share']:.1%} | "
            f"{row['parameters']['layers'] / dense['parameters']['layers']:.1%} | "
            + " | ".join(cells)
            + f" | {'**PASS**' if verdict['passed'] else 'no'} |"
        )
        if verdict["passed"]:
            passing.append(f"{row['method']} {row['structure']} {row['sparsity']:.0%}")
    lines.append("")
    lines.append(f"Rows that pass every check: {', '.join(passing) if passing else 'none'}.\n")
    speeds = sorted({row["speed_key"]: row["speed"] for row in results["rows"]}.items())
    if speeds:
        lines += [
            "## Throughput by shape (side by side with the dense model)\n",
            "| shape | device | dense pairs/s | pruned pairs/s | x | pairs | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, entry in speeds:
            for kind, s in entry.items():
                lines.append(
                    f"| {key} | {kind} | {s['dense']:.0f} | {s['pruned']:.0f} | {s['speedup']:.2f} | "
                    f"{s['pairs']} | {s['note'] or ''} |"
                )
        lines.append("")
    lines.append(f"Timings (s): { {k: round(v, 1) for k, v in results['timings'].items()} }\n")
    return lines


def _gate_names() -> list[str]:
    return [
        "encoder parameters <= 70%",
        "GPU speed-up >= 1.3",
        "CPU speed-up >= 1.3",
        "DL19 within 0.01",
        "SciFact within 0.01",
        "WikiQA recall within 0.02",
    ]


def _plot(results: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[eval]'): no plot")
        return
    structures = [s for s in STRUCTURES if any(r["structure"] == s for r in results["rows"])]
    figure, axes = plt.subplots(2, len(structures), figsize=(3.2 * len(structures), 6), squeeze=False)
    for column, structure in enumerate(structures):
        for line, metric in enumerate(("DL19", "SciFact")):
            axis = axes[line][column]
            axis.axhline(results["dense"]["metrics"][metric], color="black", lw=0.8, ls=":", label="dense")
            for method in VARIANTS:
                rows = sorted(
                    (r for r in results["rows"] if r["structure"] == structure and r["method"] == method),
                    key=lambda r: r["sparsity"],
                )
                if not rows:
                    continue
                xs = [r["sparsity"] for r in rows]
                axis.plot(xs, [_final(r)[metric] for r in rows], marker="o", label=method)
                one = [
                    (r["sparsity"], r["one_shot"][metric])
                    for r in rows
                    if "one_shot" in r and "recovered" in r
                ]
                if one:
                    axis.plot(*zip(*one), marker="x", ls="none", color=axis.lines[-1].get_color())
            axis.set_title(f"{structure}: {metric}", fontsize=9)
            axis.set_xlabel("sparsity")
            if column == 0:
                axis.set_ylabel("nDCG@10")
    axes[0][0].legend(fontsize=7)
    figure.suptitle("nDCG@10 after pruning (o: recovered, x: one-shot)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
