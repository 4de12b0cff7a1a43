"""Drop-in integrations with RAG frameworks.

Each lives in its own module and imports its framework only when that module is imported, so
``import ragprune`` never pulls in LangChain or LlamaIndex:

- ``ragprune.integrations.langchain.RagpruneCompressor``: a LangChain ``BaseDocumentCompressor``;
- ``ragprune.integrations.llamaindex.RagprunePostprocessor``: a LlamaIndex ``BaseNodePostprocessor``.

Both return passages best first, cut only by ``top_n`` and ``score_threshold``, never merge two
passages into one, leave the caller's objects untouched (they return pruned copies) and add the keys
of ``METADATA_KEYS`` to each passage's metadata, the original text under ``ORIGINAL_TEXT_KEY``.
"""

from __future__ import annotations

from ragprune.integrations._common import METADATA_KEYS, ORIGINAL_TEXT_KEY

__all__ = ["METADATA_KEYS", "ORIGINAL_TEXT_KEY"]
