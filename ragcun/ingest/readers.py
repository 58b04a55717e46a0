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


def discover(paths: Sequence[str | Path], include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[Path]:
    """Supported files under ``paths``, filtered by glob patterns on the path relative to its root.

    Raises:
        InvalidInputError: if an input path does not exist.
    """
    found: dict[Path, None] = {}
    for raw in paths:
        root = Path(raw).expanduser()
        if not root.exists():
            raise InvalidInputError(f"{root}: no such file or directory")
        candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
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
            found[path.resolve()] = None
    return list(found)


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
    path: Path, fields: JsonlFields = JsonlFields(), max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
) -> Iterator[SourceDocument | InputProblem]:
    """Documents of one input file, by its suffix."""
    uri = str(path)
    suffix = path.suffix.lower()
    size = path.stat().st_size
    if size == 0:
        yield InputProblem(uri, "empty file")
        return
    if suffix == ".jsonl":
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
    if path.name == "corpus.jsonl" and fields == JsonlFields():
        fields = BEIR_FIELDS
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
            if fields == JsonlFields() and "_id" in row and "id" not in row:
                fields = BEIR_FIELDS  # a BEIR corpus under another file name
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


def document_of_row(row: dict, fields: JsonlFields = JsonlFields(), line_no: int | None = None) -> SourceDocument | str:
    """The document of one JSONL row (or one JSON document of an API request), or the reason it is not one."""
    if row.get(fields.id) in (None, ""):
        return f"missing id field {fields.id!r}"
    text, title = row.get(fields.text), row.get(fields.title)
    for name, value in ((fields.text, text), (fields.title, title)):
        if value is not None and not isinstance(value, str):
            return f"field {name!r} is {type(value).__name__}, not a string"
    # Title-only and text-only rows are both valid BEIR documents: what is embedded is title + text.
    text, title = text or "", (title or "").strip()
    if not text.strip() and not title:
        return f"both the text field {fields.text!r} and the title field {fields.title!r} are missing or empty"
    reserved = {fields.id, fields.text, fields.title}
    if fields.metadata is None:
        metadata = {k: v for k, v in row.items() if k not in reserved}
    else:
        metadata = {k: row[k] for k in fields.metadata if k in row}
    return SourceDocument(doc_id=str(row[fields.id]), text=text, title=title or None, metadata=metadata, line=line_no)
