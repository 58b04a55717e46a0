"""``ragcun ingest``: files and folders into a collection."""

from __future__ import annotations

import click

from ragcun.cli.main import AppContext, cli, emit, json_option, pass_app
from ragcun.settings import HNSW_EF, HNSW_EF_CONSTRUCT, HNSW_M


def load_model(model_path: str | None):
    """The named model directory, or the shipped default model."""
    from ragcun.model import GaussianEmbedder, default_model_path

    return GaussianEmbedder.load(model_path or default_model_path())


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-c", "--collection", required=True, help="Logical collection to ingest into (created if missing).")
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, file_okay=False),
    help="Model directory (default: the collection's model, or the default model).",
)
@click.option("--include", multiple=True, help="Glob of files to take, relative to each folder (repeatable).")
@click.option("--exclude", multiple=True, help="Glob of files to skip (repeatable).")
@click.option("--sync", is_flag=True, help="Delete documents whose source files are gone.")
@click.option(
    "--prefix",
    default="",
    help="Put before each file's path relative to its input folder, which names "
    "the file and its document (e.g. docs/ makes docs/parking.md).",
)
@click.option(
    "--chunk-tokens",
    type=int,
    help="Chunk size in model tokens [default: the model's max length - 2, room for [CLS] and [SEP]].",
)
@click.option(
    "--chunk-overlap", type=int, default=32, show_default=True, help="Tokens shared by adjacent token windows."
)
@click.option(
    "--chunking",
    type=click.Choice(["structure", "tokens"]),
    default="structure",
    show_default=True,
    help="structure: split at headings, paragraphs, sentences and table rows before token windows; "
    "tokens: token windows only.",
)
@click.option("--batch-size", type=int, default=128, show_default=True, help="Chunks embedded and upserted together.")
@click.option(
    "--format",
    "jsonl_format",
    type=click.Choice(["auto", "jsonl", "beir"]),
    default="auto",
    show_default=True,
    help="JSONL field names: beir (_id, title, text, metadata) or jsonl (the --*-field options); auto takes "
    "beir for the corpus.jsonl of a BEIR folder (beside queries.jsonl or qrels/) only.",
)
@click.option("--id-field", default="id", show_default=True, help="JSONL: id field (a string or an integer).")
@click.option("--text-field", default="text", show_default=True, help="JSONL: text field.")
@click.option("--title-field", default="title", show_default=True, help="JSONL: title field.")
@click.option(
    "--metadata-field",
    "metadata_fields",
    multiple=True,
    help="JSONL: field kept as metadata (repeatable) [default: every other field].",
)
@click.option("--max-doc-mb", type=float, default=10.0, show_default=True, help="Refuse larger documents.")
@click.option("--hnsw-m", type=int, default=HNSW_M, show_default=True, help="New collection: HNSW degree.")
@click.option(
    "--hnsw-ef-construct",
    type=int,
    default=HNSW_EF_CONSTRUCT,
    show_default=True,
    help="New collection: HNSW build width.",
)
@click.option("--hnsw-ef", type=int, default=HNSW_EF, show_default=True, help="New collection: default search width.")
@click.option("--shards", type=int, help="New collection on a server: shard count.")
@click.option("--replicas", type=int, help="New collection on a server: replication factor.")
@click.option("--write-consistency", type=int, help="New collection on a server: write consistency factor.")
@click.option("--on-disk", is_flag=True, help="New collection: keep vectors on disk (memory-mapped).")
@click.option(
    "--adapt",
    "then_adapt",
    is_flag=True,
    help="Then fit the collection's own model version (see `ragcun adapt`); exit 3 if its gate refuses it.",
)
@json_option
@pass_app
def ingest(
    app: AppContext,
    paths,
    collection,
    model_path,
    include,
    exclude,
    sync,
    prefix,
    chunk_tokens,
    chunk_overlap,
    chunking,
    batch_size,
    jsonl_format,
    id_field,
    text_field,
    title_field,
    metadata_fields,
    max_doc_mb,
    hnsw_m,
    hnsw_ef_construct,
    hnsw_ef,
    shards,
    replicas,
    write_consistency,
    on_disk,
    then_adapt,
    as_json,
) -> None:
    """Ingest files and folders (.txt .md .html .pdf .docx .jsonl, BEIR folders) into a collection.

    A bad file (or JSONL line) fails alone: it is named on stderr and the rest are ingested.

    \b
    Exit status:
      0  every input was ingested (or was unchanged)
      1  nothing ran: bad options, or no input can be read (missing paths, FIFOs)
      3  the run completed, but some files or lines failed (each named on stderr)
    """
    from ragcun.catalog.ops import active_collection
    from ragcun.ingest import IngestOptions, JsonlFields, ingest as run_ingest
    from ragcun.ingest.pipeline import find_inputs

    options = IngestOptions(
        include=include,
        exclude=exclude,
        sync=sync,
        prefix=prefix,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        chunking=chunking,
        batch_size=batch_size,
        jsonl_format=jsonl_format,
        fields=JsonlFields(id=id_field, text=text_field, title=title_field, metadata=tuple(metadata_fields) or None),
        max_document_bytes=int(max_doc_mb * 2**20),
        collection_params=dict(
            hnsw_m=hnsw_m,
            hnsw_ef_construct=hnsw_ef_construct,
            hnsw_ef=hnsw_ef,
            shard_number=shards,
            replication_factor=replicas,
            write_consistency_factor=write_consistency,
            on_disk=on_disk,
        ),
    )
    find_inputs(paths, options)  # nothing to read is said before the model loads
    with app.workspace() as ws:
        with ws.catalog.session() as session:
            existing = active_collection(session, collection)
            embedder = ws.embedder_for(existing) if existing is not None and not model_path else load_model(model_path)
        if then_adapt:
            from ragcun.collections.adapt import ingest_and_adapt

            both = ingest_and_adapt(ws, paths, collection, embedder, options)
        else:
            result = run_ingest(ws, paths, collection, embedder, options)
    if not then_adapt:
        emit(result.to_dict(), as_json, render)
        exit_if_failed(result.failed)
        return
    from ragcun.cli.adapt import exit_if_refused, render_adapt

    def render_both(data: dict) -> None:
        render(data["ingest"])
        render_adapt(data["adapt"])

    emit(both.to_dict(), as_json, render_both)
    exit_if_failed(both.ingest["failed"])
    exit_if_refused(both.adapt)


# Exit status of a run that completed with failed files or lines (each is named on stderr).
EXIT_FAILED_FILES = 3


def exit_if_failed(failed: int) -> None:
    if failed:
        raise SystemExit(EXIT_FAILED_FILES)


def render(data: dict) -> None:
    """The ingest run's counts, then each failure."""
    counts = ", ".join(f"{k} {data[k]}" for k in ("added", "updated", "unchanged", "deleted", "failed"))
    click.echo(
        f"Run {data['run_id']} into {data['collection']!r}: {counts}; "
        f"{data['chunks_written']} chunks embedded in {data['seconds']:.1f}s"
    )
    for error in data["errors"]:
        where = f"{error['uri']}:{error['line']}" if error.get("line") else error["uri"]
        click.echo(f"  {'warning' if error.get('warning') else 'failed'}: {where}: {error['error']}", err=True)
