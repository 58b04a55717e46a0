"""Turning input files into documents, with a precise error for each thing that can be wrong.

Every reader yields :class:`SourceDocument` for good input and :class:`InputProblem` for bad
input, so one bad line or file never stops an ingest run.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ragcun.beir import join_title
from ragcun.errors import InvalidInputError
from ragcun.ingest import files
from ragcun.ingest.files import SNIFF_BYTES, FileText, captured_warnings, read_sidecar, sidecar_path

FILE_READERS: dict[str, Callable[[Path], FileText]] = {
    ".txt": files.read_text,
    ".md": files.read_markdown,
    ".markdown": files.read_markdown,
    ".html": files.read_html,
    ".htm": files.read_html,
    ".pdf": files.read_pdf,
    ".docx": files.read_docx,
}
SUPPORTED_SUFFIXES = set(FILE_READERS) | {".jsonl"}
DEFAULT_MAX_DOCUMENT_BYTES = 10 * 2**20


@dataclass(frozen=True)
class SourceDocument:
    doc_id: str
    text: str
    title: str | None = None
    metadata: dict = field(default_factory=dict)
    line: int | None = None
    page_starts: tuple[int, ...] = ()  # offsets in ``text`` where pages 1, 2, … start (PDF)
    notes: tuple[str, ...] = ()  # warnings the reader's libraries raised; recorded on the run

    @property
    def content(self) -> str:
        """What gets chunked and embedded: the title (when there is one) and the text."""
        return join_title(self.title, self.text)

    @property
    def content_page_starts(self) -> tuple[int, ...]:
        """:attr:`page_starts` as offsets in :attr:`content` (after the title)."""
        shift = len(self.content) - len(self.text)
        return tuple(start + shift for start in self.page_starts)

    @property
    def sha256(self) -> str:
        payload = json.dumps([self.title, self.text, self.metadata], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class InputProblem:
    """A file, or one line of it, that could not be read."""

    uri: str
    error: str
    line: int | None = None
    warning: bool = False  # read all the same, with a note (a library warning); not a failure

    def to_dict(self) -> dict:
        return {"uri": self.uri, "line": self.line, "error": self.error, **({"warning": True} if self.warning else {})}


@dataclass(frozen=True)
class JsonlFields:
    """Field names of a JSONL input. ``metadata=None`` keeps every other field as metadata."""

    id: str = "id"
    text: str = "text"
    title: str = "title"
    metadata: tuple[str, ...] | None = None


# BEIR corpora name their fields this way.
BEIR_FIELDS = JsonlFields(id="_id", text="text", title="title", metadata=("metadata",))
# How a JSONL file's fields are named: ``auto`` takes BEIR's names for the corpus.jsonl of a BEIR folder only.
JSONL_FORMATS = ("auto", "jsonl", "beir")


def is_beir_corpus(path: Path) -> bool:
    """Whether ``path`` is the ``corpus.jsonl`` of a BEIR folder: beside a ``queries.jsonl`` or a ``qrels/`` folder.

    A user's own file that happens to be named ``corpus.jsonl`` is plain JSONL.
    """
    folder = path.parent
    return (
        path.name == "corpus.jsonl"
        and path.is_file()
        and ((folder / "queries.jsonl").is_file() or (folder / "qrels").is_dir())
    )


def discover(
    paths: Sequence[str | Path],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    problems: list[InputProblem] | None = None,
) -> list[Path]:
    """Supported files under ``paths``, filtered by glob patterns on the path relative to its root.

    Each input that cannot be taken (a path that does not exist, a FIFO or other special file, a folder
    with nothing ingestible, a file name that is not valid UTF-8) is a problem of that input only: it
    is appended to ``problems`` and the rest are still found. Without ``problems``, the first one raises.

    Raises:
        InvalidInputError: an input that cannot be taken, when ``problems`` is not given.
    """
    found: dict[Path, None] = {}

    def problem(uri: str, error: str, nothing: bool = False) -> None:
        if problems is None:
            raise InvalidInputError(f"{uri}: {error}")
        # A folder with nothing to take is said, not failed: with --sync it is how everything is deleted.
        problems.append(InputProblem(uri, error, warning=nothing))

    for raw in paths:
        root = Path(raw).expanduser()
        if not root.exists():
            problem(safe_name(root), "no such file or directory")
            continue
        if not root.is_file() and not root.is_dir():
            problem(safe_name(root), "not a regular file or folder (a FIFO, socket or device)")
            continue
        candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if not p.is_dir())
        taken = 0
        for path in candidates:
            relative = path.name if path == root else path.relative_to(root).as_posix()
            if root.is_dir() and path.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            if include and not any(_matches(relative, pattern) for pattern in include):
                continue
            if any(_matches(relative, pattern) for pattern in exclude):
                continue
            if root.is_dir() and path.name.endswith(files.SIDECAR_SUFFIX):
                continue  # the metadata of another file
            if root.is_dir() and path.name == "queries.jsonl" and is_beir_corpus(path.with_name("corpus.jsonl")):
                continue  # a BEIR folder's queries are not documents
            if not path.is_file():
                broken = path.is_symlink() and not path.exists()
                problem(
                    safe_name(relative),
                    "broken symbolic link" if broken else "not a regular file (a FIFO, socket or device)",
                )
                continue
            resolved = path.resolve()
            if not is_utf8(str(resolved)):
                problem(safe_name(Path(relative) if root.is_dir() else root), NOT_UTF8_NAME)
                continue
            found[resolved] = None
            taken += 1
        if root.is_dir() and not taken and not candidates:
            problem(safe_name(root), "empty folder: nothing to ingest", nothing=True)
        elif root.is_dir() and not taken and not any(not is_utf8(str(c)) for c in candidates):
            supported = " ".join(sorted(SUPPORTED_SUFFIXES))
            problem(safe_name(root), f"no file to ingest here (supported: {supported})", nothing=True)
    return list(found)


NOT_UTF8_NAME = "file name is not valid UTF-8: skipped (rename the file to ingest it)"


def is_utf8(name: str) -> bool:
    """Whether a file name (as Python decodes it) is valid UTF-8, which the catalog and payloads need."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safe_name(path: Path | str) -> str:
    """``path`` printable and storable whatever its bytes: undecodable bytes as ``\\xff`` escapes."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _matches(relative: str, pattern: str) -> bool:
    return fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(relative.rsplit("/", 1)[-1], pattern)


def file_sha256(path: Path) -> str:
    """The hash of a file and of its ``FILE.meta.json`` sidecar: a changed sidecar is a changed source."""
    digest = hashlib.sha256()
    for part in (path, sidecar_path(path)):
        if part != path and not part.is_file():
            continue
        with part.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_source(
    path: Path,
    fields: JsonlFields = JsonlFields(),
    max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    jsonl_format: str = "auto",
) -> Iterator[SourceDocument | InputProblem]:
    """Documents of one input file, by its suffix.

    ``jsonl_format`` (one of :data:`JSONL_FORMATS`): ``beir`` reads every JSONL file with BEIR's field
    names (``_id``, ``title``, ``text``, ``metadata``), ``jsonl`` with ``fields``, and ``auto`` with
    BEIR's only for the corpus of a BEIR folder (:func:`is_beir_corpus`) when ``fields`` are the defaults.
    """
    uri = str(path)
    suffix = path.suffix.lower()
    size = path.stat().st_size
    if size == 0:
        yield InputProblem(uri, "empty file")
        return
    if suffix == ".jsonl":
        if jsonl_format == "beir" or (jsonl_format == "auto" and fields == JsonlFields() and is_beir_corpus(path)):
            fields = BEIR_FIELDS
        yield from _read_jsonl(path, fields, max_bytes)
        return
    if size > max_bytes:
        yield InputProblem(uri, f"document is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit")
        return
    reader = FILE_READERS.get(suffix)
    if reader is None:
        yield InputProblem(uri, f"unsupported file type {suffix or '(none)'}")
        return
    notes: list[str] = []
    try:
        with captured_warnings(notes):
            found = reader(path)
        sidecar = read_sidecar(path)
    except ValueError as exc:
        yield InputProblem(uri, str(exc))
        return
    if not found.text.strip():
        yield InputProblem(uri, "no text in file")
        return
    # The sidecar is the user's word on the file: it wins over what the reader found.
    title = sidecar.pop("title", None) or found.title
    metadata = {**found.metadata, **sidecar}
    yield SourceDocument(
        doc_id=uri,
        text=found.text,
        title=str(title) if title else None,
        metadata=metadata,
        page_starts=found.page_starts,
        notes=tuple(dict.fromkeys(notes)),
    )


def _read_jsonl(path: Path, fields: JsonlFields, max_bytes: int) -> Iterator[SourceDocument | InputProblem]:
    uri = str(path)
    first_line: dict[str, int] = {}
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        if b"\x00" in head:
            yield InputProblem(uri, "binary file (NUL bytes), not JSONL")
            return
        handle.seek(0)
        for line_no, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            if len(raw) > max_bytes:
                yield InputProblem(
                    uri, f"line is {len(raw) / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit", line_no
                )
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield InputProblem(uri, f"invalid UTF-8 at byte {exc.start} of the line", line_no)
                continue
            except json.JSONDecodeError as exc:
                yield InputProblem(uri, f"malformed JSON: {exc.msg} (column {exc.colno})", line_no)
                continue
            if not isinstance(row, dict):
                yield InputProblem(uri, f"expected a JSON object, got {type(row).__name__}", line_no)
                continue
            doc = document_of_row(row, fields, line_no)
            if isinstance(doc, str):
                yield InputProblem(uri, doc, line_no)
                continue
            if doc.doc_id in first_line:
                yield InputProblem(
                    uri, f"duplicate id {doc.doc_id!r} (first seen on line {first_line[doc.doc_id]})", line_no
                )
                continue
            first_line[doc.doc_id] = line_no
            yield doc


def json_type(value: object) -> str:
    """What kind of JSON value a parsed ``value`` is, for messages: "a boolean", "an object", …"""
    names = {bool: "a boolean", int: "an integer", float: "a fractional number", dict: "an object", list: "an array"}
    return names.get(type(value), "a string" if isinstance(value, str) else "null")


def document_of_row(row: dict, fields: JsonlFields = JsonlFields(), line_no: int | None = None) -> SourceDocument | str:
    """The document of one JSONL row (or one JSON document of an API request), or the reason it is not one."""
    if row.get(fields.id) in (None, ""):
        if fields.id != BEIR_FIELDS.id and row.get(BEIR_FIELDS.id) not in (None, ""):
            return f"missing id field {fields.id!r} (the row has '_id': ingest a BEIR corpus with --format beir)"
        return f"missing id field {fields.id!r}"
    doc_id = row[fields.id]
    # str() of anything else would store "True", "1.5" or "{'a': 1}" as the id.
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
        shown = json.dumps(doc_id, ensure_ascii=False)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return f"id field {fields.id!r} must be a string or an integer, got {shown} ({json_type(doc_id)})"
    text, title = row.get(fields.text), row.get(fields.title)
    for name, value in ((fields.text, text), (fields.title, title)):
        if value is not None and not isinstance(value, str):
            return f"field {name!r} is {type(value).__name__}, not a string"
    # Title-only and text-only rows are both valid BEIR documents: what is embedded is title + text.
    text, title = text or "", (title or "").strip()
    notes: tuple[str, ...] = ()
    if not text.strip() and not title:
        # A row with an id and nothing else is still a document of the collection (Cranfield has two, empty in
        # the original): it is kept, with no chunk to search, so qrels that name it are scored against it.
        notes = (
            f"neither {fields.title!r} nor {fields.text!r} has text: kept as an empty document, nothing to search",
        )
    reserved = {fields.id, fields.text, fields.title}
    if fields.metadata is None:
        metadata = {k: v for k, v in row.items() if k not in reserved}
    else:
        metadata = {k: row[k] for k in fields.metadata if k in row}
    return SourceDocument(
        doc_id=str(doc_id), text=text, title=title or None, metadata=metadata, line=line_no, notes=notes
    )
