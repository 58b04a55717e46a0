"""One error hierarchy for the library; the CLI turns any of these into a one-line ``Error: …``.

Anything else that escapes to the CLI is a bug and is shown as such. User mistakes (bad arguments, unreadable
input) are :class:`InvalidInputError`, which is also a ``ValueError`` so callers catching the built-in keep working;
missing things are :class:`NotFoundError` subclasses, which are also ``LookupError``.
"""


class RagcunError(Exception):
    """Base class of every error ragcun raises on purpose."""


class InvalidInputError(RagcunError, ValueError):
    """An argument or input the caller can fix: empty query, ``top_k <= 0``, malformed file, bad option value."""


class InvalidTypeError(InvalidInputError, TypeError):
    """An argument of the wrong type: one string where a list of them is expected, ``None`` among texts."""


class NotFoundError(RagcunError, LookupError):
    """Something named by the caller does not exist."""


class CollectionNotFound(NotFoundError):
    """No collection of that name exists."""


class DocumentNotFound(NotFoundError):
    """No document with that id in the collection."""


class ChunkNotFound(NotFoundError):
    """No chunk with that id (or id prefix)."""


class ModelVersionNotFound(NotFoundError):
    """No registered model version matches that reference."""


class RunNotFound(NotFoundError):
    """No ingest or eval run with that id."""


class ModelLoadError(RagcunError):
    """A model directory (or its base encoder) is missing, corrupt or inconsistent."""


class StoreLockedError(RagcunError):
    """An embedded store or home is already open in another process."""


class ModelMismatchError(RagcunError):
    """A model's version or dimension differs from the collection it is used with."""


class CatalogError(RagcunError):
    """The catalog is missing, not migrated, or inconsistent."""


class CatalogNotInitialisedError(CatalogError):
    """The catalog database holds no schema (a new or 0-byte file): ``ragcun init`` has not run on it."""


class CatalogUnreadableError(CatalogError):
    """The catalog file is not a readable SQLite database: truncated, overwritten, or not SQLite at all."""


class StoreUnreachableError(RagcunError):
    """The Qdrant server at ``QDRANT_URL`` does not answer."""


class VerificationError(RagcunError):
    """A freshly built collection does not match the catalog; it stays unswitched."""


class EvaluationError(RagcunError):
    """Evaluation input is unusable: duplicate query ids, empty qrels, too few points, nothing judged."""


class GenerationError(RagcunError):
    """A RAG generator backend failed: unreachable, refused, timed out or answered nonsense."""


class IncompleteCollectionError(EvaluationError):
    """The collection lacks documents its corpus has (failed at ingest): a score on it would mislead."""
