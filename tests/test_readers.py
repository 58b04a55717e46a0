"""Each file reader on a real small file committed under tests/fixtures/files (see make_fixtures.py)."""

import shutil
from pathlib import Path

from ragcun.ingest import ingest
from ragcun.ingest.readers import InputProblem, SourceDocument, discover, read_source

FILES = Path(__file__).parent / "fixtures" / "files"


def only_document(path: Path) -> SourceDocument:
    (document,) = read_source(path)
    assert isinstance(document, SourceDocument), document
    return document


def test_latin1_text_is_decoded_and_its_encoding_recorded():
    document = only_document(FILES / "latin1.txt")
    assert document.text.startswith("Le café de la gare ouvre à sept heures.")
    assert "crème brûlée, un thé glacé" in document.text
    # Windows-1252 is Latin-1's superset: every Latin-1 letter decodes the same.
    assert document.metadata == {"encoding": "cp1252"}


def test_utf8_text_records_utf8():
    assert only_document(FILES / "handbook.md").metadata["encoding"] == "utf-8"


def test_html_keeps_the_main_content_and_drops_navigation_and_footer():
    document = only_document(FILES / "page.html")
    assert document.title == "Rotating API keys"
    assert "API keys should be rotated every ninety days." in document.text
    assert "## Before you start" in document.text and "## Schedule" in document.text
    assert "| Personal token | 30 days | none |" in document.text
    for boilerplate in (
        "Pricing",
        "Careers at ACME",
        "Copyright 2024",
        "Privacy policy",
        "Our new office",
        "do-not-index",
        "float: left",
    ):
        assert boilerplate not in document.text, boilerplate
    assert document.metadata == {"encoding": "utf-8", "extraction": "trafilatura"}


def test_html_without_main_content_falls_back_with_a_recorded_reason(tmp_path):
    # A page whose only text is in a footer: trafilatura keeps nothing, so the visible text is taken.
    (tmp_path / "menu.html").write_text(
        "<html><head><title>Menu</title></head><body><footer>Soup of the day</footer></body></html>"
    )
    document = only_document(tmp_path / "menu.html")
    assert (document.title, document.text) == ("Menu", "Soup of the day")
    assert document.metadata["extraction"] == "beautifulsoup: trafilatura found no main content"


def test_docx_keeps_paragraphs_and_tables_in_reading_order():
    document = only_document(FILES / "policy.docx")
    assert document.title == "Expense policy"
    assert document.text == (
        "# Expense policy\n\n"
        "Employees are reimbursed for travel booked through the company portal.\n\n"
        "| Expense | Daily limit |\n| --- | --- |\n| Hotel | 180 EUR |\n| Meals | 45 EUR |\n\n"
        "## Receipts\n\n"
        "Receipts are uploaded within thirty days of the trip."
    )


def test_pdf_keeps_where_each_page_starts_and_takes_the_sidecar():
    document = only_document(FILES / "report.pdf")
    first = "Revenue grew by twelve percent in the third quarter."
    second = "Headcount stayed flat at forty-two engineers."
    assert document.text == f"{first}\n\n{second}"
    assert document.page_starts == (0, len(first) + 2)
    # report.pdf.meta.json: its fields are the document's metadata, its title the document's title.
    assert document.title == "Quarterly report"
    assert document.metadata == {"pages": 2, "department": "finance", "confidential": False}


def test_markdown_front_matter_is_metadata_and_not_text():
    document = only_document(FILES / "handbook.md")
    assert document.title == "Security handbook"
    assert document.metadata == {
        "encoding": "utf-8",
        "owner": "platform-team",
        "tags": ["security", "keys"],
        "reviewed": "2024-05-01",
    }
    assert document.text.startswith("# Security\n\nEvery service authenticates")
    assert "owner:" not in document.text and "| Service key | 90 days | platform-team |" in document.text


def test_bad_front_matter_and_sidecar_are_problems(tmp_path):
    (tmp_path / "list.md").write_text("---\n- a\n- b\n---\nbody\n")
    (problem,) = read_source(tmp_path / "list.md")
    assert problem == InputProblem(str(tmp_path / "list.md"), "front matter must be a YAML mapping, got list")
    (tmp_path / "a.txt").write_text("text")
    (tmp_path / "a.txt.meta.json").write_text("[1, 2]")
    (problem,) = read_source(tmp_path / "a.txt")
    assert problem.error == "a.txt.meta.json: expected a JSON object, got list"
    # A sidecar is no document of its own.
    assert discover([tmp_path]) == [(tmp_path / "a.txt").resolve(), (tmp_path / "list.md").resolve()]


def test_library_warnings_are_notes_on_the_run_not_terminal_output(workspace, identity_embedder, tmp_path, capfd):
    data = (FILES / "report.pdf").read_bytes()
    broken = data[: data.rindex(b"startxref")] + b"startxref\n99\n%%EOF\n"  # pypdf warns and recovers
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken-xref.pdf").write_bytes(broken)
    document = only_document(tmp_path / "in" / "broken-xref.pdf")
    assert any(note.startswith("pypdf") and "startxref" in note for note in document.notes)
    result = ingest(workspace, [tmp_path / "in"], "kb", identity_embedder)
    assert (result.added, result.failed) == (1, 0)
    assert result.errors and all(e["warning"] and e["error"].startswith("pypdf") for e in result.errors)
    assert "startxref" not in capfd.readouterr().err


def test_page_numbers_and_metadata_reach_the_payload(workspace, identity_embedder, tmp_path):
    from ragcun.ingest import IngestOptions

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("report.pdf", "report.pdf.meta.json", "handbook.md"):
        shutil.copy(FILES / name, folder / name)
    # Small chunks, so each PDF page is its own chunk; the whole PDF as one chunk spans both pages.
    ingest(
        workspace, [folder / "report.pdf"], "pages", identity_embedder, IngestOptions(chunk_tokens=16, chunk_overlap=4)
    )
    ingest(workspace, [folder / "report.pdf"], "whole", identity_embedder)
    ingest(
        workspace,
        [folder / "handbook.md"],
        "handbook",
        identity_embedder,
        IngestOptions(chunk_tokens=40, chunk_overlap=4),
    )
    (revenue, headcount) = sorted(payloads(workspace, "pages"), key=lambda p: p["chunk"])
    assert "Revenue grew" in revenue["text"] and "Headcount" in headcount["text"]
    assert (revenue["page"], headcount["page"]) == (1, 2) and "pages" not in revenue
    assert revenue["metadata"] == {"pages": 2, "department": "finance", "confidential": False}
    assert revenue["title"] == "Quarterly report"
    (whole,) = payloads(workspace, "whole")
    assert (whole["page"], whole["pages"]) == (1, [1, 2])
    handbook = payloads(workspace, "handbook")
    keys = [p for p in handbook if "| Service key |" in p["text"]]
    assert keys and all(p["heading_path"] == "Security > Keys" for p in keys)
    assert all(p["metadata"]["owner"] == "platform-team" and "page" not in p for p in handbook)


def payloads(ws, name):
    from ragcun.catalog.ops import require_collection

    with ws.catalog.session() as session:
        physical = require_collection(session, name).physical_name
    return [p.payload for p in ws.store.scroll(physical)]
