"""Fusion of the reranker's scores with the first stage's scores, per query.

A reranker behind a strong first stage (SPLADE, a dense retriever) can rank worse than the first stage
alone; combining both scores keeps what each gets right. Three methods, as values in the style of
ir-measures measures (frozen, comparable, printable, parsed from strings):

- ``NoFusion()`` (``"none"``): the reranker's logit alone.
- ``Interpolate(alpha)`` (``"interpolate"``, ``"interpolate:0.7"``): ``alpha * z(reranker logit) +
  (1 - alpha) * z(first-stage score)``, each z-scored over the query's reranked candidates
  (``z(x) = (x - mean) / population standard deviation``; all 0 when every value is equal). BM25,
  SPLADE, cosine and logit scores live on arbitrary, query-dependent scales, so a convex combination of
  raw scores would weight them by accident; per-query z-score normalisation is the standard remedy and
  the one Bruch, Gai & Ingber found robust for convex combination ("An Analysis of Fusion Functions for
  Hybrid Retrieval", ACM TOIS 42(1), 2023).
- ``Rrf(k)`` (``"rrf"``, ``"rrf:60"``): reciprocal rank fusion, ``1 / (k + rank_reranker) + 1 / (k +
  rank_first_stage)`` with 1-based ranks (Cormack, Clarke & Büttcher, "Reciprocal Rank Fusion
  outperforms Condorcet and individual Rank Learning Methods", SIGIR 2009; k = 60 there).

Scores are given in input order (the first stage's order for a run); ties keep that order. A candidate
whose reranker logit is not finite (an empty passage) takes no part in the fusion and gets ``-inf``.
``DEFAULT_FUSION`` was chosen on TREC DL21 only, by ``eval/choose_fusion.py`` (table in
``eval/results/fusion_dl21.md``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

SPEC_HELP = "'none', 'interpolate' or 'interpolate:<alpha in [0, 1]>', 'rrf' or 'rrf:<k>'"

#: The reranker's weight for ``"interpolate"`` without a number, chosen by eval/choose_fusion.py on TREC DL21
#: (table: eval/results/fusion_dl21.md): the alpha grid's best mean nDCG@10 over the BM25 and SPLADE++ ED
#: top-100 (0.5763 / 0.6241).
INTERPOLATE_ALPHA = 0.8
#: Cormack et al.'s constant.
RRF_K = 60


def is_finite_number(value: object) -> bool:
    """True for a finite real number (numpy scalars included), False for bool, None, nan, inf and others."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


class Fusion:
    """Base of the fusion methods: ``fuse`` maps per-candidate scores to fused scores (higher is better)."""

    name: ClassVar[str]
    needs_first_stage: ClassVar[bool] = True

    def fuse(self, reranker: Sequence[float], first_stage: Sequence[float] | None) -> list[float]:
        """Fused scores of one query's candidates, in input order (length = ``len(reranker)``).

        Raises ``ValueError`` when the method needs ``first_stage`` and it is missing, of another length
        or holds a non-finite score.
        """
        if not self.needs_first_stage:
            return [float(score) for score in reranker]
        if first_stage is None:
            raise ValueError(
                f"fusion {str(self)!r} needs the first stage's scores, and none were given: pass them "
                "(one per candidate), or use fusion='none' to rank by the reranker alone"
            )
        if len(first_stage) != len(reranker):
            raise ValueError(
                f"{len(first_stage)} first-stage scores for {len(reranker)} candidates; "
                "give one per candidate"
            )
        bad = [i for i, score in enumerate(first_stage) if not is_finite_number(score)]
        if bad:
            raise ValueError(
                f"first-stage score {first_stage[bad[0]]!r} of candidate {bad[0]} is not a finite number; "
                "pass the retriever's score for every candidate"
            )
        live = [i for i, score in enumerate(reranker) if math.isfinite(score)]
        fused = [-math.inf] * len(reranker)
        values = self._combine([float(reranker[i]) for i in live], [float(first_stage[i]) for i in live])
        for i, value in zip(live, values):
            fused[i] = value
        return fused

    def _combine(self, reranker: list[float], first_stage: list[float]) -> list[float]:
        raise NotImplementedError


@dataclass(frozen=True)
class NoFusion(Fusion):
    """Rank by the reranker's logit alone."""

    name: ClassVar[str] = "none"
    needs_first_stage: ClassVar[bool] = False

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Interpolate(Fusion):
    """``alpha * z(reranker) + (1 - alpha) * z(first stage)``, z-scored per query (alpha in [0, 1])."""

    alpha: float = INTERPOLATE_ALPHA
    name: ClassVar[str] = "interpolate"

    def __post_init__(self) -> None:
        if not is_finite_number(self.alpha) or not 0.0 <= self.alpha <= 1.0:
            raise ValueError(
                f"interpolate alpha={self.alpha!r}: use a number in [0, 1] (the reranker's weight; "
                "1 = reranker only, 0 = first stage only)"
            )

    def __str__(self) -> str:
        return f"{self.name}:{self.alpha:g}"

    def _combine(self, reranker: list[float], first_stage: list[float]) -> list[float]:
        return [
            self.alpha * r + (1.0 - self.alpha) * f
            for r, f in zip(z_scores(reranker), z_scores(first_stage), strict=True)
        ]


@dataclass(frozen=True)
class Rrf(Fusion):
    """Reciprocal rank fusion: ``1/(k + rank by reranker) + 1/(k + rank by first stage)`` (k > 0)."""

    k: int = RRF_K
    name: ClassVar[str] = "rrf"

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"rrf k={self.k!r}: use a positive integer (Cormack et al. use 60)")

    def __str__(self) -> str:
        return f"{self.name}:{self.k}"

    def _combine(self, reranker: list[float], first_stage: list[float]) -> list[float]:
        by_reranker, by_first = ranks(reranker), ranks(first_stage)
        return [1.0 / (self.k + a) + 1.0 / (self.k + b) for a, b in zip(by_reranker, by_first, strict=True)]


#: The library default (``ragprune rerank``, ``rank(..., first_stage_scores=...)``, the integrations):
#: eval/choose_fusion.py's choice on DL21 among none, interpolate over its alpha grid and rrf:60
#: (eval/results/fusion_dl21.md): rrf:60, the best mean nDCG@10 over the BM25 and SPLADE++ ED top-100
#: (0.5595 / 0.6675; none 0.5769 / 0.5778; the first stages alone 0.4458 / 0.6839). It does not keep
#: SPLADE++ at its own level (-0.016): no setting that reranks does with the shipped model.
DEFAULT_FUSION: Fusion = Rrf(RRF_K)


def resolve_fusion(fusion: str | Fusion | None, has_first_stage: bool) -> Fusion:
    """The fusion a call uses: ``fusion`` parsed, or for ``None`` ``DEFAULT_FUSION`` when first-stage
    scores are given and ``NoFusion()`` when they are not."""
    if fusion is None:
        return DEFAULT_FUSION if has_first_stage else NoFusion()
    return parse_fusion(fusion)


def parse_fusion(spec: str | Fusion) -> Fusion:
    """A ``Fusion`` from ``"none"``, ``"interpolate"``, ``"interpolate:0.7"``, ``"rrf"`` or ``"rrf:60"``
    (a ``Fusion`` passes through). Raises ``ValueError`` naming the problem and the accepted forms."""
    if isinstance(spec, Fusion):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"fusion must be a string such as {SPEC_HELP}, not {type(spec).__name__}")
    name, _, number = spec.strip().lower().partition(":")
    if name == NoFusion.name and not number:
        return NoFusion()
    try:
        if name == Interpolate.name:
            return Interpolate(float(number)) if number else Interpolate()
        if name == Rrf.name:
            return Rrf(int(number)) if number else Rrf()
    except ValueError as error:
        raise ValueError(f"fusion {spec!r}: {error}; use {SPEC_HELP}") from None
    raise ValueError(f"unknown fusion {spec!r}; use {SPEC_HELP}")


def z_scores(values: Sequence[float]) -> list[float]:
    """``(x - mean) / population standard deviation`` of each value; all 0 when the values are equal."""
    mean = math.fsum(values) / len(values) if values else 0.0
    spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values)) if values else 0.0
    return [(v - mean) / spread if spread > 0 else 0.0 for v in values]


def ranks(scores: Sequence[float]) -> list[int]:
    """1-based rank of each score, highest first; ties ranked in input order."""
    out = [0] * len(scores)
    for rank, i in enumerate(best_first(scores), start=1):
        out[i] = rank
    return out


def best_first(scores: Sequence[float]) -> list[int]:
    """Indices of ``scores`` from the highest to the lowest; ties keep input order."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])
