"""The rerank + prune pipeline: inputs, encoding into rows, batched scoring, results."""

from ragprune.pipeline.process import RerankPruner
from ragprune.pipeline.results import PassageResult, QueryResult, SentenceScore

__all__ = ["PassageResult", "QueryResult", "RerankPruner", "SentenceScore"]
