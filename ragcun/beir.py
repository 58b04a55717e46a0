"""Readers for BEIR-format collections (``corpus.jsonl``, ``queries.jsonl``, ``qrels/*.tsv``)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ragcun.errors import InvalidInputError

SAMPLE_DIR = Path(__file__).parent / "data" / "adi"


@dataclass(frozen=True)
class BeirDoc:
    doc_id: str
    title: str
    text: str

    @property
    def content(self) -> str:
        return join_title(self.title, self.text)


def join_title(title: str | None, text: str) -> str:
    """Title and body as one passage, the usual way BEIR documents are embedded."""
    if not title:
        return text
    if not text:
        return title
    # Text that opens with a Markdown heading keeps it at the start of a line, where chunking finds it.
    return f"{title}\n\n{text}" if text.startswith("#") else f"{title}. {text}"


def open_text(path: Path, **options):
    """``path`` opened for reading as UTF-8; a missing or unreadable file is the caller's input error."""
    try:
        return path.open(encoding="utf-8", **options)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_jsonl(path: Path, parse, expected: str) -> list:
    """``parse`` applied to the JSON object of every non-blank line of ``path``.

    A line that is not JSON, or that ``parse`` cannot read (a missing key, a wrong type), raises
    :class:`InvalidInputError` naming the file, the line number and ``expected``.
    """
    rows = []
    with open_text(path) as lines:
        for line_no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(parse(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InvalidInputError(f"{path}:{line_no}: expected {expected}: {exc!r}") from exc
    return rows


def read_corpus(path: str | Path) -> list[BeirDoc]:
    """Read a BEIR ``corpus.jsonl`` (or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "corpus.jsonl"
    return read_jsonl(
        path,
        lambda row: BeirDoc(str(row["_id"]), row.get("title") or "", row.get("text") or ""),
        "a BEIR corpus line {_id, title?, text}",
    )


def read_queries(path: str | Path) -> dict[str, str]:
    """Read a BEIR ``queries.jsonl`` (or a folder holding one) as ``{query_id: text}``."""
    path = Path(path)
    if path.is_dir():
        path = path / "queries.jsonl"
    with open_text(path) as lines:
        return {str(row["_id"]): row["text"] for row in map(json.loads, filter(str.strip, lines))}


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (header ``query-id corpus-id score``) as ``{query_id: {doc_id: grade}}``."""
    qrels: dict[str, dict[str, int]] = {}
    with open_text(Path(path), newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(row["score"])
    return qrels
