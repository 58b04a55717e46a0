"""Helpers shared by the benchmark scripts (run them from the repository root: python benchmarks/X.py)."""

from __future__ import annotations

from pathlib import Path

# The shared datasets folder that sits next to a checkout of this repository.
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "scifact"


def corpus_file(data: Path, limit: int, workdir: Path) -> Path:
    """The corpus .jsonl of a BEIR folder (or the file itself), cut to its first ``limit`` lines if asked."""
    corpus = data / "corpus.jsonl" if data.is_dir() else data
    if not corpus.is_file():
        raise SystemExit(f"{corpus}: no such corpus; pass --data a BEIR folder or a corpus .jsonl")
    if not limit:
        return corpus
    limited = workdir / "corpus.jsonl"
    with corpus.open() as source, limited.open("w") as target:
        for _, line in zip(range(limit), source, strict=False):
            target.write(line)
    return limited
