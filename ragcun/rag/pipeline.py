"""Retrieve, then generate: a question in, an answer with citations out."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from ragcun.rag.config import RAGConfig
from ragcun.rag.generator import NO_CONTEXT_ANSWER, Generator
from ragcun.rag.retriever import RetrievedDoc, Retriever
from ragcun.validation import check_top_k, require_text

logger = logging.getLogger(__name__)

# The answer when a collection's nearest passages are no closer than unrelated ones would be.
NOT_CLOSER_THAN_CHANCE = "No passage is closer than chance: the collection does not seem to answer this question."
# "[2]", and the grouped forms models also write: "[1, 3]", "[1][3]" is two matches.
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass(frozen=True)
class Citation:
    """A context passage the answer cites as ``[n]``."""

    n: int
    doc_id: str
    source: str | None
    distance: float
    probability: float | None
    chunk_id: str | None = None
    title: str | None = None


@dataclass
class RAGResult:
    """An answer, the passages it cites, and every passage it was given (numbered from 1)."""

    question: str
    answer: str
    citations: list[Citation] = field(default_factory=list)
    contexts: list[RetrievedDoc] = field(default_factory=list)
    generator: str = ""
    abstained: bool = False  # no context was closer than chance (see :func:`closer_than_chance`)

    def to_dict(self) -> dict:
        return asdict(self)


def cite(answer: str, contexts: Sequence[RetrievedDoc]) -> list[Citation]:
    """The contexts cited in ``answer`` by ``[n]``, in order of first citation; numbers that match
    no context (an LLM can invent them) are logged and dropped."""
    numbers: list[int] = []
    for group in _CITATION.findall(answer):
        for part in group.split(","):
            n = int(part)
            if n not in numbers:
                numbers.append(n)
    citations = []
    for n in numbers:
        if not 1 <= n <= len(contexts):
            logger.warning("answer cites [%d], but there are %d contexts", n, len(contexts))
            continue
        c = contexts[n - 1]
        citations.append(
            Citation(
                n=n,
                doc_id=c.doc_id,
                source=c.source,
                distance=c.distance,
                probability=c.probability,
                chunk_id=c.chunk_id,
                title=c.title,
            )
        )
    return citations


def closer_than_chance(contexts: Sequence[RetrievedDoc], threshold: float) -> bool:
    """False only when the hits carry p-values (an adapted collection) and none is below ``threshold``."""
    p_values = [c.p_value for c in contexts if c.p_value is not None]
    return not p_values or min(p_values) < threshold


class RAGPipeline:
    """Answer questions from documents: retrieve the nearest passages, then generate from them.

    Args:
        retriever: ``None`` builds an in-memory :class:`Retriever` of ``EMBEDDING_MODEL``.
        generator: ``None`` builds the :class:`Generator` named by ``MODEL_NAME`` (``extractive``).
        top_k: Passages per question when :meth:`query` is not told (default ``TOP_K``, else 5).
        config: Settings; ``None`` reads the environment (never a ``.env``: see :class:`RAGConfig`).
    """

    def __init__(
        self,
        retriever: Retriever | None = None,
        generator: Generator | None = None,
        *,
        top_k: int | None = None,
        config: RAGConfig | None = None,
    ):
        self.config = config if config is not None else RAGConfig.from_env()
        self.top_k = check_top_k(top_k) if top_k is not None else self.config.top_k
        self.retriever = retriever if retriever is not None else Retriever(self.config.embedding_model)
        self.generator = generator if generator is not None else Generator(config=self.config)

    def add_documents(
        self, documents: Sequence[str], ids: Sequence[str] | None = None, sources: Sequence[str | None] | None = None
    ) -> None:
        """Index documents in the (in-memory) retriever; see :meth:`Retriever.add_documents`."""
        self.retriever.add_documents(documents, ids=ids, sources=sources)

    def query(
        self, question: str, top_k: int | None = None, on_token: Callable[[str], None] | None = None
    ) -> RAGResult:
        """Answer ``question`` from its ``top_k`` nearest passages.

        Args:
            question: The question.
            top_k: Passages to retrieve (default: the pipeline's).
            on_token: Called with each piece of the answer as the generator produces it (token by
                token where the backend streams, the whole answer at once otherwise).

        Returns:
            The answer, its citations and the contexts; when nothing is retrieved, the answer is
            :data:`ragcun.rag.generator.NO_CONTEXT_ANSWER` and no generator is called. On an adapted
            collection, when no passage is closer than chance (every hit's ``p_value`` at least
            ``CHANCE_THRESHOLD``), the pipeline abstains: the answer is :data:`NOT_CLOSER_THAN_CHANCE`,
            ``abstained`` is true, and no generator is called.

        Raises:
            ValueError: on an empty question or a ``top_k`` that is not a positive integer.
            RagcunError: when the collection is missing or the generator fails.
        """
        require_text(question, "question")
        top_k = self.top_k if top_k is None else check_top_k(top_k)
        return self.answer(question, self.retriever.retrieve(question, top_k), on_token)

    def answer(
        self, question: str, contexts: list[RetrievedDoc], on_token: Callable[[str], None] | None = None
    ) -> RAGResult:
        """The generation half of :meth:`query`: answer ``question`` from ``contexts`` already retrieved
        (``ragcun serve`` retrieves through its own batched search path)."""
        require_text(question, "question")
        texts = [c.text for c in contexts]
        abstained = bool(contexts) and not closer_than_chance(contexts, self.config.chance_threshold)
        if not contexts or abstained:
            answer = NOT_CLOSER_THAN_CHANCE if abstained else NO_CONTEXT_ANSWER
            if on_token is not None:
                on_token(answer)
        elif on_token is None:
            answer = self.generator.generate(question, texts, embedder=self.retriever.embedder)
        else:
            pieces = []
            for piece in self.generator.stream(question, texts, embedder=self.retriever.embedder):
                on_token(piece)
                pieces.append(piece)
            answer = "".join(pieces)
        return RAGResult(
            question=question,
            answer=answer,
            citations=cite(answer, contexts),
            contexts=contexts,
            generator=self.generator.model_name,
            abstained=abstained,
        )

    def close(self) -> None:
        self.retriever.close()

    def __enter__(self) -> RAGPipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
