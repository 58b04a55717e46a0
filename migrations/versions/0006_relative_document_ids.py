"""relative document ids: a file is named by its path relative to the ingest input, not its absolute path

Sources gain ``path`` (where the file was last read). Every source whose ``uri`` is an absolute path
is renamed to that path relative to the longest input of its collection's runs that contains it
(a file given directly: its name); its whole-file document takes the same name, so the document's
and its chunks' ids change. The catalog rows are re-keyed here; the points, which live in the
vector store, are re-keyed by ragcun the next time it opens the store (``point_rekeys`` lists
them: old point id, new point id, new doc_id and source), with their vectors as they are.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 00:45:00
"""

import json
import posixpath
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# ragcun.catalog.ops.RAGCUN_NAMESPACE, frozen here as the ids were made at this revision.
NAMESPACE = uuid.UUID("6f1c3c1e-2b1f-5a8e-9c7d-52a6c0b1e0aa")


def document_uuid(collection: str, doc_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"document\x00{collection}\x00{doc_id}"))


def chunk_uuid(document_id: str, ordinal: int, sha256: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"chunk\x00{document_id}\x00{ordinal}\x00{sha256}"))


def relative_key(uri: str, roots: list[str]) -> str:
    """``uri`` relative to the longest root that is it or contains it; a file given directly: its name."""
    best = None
    for root in roots:
        root = root.rstrip("/") or "/"
        contains = uri == root or uri.startswith(root + "/") or root == "/"
        if contains and (best is None or len(root) > len(best)):
            best = root
    if best is None or best == uri:
        return posixpath.basename(uri)
    return posixpath.relpath(uri, best)


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("path", sa.Text(), nullable=True))
    op.create_table(
        "point_rekeys",
        sa.Column("old_id", sa.String(length=36), nullable=False),
        sa.Column("new_id", sa.String(length=36), nullable=False),
        sa.Column("doc_id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("old_id"),
    )
    conn = op.get_bind()
    roots: dict[str, list[str]] = {}
    for collection, inputs in conn.execute(sa.text("SELECT collection_name, inputs FROM ingest_runs")):
        values = json.loads(inputs) if isinstance(inputs, str) else (inputs or [])
        roots.setdefault(collection, []).extend(v for v in values if isinstance(v, str) and v.startswith("/"))
    taken = {(c, u) for c, u in conn.execute(sa.text("SELECT collection_name, uri FROM sources"))}
    sources = conn.execute(sa.text("SELECT id, collection_name, uri FROM sources WHERE uri LIKE '/%'")).all()
    for source_id, collection, uri in sources:
        key = relative_key(uri, roots.get(collection, []))
        if (collection, key) in taken:  # two inputs with the same relative name: keep the absolute one
            conn.execute(sa.text("UPDATE sources SET path = :p WHERE id = :i"), {"p": uri, "i": source_id})
            continue
        taken.add((collection, key))
        conn.execute(
            sa.text("UPDATE sources SET path = :p, uri = :k WHERE id = :i"), {"p": uri, "k": key, "i": source_id}
        )
        document = conn.execute(
            sa.text("SELECT id FROM documents WHERE source_id = :s AND doc_id = :d"), {"s": source_id, "d": uri}
        ).first()
        if document is None:
            continue
        old_doc, new_doc = document[0], document_uuid(collection, key)
        # Copy, re-point, delete: every foreign key stays satisfied throughout.
        conn.execute(
            sa.text(
                "INSERT INTO documents (id, collection_name, doc_id, source_id, sha256, title, metadata, ingest_run_id, "
                "updated_at) SELECT :new, collection_name, :key, source_id, sha256, title, metadata, ingest_run_id, "
                "updated_at FROM documents WHERE id = :old"
            ),
            {"new": new_doc, "key": key, "old": old_doc},
        )
        for chunk_id, ordinal, sha in conn.execute(
            sa.text("SELECT id, ordinal, sha256 FROM chunks WHERE document_id = :d"), {"d": old_doc}
        ).all():
            new_chunk = chunk_uuid(new_doc, ordinal, sha)
            conn.execute(
                sa.text(
                    "INSERT INTO chunks (id, document_id, ordinal, sha256, text, token_count, locator) "
                    "SELECT :new, :doc, ordinal, sha256, text, token_count, locator FROM chunks WHERE id = :old"
                ),
                {"new": new_chunk, "doc": new_doc, "old": chunk_id},
            )
            conn.execute(
                sa.text("UPDATE collection_chunks SET chunk_id = :new WHERE chunk_id = :old"),
                {"new": new_chunk, "old": chunk_id},
            )
            conn.execute(sa.text("DELETE FROM chunks WHERE id = :old"), {"old": chunk_id})
            conn.execute(
                sa.text("INSERT INTO point_rekeys (old_id, new_id, doc_id, source) VALUES (:old, :new, :doc, :src)"),
                {"old": chunk_id, "new": new_chunk, "doc": key, "src": key},
            )
        conn.execute(sa.text("DELETE FROM documents WHERE id = :old"), {"old": old_doc})


def downgrade() -> None:
    # Ids stay relative: the absolute paths are kept in sources.path only until this drops it.
    op.drop_table("point_rekeys")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("path")
