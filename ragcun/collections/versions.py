"""Model versions: registering a model (a copy of its files goes into the ragcun home), finding and removing one."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcun.catalog.models import Collection, IngestRun, ModelVersion
from ragcun.errors import InvalidInputError, ModelVersionNotFound, RagcunError
from ragcun.workspace import Workspace

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from ragcun.model import GaussianEmbedder


@dataclass
class ModelVersionInfo:
    """A registered model version and the physical collections bound to it."""

    fingerprint: str
    base_model: str
    head: str
    dim: int
    path: str
    created_at: datetime
    collections: list[dict] = field(default_factory=list)  # {name, physical_name, status}

    def to_dict(self) -> dict:
        return asdict(self)


def _info(session: Session, version: ModelVersion) -> ModelVersionInfo:
    bound = session.scalars(select(Collection).where(Collection.model_version_id == version.id)).all()
    return ModelVersionInfo(
        version.fingerprint,
        version.base_model,
        version.head["kind"],
        version.dim,
        version.path,
        version.created_at,
        [{"name": c.name, "physical_name": c.physical_name, "status": c.status} for c in bound],
    )


def register_model_version(session: Session, embedder: GaussianEmbedder, models_dir: Path) -> ModelVersion:
    """The catalog row of ``embedder``'s version, saving a copy of the model under ``models_dir``.

    Keeping a copy in the ragcun home means a collection can always reload the exact model that
    built it, even if the directory it came from is moved or deleted.
    """
    fingerprint = embedder.fingerprint
    version = session.scalar(select(ModelVersion).where(ModelVersion.fingerprint == fingerprint))
    if version is not None:
        return version
    path = models_dir / fingerprint
    if not (path / "fingerprint").is_file():
        embedder.save(path)
    version = ModelVersion(
        fingerprint=fingerprint,
        base_model=embedder.base_model,
        head=embedder.head_spec.to_dict(),
        dim=embedder.dim,
        path=str(path),
    )
    session.add(version)
    session.flush()
    return version


def find_model_version(session: Session, ref: str) -> ModelVersion:
    """A registered model version by fingerprint (or a unique prefix of at least 6 characters)."""
    if len(ref) < 6:
        raise InvalidInputError(f"model version {ref!r} is too short; give at least 6 characters of its fingerprint")
    matches = session.scalars(select(ModelVersion).where(ModelVersion.fingerprint.startswith(ref))).all()
    if not matches:
        raise ModelVersionNotFound(f"no registered model version matches {ref!r}; see `ragcun models list`")
    if len(matches) > 1:
        raise InvalidInputError(f"more than one registered model version matches {ref!r}; see `ragcun models list`")
    return matches[0]


def load_model_ref(ws: Workspace, ref: str):
    """A model given as a directory, or as the fingerprint (prefix) of a registered version."""
    from ragcun.model import GaussianEmbedder

    if Path(ref).is_dir():
        return GaussianEmbedder.load(ref)
    with ws.catalog.session() as session:
        return GaussianEmbedder.load(find_model_version(session, ref).path)


def list_models(ws: Workspace) -> list[ModelVersionInfo]:
    with ws.catalog.session() as session:
        return [_info(session, v) for v in session.scalars(select(ModelVersion).order_by(ModelVersion.id))]


def show_model(ws: Workspace, ref: str) -> ModelVersionInfo:
    with ws.catalog.session() as session:
        return _info(session, find_model_version(session, ref))


def register_model(ws: Workspace, path: str) -> ModelVersionInfo:
    """Register the model directory ``path`` as a version (its files are copied into the home)."""
    from ragcun.model import GaussianEmbedder

    embedder = GaussianEmbedder.load(path)
    with ws.catalog.session() as session:
        version = register_model_version(session, embedder, ws.models_dir)
        session.commit()
        return _info(session, version)


def remove_model(ws: Workspace, ref: str) -> ModelVersionInfo:
    """Forget a model version; refused while any collection (even a retired one) is bound to it."""
    with ws.catalog.session() as session:
        version = find_model_version(session, ref)
        info = _info(session, version)
        if info.collections:
            names = ", ".join(f"{c['physical_name']} ({c['status']})" for c in info.collections)
            raise RagcunError(f"model {version.fingerprint[:12]} is bound to {names}; drop or gc those first")
        for run in session.scalars(select(IngestRun).where(IngestRun.model_version_id == version.id)):
            run.model_version_id = None
        session.delete(version)
        session.commit()
        if Path(version.path).parent == ws.models_dir:
            shutil.rmtree(version.path, ignore_errors=True)
        return info
