"""Teacher ensembles: per-query combinations of teacher features (cosines, BM25, ...) into one score.

An ensemble is a ``Spec``: ``(kind, weights)`` with ``kind`` one of

* ``"raw"``: the single feature named in ``weights``, as is;
* ``"z"``: the weighted mean of per-query z-scores of the features;
* ``"rrf"``: reciprocal-rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009) with ``k = RRF_K``, ties
  broken by position.

``training/build_data.py``, ``build_ict.py``, ``splade_teacher.py`` and ``mix_teacher.py`` combine their
teachers with these functions; the choice among ensembles is made on DL21
(:class:`ragprune.training.validation.RankingValidator`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

RRF_K = 60
"""The rank offset of reciprocal-rank fusion."""

Spec = tuple[str, dict[str, float]]
"""An ensemble: ``("raw" | "z" | "rrf", {feature name: weight})``."""


def zscore(x: np.ndarray) -> np.ndarray:
    """``(x - mean) / (std + 1e-6)`` of one query's scores ``[n]`` (population std; constant x gives 0)."""
    return (x - x.mean()) / (x.std() + 1e-6)


def rrf(x: np.ndarray) -> np.ndarray:
    """``1 / (RRF_K + rank)`` of one query's scores ``[n]``, rank 1 = highest, ties by position."""
    order = np.lexsort((np.arange(len(x)), -x))
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    return 1.0 / (RRF_K + ranks)


def combine(spec: Spec, feats: Mapping[str, np.ndarray]) -> np.ndarray:
    """One query's ensemble score ``[n]`` from its features (``name -> [n]``, one value per candidate).

    ``raw`` returns the feature array itself; ``z`` and ``rrf`` divide by the sum of the weights.
    ``KeyError`` for a feature the spec names that ``feats`` lacks, ``ValueError`` for an unknown kind.
    """
    kind, weights = spec
    if kind == "raw":
        (name,) = weights
        return feats[name]
    if kind not in ("z", "rrf"):
        raise ValueError(f"unknown ensemble kind {kind!r}; use 'raw', 'z' or 'rrf'")
    transform = zscore if kind == "z" else rrf
    total = sum(weights.values())
    return np.asarray(sum(w * transform(feats[name]) for name, w in weights.items())) / total
