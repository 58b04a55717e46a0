"""Splitting documents into passages the encoder can see whole, measured in the model's tokens."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ragcun.errors import InvalidInputError


@dataclass(frozen=True)
class ChunkText:
    ordinal: int
    text: str
    token_count: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


class Chunker:
    """Windows of at most ``max_tokens`` tokens overlapping by ``overlap`` tokens.

    A document that fits stays one chunk, verbatim. Longer ones are cut on token boundaries, and
    each chunk's text is the exact slice of the original covered by its tokens.
    """

    def __init__(self, tokenizer, max_tokens: int, overlap: int = 32):
        if max_tokens <= 0:
            raise InvalidInputError(f"chunk size must be positive, got {max_tokens}")
        if not 0 <= overlap < max_tokens:
            raise InvalidInputError(f"chunk overlap must be in [0, {max_tokens}), got {overlap}")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap

    def split(self, text: str) -> list[ChunkText]:
        encoding = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )
        offsets = encoding["offset_mapping"]
        if len(offsets) <= self.max_tokens:
            return [ChunkText(0, text, len(offsets))]
        chunks, stride = [], self.max_tokens - self.overlap
        for ordinal, start in enumerate(range(0, len(offsets), stride)):
            window = offsets[start : start + self.max_tokens]
            chunks.append(ChunkText(ordinal, text[window[0][0] : window[-1][1]], len(window)))
            if start + self.max_tokens >= len(offsets):
                break
        return chunks
