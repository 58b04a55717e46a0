"""Every kind of bad input gets a clear, per-file (or per-line) error, and the run goes on."""

import json

import pytest
from click.testing import CliRunner
from pypdf import PdfWriter

from ragcun.cli import cli
from ragcun.ingest import ingest
from ragcun.ingest.readers import SourceDocument, discover, read_source

from .conftest import THREE_DOCS, start_cli

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
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "a query"}) + "\n")  # a BEIR folder

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
    assert result.exit_code == 3, result.output  # the run completed, with failed files
    failed = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("failed:")]
    assert failed == [
        # Files are named as their documents are: by their path relative to the ingested folder.
        "failed: empty.txt: empty file",
        "failed: rows.jsonl:2: malformed JSON: Expecting property name enclosed in double quotes (column 2)",
        "failed: rows.jsonl:3: field 'text' is list, not a string",
    ]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "added 2" in result.stdout and "failed 3" in result.stdout


# ---- issue 17: a bad file is a problem of that file only; one-line errors everywhere ------------------------


def ingest_cli(home: str, model_dir, *args: str):
    return CliRunner().invoke(cli, ["--home", home, "ingest", *args, "-c", "kb", "--model", str(model_dir)])


def failed_lines(result) -> list[str]:
    return [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("failed:")]


def test_each_bad_input_fails_alone_and_the_run_exits_3(tmp_path, identity_model_dir):
    """An undecodable file name, a FIFO, a missing path and ids of the wrong type: each named, the rest ingested."""
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.txt").write_text(THREE_DOCS[0])
    with open(os.path.join(os.fsencode(folder), b"bad\xff.txt"), "wb") as handle:
        handle.write(THREE_DOCS[1].encode())
    os.mkfifo(folder / "pipe.md")
    rows = [
        {"id": 7, "text": "an integer id is fine"},
        {"id": True, "text": "a boolean is not an id"},
        {"id": 1.5, "text": "nor a fractional number"},
        {"id": {"a": 1}, "text": "nor an object"},
        {"id": [1], "text": "nor an array"},
        {"id": "s", "text": "a string id is fine"},
    ]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    missing = tmp_path / "nope"
    home = str(tmp_path / "home")
    assert CliRunner().invoke(cli, ["--home", home, "init"]).exit_code == 0
    result = ingest_cli(home, identity_model_dir, str(folder), str(missing), str(tmp_path / "rows.jsonl"))
    assert result.exit_code == 3, result.output
    assert failed_lines(result) == [
        # In the order of the inputs: the folder's, then the missing path's, then the JSONL file's.
        "failed: bad\\xff.txt: file name is not valid UTF-8: skipped (rename the file to ingest it)",
        "failed: pipe.md: not a regular file (a FIFO, socket or device)",
        f"failed: {missing}: no such file or directory",
        "failed: rows.jsonl:2: id field 'id' must be a string or an integer, got true (a boolean)",
        "failed: rows.jsonl:3: id field 'id' must be a string or an integer, got 1.5 (a fractional number)",
        "failed: rows.jsonl:4: id field 'id' must be a string or an integer, got {\"a\": 1} (an object)",
        "failed: rows.jsonl:5: id field 'id' must be a string or an integer, got [1] (an array)",
    ]
    assert "added 3" in result.stdout and "failed 7" in result.stdout  # good.txt and the rows "7" and "s"
    listed = CliRunner().invoke(cli, ["--home", home, "docs", "list", "-c", "kb", "--json"])
    assert sorted(d["doc_id"] for d in json.loads(listed.stdout)) == ["7", "good.txt", "s"]


@pytest.mark.parametrize("case", ["missing", "fifo"])
def test_an_input_that_cannot_be_read_says_so_and_exits_1(tmp_path, case):
    import os

    target = tmp_path / "input"
    if case == "fifo":
        os.mkfifo(target)
    expected = {
        "missing": "no such file or directory",
        "fifo": "not a regular file or folder (a FIFO, socket or device)",
    }[case]
    home = str(tmp_path / "home")
    CliRunner().invoke(cli, ["--home", home, "init"])
    result = CliRunner().invoke(cli, ["--home", home, "ingest", str(target), str(tmp_path / "gone"), "-c", "kb"])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {target}: {expected} (and 1 more inputs that cannot be read)"


def test_a_folder_with_nothing_to_ingest_says_so(tmp_path, identity_model_dir):
    empty, pictures = tmp_path / "empty", tmp_path / "pictures"
    empty.mkdir()
    pictures.mkdir()
    (pictures / "photo.png").write_bytes(b"\x89PNG")
    home = str(tmp_path / "home")
    CliRunner().invoke(cli, ["--home", home, "init"])
    result = ingest_cli(home, identity_model_dir, str(empty), str(pictures))
    assert result.exit_code == 0, result.output  # nothing failed: the collection exists, empty
    assert [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("warning:")] == [
        f"warning: {empty}: empty folder: nothing to ingest",
        f"warning: {pictures}: no file to ingest here (supported: .docx .htm .html .jsonl .markdown .md .pdf .txt)",
    ]
    assert "added 0" in result.stdout


def test_ingest_help_documents_the_exit_codes():
    text = CliRunner().invoke(cli, ["ingest", "--help"]).output
    assert "0  every input was ingested" in text and "3  the run completed, but some files or lines failed" in text
    assert "1  nothing ran: bad options, or no input can be read (missing paths, FIFOs)" in text


def test_a_users_own_corpus_jsonl_is_plain_jsonl(tmp_path):
    own = tmp_path / "own"
    own.mkdir()
    (own / "corpus.jsonl").write_text(json.dumps({"id": "a", "text": "my own rows"}) + "\n")
    (doc,) = read_all(own / "corpus.jsonl")
    assert (doc.doc_id, doc.text) == ("a", "my own rows")
    # The same rows in BEIR's names are refused there, with the way out...
    (own / "corpus.jsonl").write_text(json.dumps({"_id": "a", "text": "beir rows"}) + "\n")
    assert only_error(own / "corpus.jsonl").error == (
        "missing id field 'id' (the row has '_id': ingest a BEIR corpus with --format beir)"
    )
    # ...which reads them; so does a BEIR folder (a queries.jsonl or qrels/ beside the corpus), whose
    # queries are not documents.
    assert read_all(own / "corpus.jsonl", jsonl_format="beir")[0].doc_id == "a"
    (own / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "a query"}) + "\n")
    assert read_all(own / "corpus.jsonl")[0].doc_id == "a"
    assert discover([own]) == [(own / "corpus.jsonl").resolve()]


def test_a_broken_catalog_is_one_line_that_never_advises_init(tmp_path):
    runner = CliRunner()
    for kind in ("truncated", "garbage"):
        home = tmp_path / kind
        assert runner.invoke(cli, ["--home", str(home), "init"]).exit_code == 0
        catalog = home / "catalog.sqlite"
        data = catalog.read_bytes()
        catalog.write_bytes(data[: len(data) // 2] if kind == "truncated" else b"not a database at all " * 100)
        reason = "database disk image is malformed" if kind == "truncated" else "file is not a database"
        for argv in (["status"], ["init"], ["db", "current"]):
            result = runner.invoke(cli, ["--home", str(home), *argv])
            assert result.exit_code == 1, argv
            assert result.output.strip() == (
                f"Error: catalog sqlite:///{catalog} is not a readable SQLite database ({reason}): "
                "restore it from a backup (ragcun init would not recover it)"
            )


def test_an_empty_catalog_beside_store_data_is_not_initialised_over(adi_home):
    from pathlib import Path

    home = Path(adi_home)
    catalog = home / "catalog.sqlite"
    for side in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        (home / side).unlink(missing_ok=True)
    catalog.write_bytes(b"")  # 0 bytes
    runner = CliRunner()
    status = runner.invoke(cli, ["--home", adi_home, "status"])
    assert status.exit_code == 1
    assert status.output.strip() == (
        f"Error: catalog sqlite:///{catalog} is empty or missing, but {home / 'qdrant'} holds 1 collections: "
        "restore the catalog from a backup (`ragcun init --force` would start an empty one beside them)"
    )
    init = runner.invoke(cli, ["--home", adi_home, "init"])
    assert init.exit_code == 1
    assert init.output.strip() == (
        f"Error: {home / 'qdrant'} already holds 1 collections but the catalog sqlite:///{catalog} is empty or "
        "missing: restore the catalog from a backup, or run `ragcun init --force` to start an empty catalog beside them"
    )
    catalog.unlink()  # a missing catalog is the same story
    assert runner.invoke(cli, ["--home", adi_home, "init"]).exit_code == 1 and not catalog.exists()
    assert runner.invoke(cli, ["--home", adi_home, "init", "--force"]).exit_code == 0
    assert runner.invoke(cli, ["--home", adi_home, "status"]).exit_code == 0


def test_two_inits_at_once_both_succeed(tmp_path):
    home = str(tmp_path / "home")
    runs = [start_cli(["--home", home, "init"], log=tmp_path / f"init{n}.log") for n in range(2)]
    for run in runs:
        run.join(120)
    outputs = [(tmp_path / f"init{n}.log").read_text() for n in range(2)]
    assert [run.exitcode for run in runs] == [0, 0], outputs
    assert CliRunner().invoke(cli, ["--home", home, "status"]).exit_code == 0


def test_an_unreachable_qdrant_url_is_one_line(adi_home):
    import re
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    result = CliRunner(env={"QDRANT_URL": url}).invoke(cli, ["--home", adi_home, "check"])
    assert result.exit_code == 1
    assert re.fullmatch(
        rf"Error: no Qdrant server answers at QDRANT_URL={re.escape(url)} \(.*[Cc]onnection refused.*\): start the "
        r"server, fix QDRANT_URL, or unset it to use the embedded store",
        result.output.strip(),
    ), result.output


@pytest.mark.parametrize(
    "queries, qrels, message",
    [
        (
            '{"_id": "1", "text": "what is a library?"}\n',
            "query-id\tcorpus-id\n1\t1\n",
            "{qrels}: the header names 2 columns ['query-id', 'corpus-id'], without score; a BEIR qrels file has "
            "three tab-separated columns query-id, corpus-id, score",
        ),
        (
            '{"_id": "1", "text": "what is a library?"}\n',
            "query-id\tcorpus-id\tscore\n1\t1\n",
            "{qrels}:2: expected three tab-separated columns query-id, corpus-id, score",
        ),
        (
            '{"_id": "1", "text": 42}\n',
            "query-id\tcorpus-id\tscore\n1\t1\t1\n",
            "{queries}:1: field 'text' is int 42, not a string; expected a BEIR query line {{_id, title?, text}}",
        ),
    ],
    ids=["2-column qrels", "short qrels row", "numeric query text"],
)
def test_bad_evaluation_files_are_one_line(adi_home, tmp_path, queries, qrels, message):
    (tmp_path / "queries.jsonl").write_text(queries)
    (tmp_path / "qrels.tsv").write_text(qrels)
    argv = ["eval", "-c", "adi", "--queries", str(tmp_path / "queries.jsonl"), "--qrels", str(tmp_path / "qrels.tsv")]
    result = CliRunner().invoke(cli, ["--home", adi_home, *argv])
    assert result.exit_code == 1
    expected = message.format(queries=tmp_path / "queries.jsonl", qrels=tmp_path / "qrels.tsv")
    assert result.output.strip() == f"Error: {expected}"


def test_a_negative_hnsw_ef_is_one_line(adi_home):
    result = CliRunner().invoke(cli, ["--home", adi_home, "search", "library", "-c", "adi", "--hnsw-ef", "-5"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: hnsw_ef (--hnsw-ef) must be an integer from 1 to 2147483647, got -5"


def test_a_model_longer_than_its_base_is_refused_at_register(tmp_path, identity_model_dir):
    import shutil

    from ragcun.model.embedder import fingerprint_of

    model = tmp_path / "long"
    shutil.copytree(identity_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["max_seq_length"] = 4096
    (model / "config.json").write_text(json.dumps(config))
    # A consistent model directory (its fingerprint matches), only too long for its base.
    (model / "fingerprint").write_text(
        fingerprint_of((model / "config.json").read_bytes(), (model / "head.safetensors").read_bytes())
    )
    home = str(tmp_path / "home")
    runner = CliRunner()
    runner.invoke(cli, ["--home", home, "init"])
    result = runner.invoke(cli, ["--home", home, "models", "register", str(model)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: {model / 'config.json'}: max_seq_length 4096 is beyond the 512 positions of its base model: "
        "set it to at most 512"
    )
    assert json.loads(runner.invoke(cli, ["--home", home, "models", "list", "--json"]).stdout) == []
