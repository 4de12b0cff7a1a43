"""Add pseudo-queries to a ``build_data.py`` folder: one sentence of a pool passage as the query (ICT).

Why: the reranker is distilled from bi-encoder teachers over ~11.6k real training queries, and it
overfits them (its DL21 validation score peaks after two epochs while the training loss keeps falling)
without reaching its teacher. No more real queries exist offline, and 60% of the real ones (MS MARCO
dev-small) find no related passage in the pool. Sentences of pool passages are queries whose pool
*does* hold related passages (other windows of the same article, other passages on the topic), and the
teacher's embeddings of every pool sentence and passage are already cached by ``build_data.py``, so the
teacher scores cost a matrix product. This is the inverse cloze task (Lee et al., 2019) used for
distillation instead of as a pre-training objective.

Recipe, per pseudo-query:
  * query: one sentence (8-40 words) of a pool passage with at least three sentences, one per passage,
    passages drawn with a seeded shuffle; never a passage of the DL21 validation runs, so that
    validation does not see its own passages as pseudo-query sources;
  * candidates: the pool's BM25 top-k for that sentence, **without any passage that holds the sentence
    verbatim** (its source and near-duplicate copies: a trivial match that would teach string
    containment, not relevance) and without DL21 validation passages;
  * teacher: the recipe ``build_data.py`` chose on DL21 (``stats.json``), ``z(mpnet + 0.1 bm25)`` per
    query, fixed here;
  * sentence cosines (MiniLM, like ``build_data.py``'s ``cos``) for the teacher's top candidate, which
    ``train.py`` may label silver.
The output folder holds ``--data``'s data files, with the pseudo-query groups appended to ``groups.jsonl.gz``
and their sentence records to ``sentences.jsonl.gz``; qids start with ``ict:``.

    .venv/bin/python training/build_ict.py --data .cache/train --out .cache/train-ict --queries 8000
"""

from __future__ import annotations

import argparse
import logging
import random
from pathlib import Path

import numpy as np

from ragprune.text import split_sentences
from ragprune.training import teachers
from ragprune.training.config import TrainConfig
from ragprune.training.ensembles import combine
from ragprune.training.files import copy_data_files, r3, read_jsonl, write_jsonl_gz

LOG = logging.getLogger("build_ict")
TEACHER = ("z", {"mpnet": 1.0, "bm25": 0.1})
"""The teacher recipe ``build_data.py`` chose on DL21 (``stats.json``: ``teacher.spec``)."""


def pseudo_queries(
    pool: list[dict], count: int, seed: int, exclude: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """(source pid, sentence) pairs: one eligible sentence from each of ``count`` shuffled passages,
    never from a passage in ``exclude``."""
    rng = random.Random(seed)
    order = sorted((p for p in pool if p["pid"] not in exclude), key=lambda p: p["pid"])
    rng.shuffle(order)
    chosen = []
    for passage in order:
        spans = split_sentences(passage["text"])
        if len(spans) < 3:
            continue
        sentences = [passage["text"][s.start : s.end] for s in spans]
        eligible = [s for s in sentences if 8 <= len(s.split()) <= 40]
        if eligible:
            chosen.append((passage["pid"], rng.choice(eligible)))
        if len(chosen) == count:
            break
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(".cache/train"), help="build_data.py output")
    parser.add_argument("--out", type=Path, required=True, help="new data folder")
    parser.add_argument("--queries", type=int, default=8000)
    parser.add_argument("--depth", type=int, default=30, help="BM25 candidates per pseudo-query")
    parser.add_argument("--cache", type=Path, default=Path(".cache/teacher-emb"))
    parser.add_argument(
        "--silver-min-cos", type=float, default=TrainConfig.default("silver_min_cos"), help="as in train.py"
    )
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from ragprune.retrieval import get_retriever
    from ragprune.types import Document

    pool = read_jsonl(args.data / "pool.jsonl.gz")
    texts = {p["pid"]: p["text"] for p in pool}
    validation = frozenset(
        c["pid"] for record in read_jsonl(args.data / "valid_dl21.jsonl.gz") for c in record["candidates"]
    )
    queries = pseudo_queries(pool, args.queries, args.seed, exclude=validation)
    LOG.info("%d pseudo-queries from %d pool passages", len(queries), len(pool))

    retriever = get_retriever("bm25s", k1=0.9, b=0.4)
    retriever.index({pid: Document(pid, text) for pid, text in sorted(texts.items())})
    # deeper than --depth: copies of the sentence and validation passages are dropped below
    run = retriever.search({f"ict:{i}": q for i, (_, q) in enumerate(queries)}, k=2 * args.depth)

    candidates = {
        f"ict:{i}": [
            (pid, score)
            for pid, score in sorted(run.get(f"ict:{i}", {}).items(), key=lambda kv: (-kv[1], kv[0]))
            if sentence not in texts[pid] and pid not in validation
        ][: args.depth]
        for i, (_, sentence) in enumerate(queries)
    }
    needed = sorted({pid for ranked in candidates.values() for pid, _ in ranked})
    spans_of = {pid: split_sentences(texts[pid]) for pid in needed}
    query_texts = [q for _, q in queries]
    embeddings = {}
    for name in teachers.TEACHERS:  # cached by build_data.py; anything missing is encoded (and cached)
        model = teachers.LazyTeacher(name)
        embeddings[name, "query"] = teachers.encode_cached(
            model, query_texts, teachers.EmbeddingCache(args.cache / f"{name}-sentences"), label=f"{name} q"
        )
        embeddings[name, "passage"] = dict(
            zip(
                needed,
                teachers.encode_cached(
                    model,
                    [texts[p] for p in needed],
                    teachers.EmbeddingCache(args.cache / f"{name}-passages"),
                    label=f"{name} passages",
                ),
            )
        )
    groups, silver = [], []
    for i, (qid, ranked) in enumerate(candidates.items()):
        if len(ranked) < 2:
            continue
        pids = [pid for pid, _ in ranked]
        feats = {
            "bm25": np.asarray([score for _, score in ranked], float),
            **{
                name: np.stack([embeddings[name, "passage"][p] for p in pids]) @ embeddings[name, "query"][i]
                for name in teachers.TEACHERS
            },
        }
        teacher = combine(TEACHER, feats)
        groups.append(
            {
                "qid": qid,
                "query": query_texts[i],
                "source": "ict",
                "candidates": [
                    {
                        "pid": p,
                        "bm25": r3(feats["bm25"][j]),
                        "minilm": r3(feats["minilm"][j]),
                        "mpnet": r3(feats["mpnet"][j]),
                        "teacher": r3(teacher[j]),
                        "label": None,
                    }
                    for j, p in enumerate(pids)
                ],
                "gold": {},
            }
        )
        top = int(np.argmax(teacher))
        if feats["mpnet"][top] >= args.silver_min_cos:
            silver.append((i, qid, pids[top]))
    sentence_texts = [texts[pid][s.start : s.end] for _, _, pid in silver for s in spans_of[pid]]
    vectors = teachers.encode_cached(
        teachers.LazyTeacher("minilm"),
        sentence_texts,
        teachers.EmbeddingCache(args.cache / "minilm-sentences"),
        label="minilm silver sentences",
    )
    sentence_records, offset = [], 0
    for i, qid, pid in silver:
        count = len(spans_of[pid])
        cos = vectors[offset : offset + count] @ embeddings["minilm", "query"][i]
        sentence_records.append({"qid": qid, "pid": pid, "cos": [r3(c) for c in cos]})
        offset += count
    LOG.info("%d groups, %d with a silver-labelled top passage", len(groups), len(sentence_records))

    copy_data_files(args.data, args.out, rewritten=("groups.jsonl.gz", "sentences.jsonl.gz"))
    for name, extra in (("groups", groups), ("sentences", sentence_records)):
        write_jsonl_gz(args.out / f"{name}.jsonl.gz", read_jsonl(args.data / f"{name}.jsonl.gz") + extra)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
