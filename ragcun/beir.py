"""Readers for BEIR-format collections (``corpus.jsonl``, ``queries.jsonl``, ``qrels/*.tsv``)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ragcun.errors import InvalidInputError

SAMPLE_DIR = Path(__file__).parent / "data" / "adi"
QRELS_COLUMNS = ("query-id", "corpus-id", "score")


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
            except json.JSONDecodeError as exc:
                reason = f"malformed JSON ({exc.msg}, column {exc.colno})"
            except KeyError as exc:
                reason = f"no {exc.args[0]!r} field"
            except TypeError as exc:
                reason = str(exc)
            else:
                continue
            raise InvalidInputError(f"{path}:{line_no}: {reason}; expected {expected}")
    return rows


def field_text(row: dict, key: str, required: bool = False) -> str:
    """``row[key]`` if it is a string (``""`` for an absent optional field); a number or anything else is refused."""
    if not isinstance(row, dict):
        raise TypeError(f"a JSON object is needed, not {type(row).__name__}")
    value = row[key] if required else row.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"field {key!r} is {type(value).__name__} {json.dumps(value)[:40]}, not a string")
    return value


def field_id(row: dict, key: str = "_id") -> str:
    """An id field, which must be a string or an integer."""
    if not isinstance(row, dict):
        raise TypeError(f"a JSON object is needed, not {type(row).__name__}")
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"field {key!r} is {type(value).__name__} {json.dumps(value)[:40]}, not a string or integer")
    return str(value)


def read_corpus(path: str | Path) -> list[BeirDoc]:
    """Read a BEIR ``corpus.jsonl`` (or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "corpus.jsonl"
    return read_jsonl(
        path,
        lambda row: BeirDoc(field_id(row), field_text(row, "title"), field_text(row, "text")),
        "a BEIR corpus line {_id, title?, text}",
    )


def read_queries(path: str | Path) -> dict[str, str]:
    """Read a BEIR ``queries.jsonl`` (or a folder holding one) as ``{query_id: text}``."""
    path = Path(path)
    if path.is_dir():
        path = path / "queries.jsonl"
    rows = read_jsonl(
        path, lambda row: (field_id(row), field_text(row, "text", required=True)), "a BEIR query line {_id, text}"
    )
    return dict(rows)


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (header ``query-id corpus-id score``) as ``{query_id: {doc_id: grade}}``."""
    qrels: dict[str, dict[str, int]] = {}
    with open_text(Path(path), newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = [c for c in QRELS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInputError(
                f"{path}: the header names {len(reader.fieldnames or [])} columns {reader.fieldnames or []}, "
                f"without {', '.join(missing)}; a BEIR qrels file has three tab-separated columns "
                "query-id, corpus-id, score"
            )
        for row in reader:
            if row.get("score") in (None, "") or None in row:
                raise InvalidInputError(
                    f"{path}:{reader.line_num}: expected three tab-separated columns query-id, corpus-id, score"
                )
            try:
                grade = int(row["score"])
            except ValueError:
                raise InvalidInputError(f"{path}:{reader.line_num}: score {row['score']!r} is not an integer") from None
            qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = grade
    return qrels
