"""Structure-aware chunks against token windows, with the real MiniLM tokenizer."""

import pytest

from ragcun.errors import InvalidInputError
from ragcun.ingest.chunking import Chunker, StructureChunker, make_chunker, sentence_spans

ROWS = [f"| Key {i} | rotate every {30 * (i + 1)} days | owned by team {chr(65 + i)} |" for i in range(8)]
DOC = "\n".join(
    [
        "# Security",
        "",
        "Every service authenticates with a key issued by the vault. Keys never leave the vault unencrypted.",
        "",
        "## Keys",
        "",
        "Rotate keys with the vault command line. Dr. Smith's team owns the schedule, e.g. the table below.",
        "",
        "| Key | Rotation | Owner |",
        "| --- | --- | --- |",
        *ROWS,
        "",
        "## Incidents",
        "",
        "Report a leaked key at once: revoke it, rotate it, and open an incident ticket.",
    ]
)


@pytest.fixture(scope="module")
def tokenizer(base_encoder):
    return base_encoder.tokenizer


def test_a_document_that_fits_is_one_verbatim_chunk(tokenizer):
    for chunker in (StructureChunker(tokenizer, 512), Chunker(tokenizer, 512)):
        (chunk,) = chunker.split(DOC)
        assert (chunk.text, chunk.start, chunk.end) == (DOC, 0, len(DOC))
    assert StructureChunker(tokenizer, 512).split(DOC)[0].heading_path == "Security"


def test_chunks_follow_headings_and_never_cut_a_table_row(tokenizer):
    chunks = StructureChunker(tokenizer, 48, overlap=8).split(DOC)
    assert all(c.token_count <= 48 for c in chunks)
    for chunk in chunks:  # the count is the real one, header rows included
        assert chunk.token_count == len(tokenizer(chunk.text, add_special_tokens=False)["input_ids"])
    texts = [c.text for c in chunks]
    for row in ROWS:  # every row whole, in exactly one chunk
        assert sum(row in t for t in texts) == 1, row
    table_chunks = [c for c in chunks if "| Key " in c.text and "rotate every" in c.text]
    assert len(table_chunks) > 1
    # Each later piece of the table repeats its header, and knows where it sits.
    assert all(c.text.startswith("| Key | Rotation | Owner |\n| --- | --- | --- |\n") for c in table_chunks)
    assert {c.heading_path for c in table_chunks} == {"Security > Keys"}
    assert chunks[0].heading_path == "Security" and chunks[-1].heading_path == "Security > Incidents"
    assert chunks[-1].text.startswith("## Incidents")
    # Token windows of the same size cut through rows: some row is whole in no window.
    windows = [c.text for c in Chunker(tokenizer, 48, overlap=8).split(DOC)]
    assert any(all(row not in t for t in windows) for row in ROWS)


def test_a_long_paragraph_is_cut_between_sentences(tokenizer):
    sentences = [
        f"Sentence number {i} says that Dr. Who arrived at 10 a.m. on Jan. {i + 1}, by train." for i in range(12)
    ]
    text = " ".join(sentences)
    chunks = StructureChunker(tokenizer, 64, overlap=8).split(text)
    assert len(chunks) > 1 and all(c.token_count <= 64 for c in chunks)
    for sentence in sentences:  # "Dr." and "a.m." end no sentence
        assert sum(sentence in c.text for c in chunks) == 1, sentence


def test_a_sentence_longer_than_a_chunk_falls_back_to_token_windows(tokenizer):
    text = "word " * 300
    chunks = StructureChunker(tokenizer, 64, overlap=8).split(text.strip())
    assert len(chunks) > 4 and all(c.token_count <= 64 for c in chunks)


def test_sentence_spans_know_abbreviations():
    text = "Dr. Smith went to Washington D.C. on Monday. He met Mr. Jones at 3 p.m. sharp."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Dr. Smith went to Washington D.C. on Monday.",
        "He met Mr. Jones at 3 p.m. sharp.",
    ]


def test_unknown_chunking_is_refused(tokenizer):
    with pytest.raises(InvalidInputError, match="unknown chunking 'pages'"):
        make_chunker("pages", tokenizer, 64)
