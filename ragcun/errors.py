"""One error hierarchy for the library; the CLI turns any of these into a one-line ``Error: …``."""


class RagcunError(Exception):
    """Base class of every error ragcun raises on purpose."""


class ModelLoadError(RagcunError):
    """A model directory (or its base encoder) is missing, corrupt or inconsistent."""
