"""Every kind of bad input gets a clear, per-file (or per-line) error, and the run goes on."""

import json

import pytest
from click.testing import CliRunner
from pypdf import PdfWriter

from ragcun.cli import cli
from ragcun.ingest import ingest
from ragcun.ingest.readers import SourceDocument, read_source

from .conftest import THREE_DOCS

# A one-page PDF with the text "Gaussian embeddings keep the norm", written by hand so the test
# needs no PDF generator. The xref offsets are computed below.
PDF_OBJECTS = [
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
    None,  # content stream, filled in below
    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
]


def text_pdf(text: str) -> bytes:
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = list(PDF_OBJECTS)
    objects[3] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def read_all(path, **kwargs):
    return list(read_source(path, **kwargs))


def only_error(path, **kwargs):
    items = read_all(path, **kwargs)
    assert len(items) == 1 and not isinstance(items[0], SourceDocument), items
    return items[0]


def test_good_formats_are_read(tmp_path):
    import docx

    (tmp_path / "a.md").write_text("# Title\n\nMarkdown body.")
    (tmp_path / "b.html").write_text(
        "<html><head><title>Page</title><style>p{}</style><script>var x</script>"
        "</head><body><p>Visible <b>text</b></p></body></html>"
    )
    (tmp_path / "c.pdf").write_bytes(text_pdf("Gaussian embeddings keep the norm"))
    document = docx.Document()
    document.add_paragraph("Word documents work too.")
    document.save(tmp_path / "d.docx")
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "7", "title": "T", "text": "BEIR body"}) + "\n")

    assert read_all(tmp_path / "a.md")[0].text == "# Title\n\nMarkdown body."
    html = read_all(tmp_path / "b.html")[0]
    assert (html.title, html.text) == ("Page", "Visible text")
    assert "var x" not in html.text and "p{}" not in html.text
    assert "Gaussian embeddings keep the norm" in read_all(tmp_path / "c.pdf")[0].text
    assert read_all(tmp_path / "d.docx")[0].text == "Word documents work too."
    beir = read_all(tmp_path / "corpus.jsonl")[0]
    assert (beir.doc_id, beir.title, beir.content) == ("7", "T", "T. BEIR body")


def test_each_bad_file_has_its_own_error(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_text("   \n\n")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (tmp_path / "corrupt.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("secret")
    with open(tmp_path / "locked.pdf", "wb") as handle:
        writer.write(handle)
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 not a zip")
    with open(tmp_path / "huge.txt", "wb") as handle:
        handle.write(b"word " * (10 * 2**20))  # a 50 MB single document

    assert only_error(tmp_path / "empty.txt").error == "empty file"
    assert only_error(tmp_path / "blank.txt").error == "no text in file"
    assert only_error(tmp_path / "binary.txt").error == "binary file (NUL bytes), not text"
    assert only_error(tmp_path / "corrupt.pdf").error.startswith("corrupt PDF")
    assert only_error(tmp_path / "locked.pdf").error == "encrypted PDF (needs a password)"
    assert only_error(tmp_path / "broken.docx").error.startswith("not a valid .docx file")
    assert only_error(tmp_path / "huge.txt").error == "document is 50.0 MiB, over the 10 MiB limit"


def test_jsonl_problems_name_their_line(tmp_path):
    lines = [
        json.dumps({"id": "a", "text": "fine"}),
        "{not json",
        json.dumps({"text": "no id"}),
        json.dumps({"id": "b"}),
        json.dumps({"id": "a", "text": "again"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "c", "text": "also fine", "lang": "en"}),
    ]
    (tmp_path / "docs.jsonl").write_text("\n".join(lines) + "\n")
    items = read_all(tmp_path / "docs.jsonl")
    docs = [i for i in items if isinstance(i, SourceDocument)]
    problems = {i.line: i.error for i in items if not isinstance(i, SourceDocument)}
    assert [d.doc_id for d in docs] == ["a", "b", "c"] and docs[2].metadata == {"lang": "en"}
    # An id with neither title nor text is an empty document of the collection, kept with a note.
    assert (docs[1].content, docs[1].notes) == (
        "",
        ("neither 'title' nor 'text' has text: kept as an empty document, nothing to search",),
    )
    assert problems[2].startswith("malformed JSON")
    assert problems[3] == "missing id field 'id'"
    assert problems[5] == "duplicate id 'a' (first seen on line 1)"
    assert problems[6] == "expected a JSON object, got list"


def test_bad_files_are_recorded_and_the_run_goes_on(workspace, identity_embedder, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.txt").write_text(THREE_DOCS[0])
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.md").write_bytes(b"\x00\x01\x02")
    (folder / "docs.jsonl").write_text(json.dumps({"id": "x", "text": THREE_DOCS[1]}) + "\n{broken\n")
    result = ingest(workspace, [folder], "docs", identity_embedder)
    assert (result.added, result.failed) == (2, 3)
    errors = {(e["uri"].rsplit("/", 1)[-1], e["line"]): e["error"] for e in result.errors}
    assert errors == {
        ("binary.md", None): "binary file (NUL bytes), not text",
        ("empty.txt", None): "empty file",
        ("docs.jsonl", 2): "malformed JSON: Expecting property name enclosed in double quotes (column 2)",
    }
    # Files with problems are read again next time, so their errors are not forgotten.
    again = ingest(workspace, [folder], "docs", identity_embedder)
    assert (again.added, again.unchanged, again.failed, again.chunks_written) == (0, 2, 3, 0)


def test_cli_reports_failures_and_missing_paths(tmp_path):
    home = str(tmp_path / "home")
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", home, "init"]).exit_code == 0
    missing = runner.invoke(cli, ["--home", home, "ingest", str(tmp_path / "nope"), "-c", "x"])
    assert missing.exit_code == 1
    assert missing.output.strip() == f"Error: {tmp_path / 'nope'}: no such file or directory"
    assert "Traceback" not in missing.output


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "q", "-c", "nothing"], "Error: no collection named 'nothing'; ingest something first"),
        (
            ["docs", "show", "00000000-0000-0000-0000-000000000000"],
            "Error: no chunk 00000000-0000-0000-0000-000000000000 in the catalog",
        ),
        (["runs", "show", "42"], "Error: no ingest run 42"),
        (["collections", "drop", "nothing", "--yes"], "Error: no collection named 'nothing'"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, argv, message):
    home = str(tmp_path / "home")
    runner = CliRunner()
    runner.invoke(cli, ["--home", home, "init"])
    result = runner.invoke(cli, ["--home", home, *argv])
    assert result.exit_code == 1
    assert result.output.strip() == message


def test_an_id_already_ingested_from_another_file_is_refused(workspace, identity_embedder, tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": "same", "text": THREE_DOCS[0]}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "same", "text": THREE_DOCS[1]}) + "\n")
    result = ingest(workspace, [tmp_path / "a.jsonl", tmp_path / "b.jsonl"], "docs", identity_embedder)
    assert (result.added, result.failed) == (1, 1)
    assert result.errors[0]["error"] == f"duplicate id 'same': already ingested from {tmp_path / 'a.jsonl'}"
    # Not marked complete: the conflict is reported again until it is resolved.
    assert ingest(workspace, [tmp_path / "b.jsonl"], "docs", identity_embedder).failed == 1


def test_each_failed_file_is_one_line_and_no_log_warning(tmp_path, identity_model_dir, caplog):
    import logging

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.txt").write_text(THREE_DOCS[0])
    (folder / "empty.txt").write_bytes(b"")
    (folder / "rows.jsonl").write_text('{"id": "a", "text": "fine"}\n{not json\n{"id": "b", "text": ["x"]}\n')
    home = str(tmp_path / "home")
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", home, "init"]).exit_code == 0
    with caplog.at_level(logging.WARNING):
        result = runner.invoke(
            cli, ["ingest", str(folder), "-c", "kb", "--model", str(identity_model_dir), "--home", home]
        )
    assert result.exit_code == 0, result.output
    failed = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("failed:")]
    assert failed == [
        # Files are named as their documents are: by their path relative to the ingested folder.
        "failed: empty.txt: empty file",
        "failed: rows.jsonl:2: malformed JSON: Expecting property name enclosed in double quotes (column 2)",
        "failed: rows.jsonl:3: field 'text' is list, not a string",
    ]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "added 2" in result.stdout and "failed 3" in result.stdout
