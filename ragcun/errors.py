"""One error hierarchy for the library; the CLI turns any of these into a one-line ``Error: …``."""


class RagcunError(Exception):
    """Base class of every error ragcun raises on purpose."""


class ModelLoadError(RagcunError):
    """A model directory (or its base encoder) is missing, corrupt or inconsistent."""


class StoreLockedError(RagcunError):
    """An embedded store or home is already open in another process."""


class CollectionNotFound(RagcunError):
    """No collection of that name exists."""


class ModelMismatchError(RagcunError):
    """A model's version or dimension differs from the collection it is used with."""


class CatalogError(RagcunError):
    """The catalog is missing, not migrated, or inconsistent."""


class GenerationError(RagcunError):
    """A RAG generator backend failed: unreachable, refused, timed out or answered nonsense."""
