"""The quick-start job: index the bundled sample corpus in memory and answer a query."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ragcun.beir import SAMPLE_DIR, read_corpus
from ragcun.retrieve import GaussianRetriever


@dataclass(frozen=True)
class DemoHit:
    doc_id: str
    title: str
    distance: float


def run_demo(query: str, top_k: int = 5, model_path: str | Path | None = None) -> list[DemoHit]:
    """Embed the ADI sample corpus (82 abstracts) and return the ``top_k`` nearest for ``query``."""
    corpus = read_corpus(SAMPLE_DIR)
    retriever = GaussianRetriever(model_path=model_path)
    retriever.add_documents([doc.content for doc in corpus])
    by_content = {doc.content: doc for doc in corpus}
    return [
        DemoHit(by_content[content].doc_id, by_content[content].title, distance)
        for content, distance in retriever.retrieve(query, top_k=top_k)
    ]
