"""What this session's H200 timing scripts share: DL19's BM25 pairs and a 4-layer copy of a model."""

import time

from ragprune.data import load_trec_dl
from ragprune.models.encoder import RerankPruneModel
from ragprune.weight_pruning.api import compress


def dl19_pairs(limit: int = 4096) -> tuple[list[str], list[tuple[int, str, str]]]:
    """DL19's queries and its first ``limit`` (query index, passage, title) pairs of the BM25 top-100."""
    dl = load_trec_dl("dl19")
    qids = sorted(dl.run)
    queries = [dl.topics[q] for q in qids]
    pairs = [(i, dl.passages[p], "") for i, q in enumerate(qids) for p in dl.run[q]][:limit]
    return queries, pairs


def four_layers(model: RerankPruneModel, tokenizer) -> RerankPruneModel:
    """A 4-layer copy of ``model`` (magnitude layer pruning, no recovery): only its shape matters."""
    return compress(model, tokenizer, method="magnitude", structure="layers", sparsity=0.3334).model


def alternated_best(variants: dict, run, rounds: int = 8, warmup: int = 3, sync=None) -> tuple[dict, dict]:
    """Time ``run()`` under each variant in turn: ``variants[name]()`` switches to it. ``warmup`` passes
    each (their last output kept per variant), then ``rounds`` rounds alternating the variants; returns
    (name -> best seconds, name -> last warm-up output). ``sync``: waits for the device (e.g.
    ``torch.cuda.synchronize``)."""
    sync = sync or (lambda: None)
    outputs = {}
    for name, switch in variants.items():
        switch()
        for _ in range(warmup):
            outputs[name] = run()
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, switch in variants.items():
            switch()
            sync()
            start = time.perf_counter()
            run()
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, outputs
