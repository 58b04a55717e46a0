"""Readers of single files (text, Markdown, HTML, PDF, .docx) into Markdown-shaped text.

Each reader returns a :class:`FileText`: the text with its structure written the Markdown way
(``#`` headings, blank lines between paragraphs, ``| a | b |`` table rows), which is what the
structure-aware chunker splits on, plus the title, metadata and, for PDFs, where each page starts.
A reader raises ``ValueError`` with a one-line reason for a file it cannot read. Warnings that the
third-party libraries log or emit while reading are returned as ``notes``, not printed.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# How much of a text file is sniffed for NUL bytes, the mark of a binary file.
SNIFF_BYTES = 8192
# Libraries whose log records while reading a file are that file's notes, not terminal output.
READER_LOGGERS = ("pypdf", "trafilatura", "htmldate", "courlan", "docx", "charset_normalizer")
FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
SIDECAR_SUFFIX = ".meta.json"
TIE_ENCODINGS = ("cp1252", "latin_1")
# **bold**, __bold__, *italic*, _italic_ and ~~struck~~ around text: the words stay, the marks go.
EMPHASIS = re.compile(r"(\*\*|__|~~|(?<![\w*])\*|(?<![\w_])_)(?=\S)(.+?)(?<=\S)\1")


@dataclass
class FileText:
    """What a reader found in one file."""

    text: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    page_starts: tuple[int, ...] = ()  # offsets in ``text`` where pages 1, 2, … start (PDF)
    notes: list[str] = field(default_factory=list)  # library warnings raised while reading


class _Collect(logging.Handler):
    def __init__(self, notes: list[str]):
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        self.notes.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def captured_warnings(notes: list[str]) -> Iterator[None]:
    """Library log records (WARNING and up) and ``warnings`` raised inside, appended to ``notes`` instead of shown."""
    handler = _Collect(notes)
    loggers = [logging.getLogger(name) for name in READER_LOGGERS]
    saved = [(lg.propagate, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        notes.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        for lg, (propagate, level) in zip(loggers, saved, strict=False):
            lg.removeHandler(handler)
            lg.propagate, lg.level = propagate, level


def decode_text(data: bytes) -> tuple[str, str]:
    """The text of ``data`` and its encoding: UTF-8 when it is valid, else what charset-normalizer detects.

    Raises:
        ValueError: binary data (NUL bytes), or no encoding fits.
    """
    if b"\x00" in data[:SNIFF_BYTES]:
        raise ValueError("binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = exc.start
    from charset_normalizer import from_bytes

    # Without a BOM and with no NUL bytes (refused above), UTF-16/32 guesses are noise.
    matches = [m for m in from_bytes(data) if not m.encoding.startswith(("utf_16", "utf_32"))]
    if not matches:
        raise ValueError(f"not UTF-8 (invalid at byte {utf8_error}) and no other text encoding fits")
    # Short texts fit many single-byte encodings equally well (chaos is a tie); a tie goes to
    # Windows-1252, the commonest encoding of non-UTF-8 text (Latin-1 decodes the same where it matters).
    least = min(m.chaos for m in matches)
    tied = [m for m in matches if m.chaos <= least + 0.01]
    for preferred in TIE_ENCODINGS:
        if any(preferred in m.could_be_from_charset for m in tied):
            try:
                return data.decode(preferred), preferred
            except UnicodeDecodeError:
                continue
    return str(tied[0]), tied[0].encoding


def read_sidecar(path: Path) -> dict[str, Any]:
    """The JSON object in ``FILE.meta.json`` next to ``path`` (empty when there is none).

    Raises:
        ValueError: the sidecar is not a JSON object.
    """
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{sidecar.name}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{sidecar.name}: expected a JSON object, got {type(data).__name__}")
    return data


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_text(path: Path) -> FileText:
    text, encoding = decode_text(path.read_bytes())
    return FileText(text, metadata={"encoding": encoding})


def read_markdown(path: Path) -> FileText:
    """A Markdown file; YAML front matter becomes metadata (its ``title`` the document's title)."""
    import yaml

    result = read_text(path)
    match = FRONT_MATTER.match(result.text)
    if match:
        try:
            front = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            raise ValueError(f"front matter is not valid YAML: {str(exc).splitlines()[0]}") from None
        if front is not None and not isinstance(front, dict):
            raise ValueError(f"front matter must be a YAML mapping, got {type(front).__name__}")
        # Dates and other YAML types become JSON values, as payloads and the catalog need.
        front = json.loads(json.dumps(front or {}, default=str))
        result.text = result.text[match.end() :]
        title = front.pop("title", None)
        result.title = str(title) if title else None
        result.metadata.update(front)
    return result


def read_html(path: Path) -> FileText:
    """The main content of a page (trafilatura: no navigation, footer or sidebars) and its title.

    Where trafilatura finds no main content (a page that is all list or form, say), the whole
    visible text is taken through BeautifulSoup, and ``metadata["extraction"]`` says so and why.
    """
    import trafilatura

    html, encoding = decode_text(path.read_bytes())
    # Formatting on: headings come out as "#" lines; the inline emphasis that comes with them is dropped.
    text = trafilatura.extract(
        html,
        output_format="markdown",
        include_formatting=True,
        include_tables=True,
        include_comments=False,
        include_links=False,
        include_images=False,
        favor_recall=True,
        deduplicate=False,
    )
    text = EMPHASIS.sub(r"\2", text) if text else text
    meta = trafilatura.extract_metadata(html)
    title = meta.title if meta is not None and meta.title else _soup_title(html)
    metadata: dict[str, Any] = {"encoding": encoding, "extraction": "trafilatura"}
    if not text or not text.strip():
        text = _soup_text(html)
        metadata["extraction"] = "beautifulsoup: trafilatura found no main content"
    return FileText(text, title or None, metadata)


def _soup_title(html: str) -> str | None:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    return soup.title.get_text(strip=True) if soup.title else None


def _soup_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for hidden in soup(["script", "style", "noscript", "template", "title"]):
        hidden.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def read_pdf(path: Path) -> FileText:
    """Text page by page; ``page_starts`` keeps where each page begins, for page numbers on chunks."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ValueError("encrypted PDF (needs a password)")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except ValueError:
        raise
    except (PdfReadError, OSError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"corrupt PDF: {exc}") from None
    starts, parts, offset = [], [], 0
    for page in pages:
        starts.append(offset)
        parts.append(page)
        offset += len(page) + 2  # the blank line between pages
    text = "\n\n".join(parts)
    if not text.strip():
        raise ValueError("PDF has no extractable text (scanned images?)")
    return FileText(text, title or None, {"pages": len(pages)}, tuple(starts))


def read_docx(path: Path) -> FileText:
    """Paragraphs and tables in reading order; headings as ``#`` lines, tables as ``| … |`` rows."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, ValueError, KeyError, OSError) as exc:
        raise ValueError(f"not a valid .docx file: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile and lxml errors surface under several names
        raise ValueError(f"not a valid .docx file: {exc}") from None
    blocks, title = [], document.core_properties.title or None
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            blocks.append(markdown_table([[cell.text for cell in row.cells] for row in item.rows]))
            continue
        text = item.text.strip()
        if not text:
            continue
        style = item.style.name if item.style is not None else ""
        level = re.fullmatch(r"Heading (\d)", style or "")
        if style == "Title":
            title = title or text
            blocks.append(f"# {text}")
        elif level:
            blocks.append(f"{'#' * int(level.group(1))} {text}")
        else:
            blocks.append(text)
    return FileText("\n\n".join(b for b in blocks if b), title)


def markdown_table(rows: list[list[str]]) -> str:
    """Rows of cell texts as a Markdown table, the first row its header; one line per row."""
    rows = [[" ".join(cell.split()).replace("|", "\\|") for cell in row] for row in rows if any(c.strip() for c in row)]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    lines = ["| " + " | ".join(r + [""] * (width - len(r))) + " |" for r in rows]
    lines.insert(1, "|" + " --- |" * width)
    return "\n".join(lines)
