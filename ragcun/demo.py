"""The quick-start job: index the bundled sample corpus in memory and answer a query."""

from __future__ import annotations

from pathlib import Path

from ragcun.beir import SAMPLE_DIR, read_corpus
from ragcun.retrieve import GaussianRetriever, Hit


def run_demo(query: str, top_k: int = 5, model_path: str | Path | None = None) -> list[Hit]:
    """Embed the ADI sample corpus (82 abstracts) and return the ``top_k`` nearest for ``query``."""
    corpus = read_corpus(SAMPLE_DIR)
    retriever = GaussianRetriever(model_path=model_path)
    retriever.add_documents(
        [doc.content for doc in corpus], ids=[doc.doc_id for doc in corpus], titles=[doc.title for doc in corpus]
    )
    return retriever.search(query, top_k)
