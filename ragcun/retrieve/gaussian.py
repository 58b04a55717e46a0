"""In-memory exact retrieval by Euclidean distance over Gaussian embeddings."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from ragcun.errors import InvalidInputError, ModelLoadError
from ragcun.model import GaussianEmbedder, default_model_path

logger = logging.getLogger(__name__)

STATE_FILE = "retriever.json"
VECTORS_FILE = "vectors.npy"
MODEL_DIR = "model"


def _flat_l2_index(dim: int) -> faiss.Index:
    """An exact L2 index, on the GPU when faiss was built with CUDA and a GPU is visible."""
    index = faiss.IndexFlatL2(dim)
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        logger.info("FAISS: exact search on GPU")
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    return index


def check_documents(documents: Sequence[str], name: str = "documents") -> list[str]:
    """Validate a batch of documents: a list of non-blank strings (``name`` names it in errors)."""
    if isinstance(documents, str):
        raise TypeError(f"{name} must be a list of strings, not a single string")
    documents = list(documents)
    for i, doc in enumerate(documents):
        if not isinstance(doc, str):
            raise TypeError(f"{name}[{i}] is {type(doc).__name__}, expected str")
        if not doc.strip():
            raise InvalidInputError(f"{name}[{i}] is empty")
    return documents


class GaussianRetriever:
    """Embed documents with a Gaussian model and retrieve them by true L2 distance.

    Args:
        model_path: A ragcun model directory; ``None`` uses the shipped default model
            (:func:`ragcun.model.default_model_path`).
        embedder: An already loaded model (takes precedence over ``model_path``).
    """

    def __init__(self, model_path: str | Path | None = None, embedder: GaussianEmbedder | None = None):
        if embedder is None:
            embedder = GaussianEmbedder.load(model_path if model_path is not None else default_model_path())
        self.embedder = embedder
        self.documents: list[str] = []
        self._vectors = np.empty((0, embedder.dim), dtype=np.float32)
        self._index = _flat_l2_index(embedder.dim)

    def __len__(self) -> int:
        return len(self.documents)

    def add_documents(self, documents: Sequence[str], batch_size: int = 32) -> None:
        """Embed and index documents; they are appended to those already added."""
        documents = check_documents(documents)
        if not documents:
            return
        vectors = self.embedder.encode(documents, batch_size=batch_size)
        self._append(documents, vectors)

    def _append(self, documents: list[str], vectors: np.ndarray) -> None:
        self._index.add(vectors)
        self._vectors = np.concatenate([self._vectors, vectors])
        self.documents.extend(documents)

    def embed(self, text: str) -> np.ndarray:
        """The Gaussian embedding of one text."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("text must be a non-empty string")
        return self.embedder.encode([text])[0]

    def retrieve(self, query: str, top_k: int = 5) -> list[tuple[str, float]]:
        """The ``top_k`` nearest documents as ``(document, distance)``, nearest first.

        The distance is the true Euclidean distance (not squared). A ``top_k`` beyond the corpus
        size returns every document; an empty retriever returns ``[]``.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query must be a non-empty string")
        return self.retrieve_vector(self.embedder.encode([query])[0], top_k)

    def retrieve_vector(self, vector: np.ndarray, top_k: int = 5) -> list[tuple[str, float]]:
        """Like :meth:`retrieve`, from an embedding instead of a text."""
        ids, distances = self.nearest(vector, top_k)
        return [(self.documents[i], float(d)) for i, d in zip(ids, distances)]

    def nearest(self, vector: np.ndarray, top_k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Positions in :attr:`documents` of the ``top_k`` nearest documents, and their true L2
        distances, nearest first (for callers that keep their own per-document ids)."""
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k <= 0:
            raise InvalidInputError(f"top_k must be a positive integer, got {top_k!r}")
        vector = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if vector.shape[1] != self.embedder.dim:
            raise InvalidInputError(f"vector has dim {vector.shape[1]}, the model's is {self.embedder.dim}")
        if not self.documents:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        k = min(int(top_k), len(self.documents))
        _, ids = self._index.search(vector, k)
        ids = ids[0]
        # FAISS ranks by ||x||² + ||q||² - 2x·q in float32; recompute the k winners exactly so the
        # reported distance is the true L2 norm, then re-sort in case rounding swapped near ties.
        distances = np.linalg.norm(self._vectors[ids].astype(np.float64) - vector.astype(np.float64), axis=1)
        order = np.argsort(distances, kind="stable")
        return ids[order], distances[order]

    # ---- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the model, vectors and documents to a directory (JSON and .npy, no pickle)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        fingerprint = self.embedder.save(path / MODEL_DIR)
        np.save(path / VECTORS_FILE, self._vectors, allow_pickle=False)
        state = {"model_version": fingerprint, "count": len(self.documents), "documents": self.documents}
        (path / STATE_FILE).write_text(json.dumps(state, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> GaussianRetriever:
        """Load a directory written by :meth:`save`."""
        path = Path(path)
        state_path = path / STATE_FILE
        if not state_path.is_file():
            raise InvalidInputError(f"{state_path}: missing; is {path} a saved GaussianRetriever?")
        state = json.loads(state_path.read_text())
        retriever = cls(model_path=path / MODEL_DIR)
        if retriever.embedder.fingerprint != state["model_version"]:
            raise ModelLoadError(f"{state_path}: vectors were built by model {state['model_version'][:12]}…, "
                                 f"but {path / MODEL_DIR} is {retriever.embedder.fingerprint[:12]}…")
        vectors = np.load(path / VECTORS_FILE, allow_pickle=False)
        if vectors.shape != (state["count"], retriever.embedder.dim) or len(state["documents"]) != state["count"]:
            raise InvalidInputError(f"{path / VECTORS_FILE}: shape {vectors.shape} does not match {state['count']} documents")
        retriever._append(list(state["documents"]), vectors.astype(np.float32, copy=False))
        return retriever
