"""Splitting documents into passages the encoder can see whole, measured in the model's tokens.

Two chunkers share one interface (``split(text) -> list[ChunkText]``):

* :class:`StructureChunker` (the default) splits at the structure the readers write the Markdown
  way: headings, then paragraphs and tables, then sentences and table rows, and only then fixed
  token windows. A table row is never cut, and each chunk knows its heading path
  (``"Security > Keys"``).
* :class:`Chunker` cuts plain token windows that overlap.

A document that fits the token budget stays one chunk, verbatim, with either chunker. Both
tokenize a document once and measure every span from that one tokenization's offsets.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from ragcun.errors import InvalidInputError

HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
ANY_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+\S", re.MULTILINE)
TABLE_ROW = re.compile(r"^[ \t]*\|")
TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$")
HEADING_SEPARATOR = " > "
# A chunk gathered before a heading is closed there only if it holds at least max_tokens // this.
MIN_CHUNK_FRACTION = 8


@dataclass(frozen=True)
class ChunkText:
    ordinal: int
    text: str
    token_count: int
    heading_path: str | None = None  # "Security > Keys": the headings the chunk sits under
    start: int = 0  # where the chunk starts in the document's content (for page numbers)
    end: int = 0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


class _Tokens:
    """One tokenization of a text, and the token count of any character span of it."""

    def __init__(self, tokenizer: Any, text: str):
        encoding = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )
        self.offsets: list[tuple[int, int]] = encoding["offset_mapping"]
        self.starts = [s for s, _ in self.offsets]

    def __len__(self) -> int:
        return len(self.offsets)

    def count(self, start: int, end: int) -> int:
        return bisect.bisect_left(self.starts, end) - bisect.bisect_left(self.starts, start)

    def windows(self, start: int, end: int, size: int, overlap: int) -> list[tuple[int, int, int]]:
        """``(start, end, tokens)`` of overlapping windows of at most ``size`` tokens covering ``[start, end)``."""
        first, last = bisect.bisect_left(self.starts, start), bisect.bisect_left(self.starts, end)
        if first == last:
            return [(start, end, 0)]
        spans, stride = [], size - overlap
        for at in range(first, last, stride):
            window = self.offsets[at : min(at + size, last)]
            spans.append((window[0][0], window[-1][1], len(window)))
            if at + size >= last:
                break
        return spans


class Chunker:
    """Windows of at most ``max_tokens`` tokens overlapping by ``overlap`` tokens.

    A document that fits stays one chunk, verbatim. Longer ones are cut on token boundaries, and
    each chunk's text is the exact slice of the original covered by its tokens.
    """

    def __init__(self, tokenizer: Any, max_tokens: int, overlap: int = 32):
        if max_tokens <= 0:
            raise InvalidInputError(f"chunk size must be positive, got {max_tokens}")
        if not 0 <= overlap < max_tokens:
            raise InvalidInputError(f"chunk overlap must be in [0, {max_tokens}), got {overlap}")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap

    def split(self, text: str) -> list[ChunkText]:
        tokens = _Tokens(self.tokenizer, text)
        if len(tokens) <= self.max_tokens:
            return [ChunkText(0, text, len(tokens), None, 0, len(text))]
        return [
            ChunkText(i, text[s:e], n, None, s, e)
            for i, (s, e, n) in enumerate(tokens.windows(0, len(text), self.max_tokens, self.overlap))
        ]


@dataclass
class _Piece:
    """A span that must not be cut further: a heading, a paragraph, a sentence, a table (row), a window."""

    start: int
    end: int
    path: tuple[str, ...]
    heading: bool = False
    table_header: tuple[int, int] | None = None  # the header rows of the table this row belongs to


class StructureChunker(Chunker):
    """Chunks that follow the document's structure, each at most ``max_tokens`` tokens.

    The text is read as Markdown: ``#`` headings, blank-line paragraphs, ``|`` table rows. Each
    heading starts a new chunk; paragraphs and whole tables are packed into a chunk while they
    fit; a paragraph too long for one chunk is cut between sentences, a table between rows (the
    header rows are repeated at the top of each later piece of the table); only a single sentence
    or row longer than a chunk is cut into token windows (overlapping by ``overlap``).
    """

    def split(self, text: str) -> list[ChunkText]:
        tokens = _Tokens(self.tokenizer, text)
        if len(tokens) <= self.max_tokens:
            # Most documents (every BEIR abstract) fit: as cheap as a token window, headings read only if any.
            path = _blocks(text)[0].path if ANY_HEADING.search(text) else ()
            return [ChunkText(0, text, len(tokens), _path(path), 0, len(text))]
        pieces = [p for block in _blocks(text) for p in self._pieces(text, block, tokens)]
        return self._pack(text, pieces, tokens)

    def _pieces(self, text: str, block: _Block, tokens: _Tokens) -> list[_Piece]:
        if block.heading or tokens.count(block.start, block.end) <= self.max_tokens:
            return [_Piece(block.start, block.end, block.path, block.heading)]
        if block.rows:
            header = block.rows[0] if block.header_rows else None
            rows = block.rows[block.header_rows :] if header else block.rows
            head = (block.rows[0][0], block.rows[block.header_rows - 1][1]) if header else None
            budget = self.max_tokens - (tokens.count(*head) + 1 if head else 0)
            pieces = []
            for start, end in rows:
                if tokens.count(start, end) <= budget:
                    pieces.append(_Piece(start, end, block.path, table_header=head))
                else:  # one row longer than a chunk: the only case a row is cut
                    pieces += [
                        _Piece(s, e, block.path)
                        for s, e, _ in tokens.windows(start, end, self.max_tokens, self.overlap)
                    ]
            return pieces
        pieces = []
        for start, end in sentence_spans(text, block.start, block.end):
            if tokens.count(start, end) <= self.max_tokens:
                pieces.append(_Piece(start, end, block.path))
            else:
                pieces += [
                    _Piece(s, e, block.path) for s, e, _ in tokens.windows(start, end, self.max_tokens, self.overlap)
                ]
        return pieces

    def _pack(self, text: str, pieces: list[_Piece], tokens: _Tokens) -> list[ChunkText]:
        chunks: list[ChunkText] = []
        group: list[_Piece] = []

        def close() -> None:
            if not group:
                return
            first, last = group[0], group[-1]
            body = text[first.start : last.end]
            count = tokens.count(first.start, last.end)
            header = first.table_header
            if header is not None and header[1] <= first.start:
                body = text[header[0] : header[1]] + "\n" + body
                count += tokens.count(*header)
            chunks.append(ChunkText(len(chunks), body, count, _path(first.path), first.start, last.end))
            group.clear()

        for piece in pieces:
            if group:
                only_headings = all(p.heading for p in group)
                header = group[0].table_header
                extra = tokens.count(*header) + 1 if header is not None and header[1] <= group[0].start else 0
                fits = tokens.count(group[0].start, piece.end) + extra <= self.max_tokens
                # A heading starts a chunk, unless what is gathered is only headings or a short lead
                # (a title line, a one-line intro) that would make a chunk of its own too small to use.
                short = tokens.count(group[0].start, group[-1].end) < self.max_tokens // MIN_CHUNK_FRACTION
                if (piece.heading and not only_headings and not short) or not fits:
                    close()
            group.append(piece)
        close()
        return chunks


@dataclass
class _Block:
    start: int
    end: int
    path: tuple[str, ...]
    heading: bool = False
    rows: list[tuple[int, int]] | None = None  # a table's rows
    header_rows: int = 0  # rows that head the table (the header and its --- rule)


def _path(path: tuple[str, ...]) -> str | None:
    return HEADING_SEPARATOR.join(path) if path else None


def _blocks(text: str) -> list[_Block]:
    """Headings, paragraphs and tables of Markdown-shaped text, with the heading path of each."""
    blocks: list[_Block] = []
    stack: list[tuple[int, str]] = []
    path: tuple[str, ...] = ()
    para: list[tuple[int, int]] = []
    table: list[tuple[int, int]] = []

    def end_para() -> None:
        if para:
            blocks.append(_Block(para[0][0], para[-1][1], path))
            para.clear()

    def end_table() -> None:
        if table:
            rule = len(table) > 1 and TABLE_RULE.match(text[table[1][0] : table[1][1]]) is not None
            blocks.append(_Block(table[0][0], table[-1][1], path, rows=list(table), header_rows=2 if rule else 0))
            table.clear()

    offset = 0
    for line in text.splitlines(keepends=True):
        start, end = offset, offset + len(line.rstrip("\r\n"))
        offset += len(line)
        stripped = text[start:end].strip()
        heading = HEADING.match(stripped)
        if not stripped:
            end_para()
            end_table()
        elif heading:
            end_para()
            end_table()
            level = len(heading.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading.group(2).strip()))
            path = tuple(title for _, title in stack)
            blocks.append(_Block(start, end, path, heading=True))
        elif TABLE_ROW.match(stripped):
            end_para()
            table.append((start, end))
        else:
            end_table()
            para.append((start, end))
    end_para()
    end_table()
    return blocks


CHUNKERS = {"structure": StructureChunker, "tokens": Chunker}


def make_chunker(kind: str, tokenizer: Any, max_tokens: int, overlap: int = 32) -> Chunker:
    """The chunker named ``kind`` (``structure`` or ``tokens``)."""
    if kind not in CHUNKERS:
        raise InvalidInputError(f"unknown chunking {kind!r}: use one of {', '.join(CHUNKERS)}")
    return CHUNKERS[kind](tokenizer, max_tokens, overlap)


# Words that end in a full stop without ending a sentence (compared lower-cased, without the stop).
ABBREVIATIONS = frozenset(
    {
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "st",
        "jr",
        "sr",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "fig",
        "figs",
        "no",
        "nos",
        "vol",
        "vols",
        "pp",
        "p",
        "eq",
        "eqs",
        "ref",
        "refs",
        "al",
        "approx",
        "ca",
        "cf",
        "inc",
        "ltd",
        "co",
        "corp",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "a.m",
        "p.m",
        "u.s",
        "u.k",
        "ph.d",
        "resp",
        "dept",
        "univ",
        "sec",
        "ch",
        "ed",
        "eds",
        "mt",
        "op",
        "viz",
    }
)
SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)")
INITIALS = re.compile(r"(?:[a-z]\.)+[a-z]")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence in ``text[start:end]``.

    A sentence ends at ``.``, ``!`` or ``?`` (and any closing quote or bracket) before whitespace, unless
    the stop ends an abbreviation ("Dr.", "e.g.", "p.m."), an initial or dotted initials ("D.C."), or
    the next word starts lower-case. The same principle as pysbd (which the extractive generator
    uses on short passages) at a cost that does not slow ingestion: pysbd took ~90 ms per long abstract.
    """
    end = len(text) if end is None else end
    spans, at = [], start
    for stop in SENTENCE_END.finditer(text, start, end):
        if "." in stop.group():
            word = text[text.rfind(" ", at, stop.start()) + 1 : stop.start()].lower().lstrip("(\"'")
            if word in ABBREVIATIONS or (len(word) == 1 and word.isalpha()) or INITIALS.fullmatch(word):
                continue
        after = stop.end()
        while after < end and text[after].isspace():
            after += 1
        if after < end and text[after].islower():
            continue
        spans.append((at, stop.end()))
        at = after
    if at < end and text[at:end].strip():
        spans.append((at, end))
    return [(s, e) for s, e in spans if text[s:e].strip()] or [(start, end)]
