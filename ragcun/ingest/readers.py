"""Turning input files into documents, with a precise error for each thing that can be wrong.

Every reader yields :class:`SourceDocument` for good input and :class:`InputProblem` for bad
input, so one bad line or file never stops an ingest run.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ragcun.beir import join_title
from ragcun.errors import InvalidInputError

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx", ".jsonl"}
DEFAULT_MAX_DOCUMENT_BYTES = 10 * 2**20
# How much of a text file is sniffed for NUL bytes, the mark of a binary file.
SNIFF_BYTES = 8192


@dataclass(frozen=True)
class SourceDocument:
    doc_id: str
    text: str
    title: str | None = None
    metadata: dict = field(default_factory=dict)
    line: int | None = None

    @property
    def content(self) -> str:
        """What gets chunked and embedded: the title (when there is one) and the text."""
        return join_title(self.title, self.text)

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

    def to_dict(self) -> dict:
        return {"uri": self.uri, "line": self.line, "error": self.error}


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
            found[path.resolve()] = None
    return list(found)


def _matches(relative: str, pattern: str) -> bool:
    return fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(relative.rsplit("/", 1)[-1], pattern)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
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
    try:
        if suffix in TEXT_SUFFIXES:
            title, text = None, _decode_text(path.read_bytes())
        elif suffix in HTML_SUFFIXES:
            title, text = _read_html(path)
        elif suffix == ".pdf":
            title, text = _read_pdf(path)
        elif suffix == ".docx":
            title, text = _read_docx(path)
        else:
            yield InputProblem(uri, f"unsupported file type {suffix or '(none)'}")
            return
    except ValueError as exc:
        yield InputProblem(uri, str(exc))
        return
    if not text.strip():
        yield InputProblem(uri, "no text in file")
        return
    yield SourceDocument(doc_id=uri, text=text, title=title)


def _decode_text(data: bytes) -> str:
    if b"\x00" in data[:SNIFF_BYTES]:
        raise ValueError("binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid UTF-8 at byte {exc.start}") from None


def _read_html(path: Path) -> tuple[str | None, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode_text(path.read_bytes()), "html.parser")
    for hidden in soup(["script", "style", "noscript", "template"]):
        hidden.decompose()
    title = soup.title.get_text(strip=True) if soup.title else None
    if soup.title:
        soup.title.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return title or None, "\n".join(line for line in lines if line)


def _read_pdf(path: Path) -> tuple[str | None, str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ValueError("encrypted PDF (needs a password)")
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
        title = reader.metadata.title if reader.metadata else None
    except ValueError:
        raise
    except (PdfReadError, OSError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"corrupt PDF: {exc}") from None
    if not text.strip():
        raise ValueError("PDF has no extractable text (scanned images?)")
    return title or None, text


def _read_docx(path: Path) -> tuple[str | None, str]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, ValueError, KeyError, OSError) as exc:
        raise ValueError(f"not a valid .docx file: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile and lxml errors surface under several names
        raise ValueError(f"not a valid .docx file: {exc}") from None
    text = "\n".join(p.text for p in document.paragraphs if p.text.strip())
    return document.core_properties.title or None, text


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
            doc = _jsonl_document(row, fields, line_no)
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


def _jsonl_document(row: dict, fields: JsonlFields, line_no: int) -> SourceDocument | str:
    """The document of one JSONL row, or the reason it is not one."""
    if row.get(fields.id) in (None, ""):
        return f"missing id field {fields.id!r}"
    text = row.get(fields.text)
    if not isinstance(text, str) or not text.strip():
        return f"missing or empty text field {fields.text!r}"
    title = row.get(fields.title)
    reserved = {fields.id, fields.text, fields.title}
    if fields.metadata is None:
        metadata = {k: v for k, v in row.items() if k not in reserved}
    else:
        metadata = {k: row[k] for k in fields.metadata if k in row}
    return SourceDocument(
        doc_id=str(row[fields.id]), text=text, title=str(title) if title else None, metadata=metadata, line=line_no
    )
