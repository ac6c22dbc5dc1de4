"""Split a corpus into fixed, numbered chunks of document texts: the units of encoding work.

Chunk ``i`` always holds the same documents (corpus order, ``docs_per_shard`` each), so a chunk's
embedding shard can be rewritten by a retry or a re-run without ever duplicating a document.
Staging streams: one chunk is in memory at a time (plus the set of ids seen, to reject duplicates).
It is itself resumable: ``plan.json`` is written last and marks staging as complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_json, write_with
from ..data.errors import DuplicateIdError
from ..data.readers import read_docs

TEXT_SCHEMA = pa.schema([("doc_id", pa.string()), ("text", pa.string())])


@dataclass(frozen=True)
class Chunk:
    index: int
    path: str
    rows: int


def chunk_name(index: int) -> str:
    return f"chunk-{index:05d}.parquet"


def stage_corpus(corpus: str | Path, staging_dir: Path, docs_per_shard: int, settings: dict[str, Any]) -> list[Chunk]:
    """Write ``staging_dir/chunk-*.parquet`` and ``plan.json``; reuse a complete plan with equal settings."""
    if docs_per_shard < 1:
        raise ValueError("docs_per_shard must be >= 1")
    plan_path = staging_dir / "plan.json"
    if plan_path.exists():
        return load_plan(plan_path, settings)
    staging_dir.mkdir(parents=True, exist_ok=True)
    chunks: list[Chunk] = []
    ids: list[str] = []
    texts: list[str] = []
    seen: set[str] = set()

    def flush() -> None:
        path = staging_dir / chunk_name(len(chunks))
        table = pa.Table.from_arrays([pa.array(ids, pa.string()), pa.array(texts, pa.string())], schema=TEXT_SCHEMA)
        write_with(path, lambda tmp: pq.write_table(table, tmp))
        chunks.append(Chunk(len(chunks), path.name, len(ids)))
        ids.clear()
        texts.clear()

    for doc in read_docs(corpus, check_duplicates=False):
        if doc.doc_id in seen:
            raise DuplicateIdError(f"{corpus}: document id {doc.doc_id!r} appears more than once")
        seen.add(doc.doc_id)
        ids.append(doc.doc_id)
        texts.append(doc.text)
        if len(ids) == docs_per_shard:
            flush()
    if ids:
        flush()
    if not chunks:
        raise ValueError(f"{corpus}: the corpus has no documents")
    write_json(plan_path, {"settings": settings, "chunks": [c.__dict__ for c in chunks], "documents": len(seen)})
    return chunks


def load_plan(plan_path: Path, settings: dict[str, Any]) -> list[Chunk]:
    import json

    plan = json.loads(plan_path.read_text())
    if plan["settings"] != settings:
        changed = sorted(k for k in set(plan["settings"]) | set(settings) if plan["settings"].get(k) != settings.get(k))
        raise ValueError(
            f"{plan_path.parent.parent}: an unfinished encoding with different settings ({', '.join(changed)}) is "
            "here; use another output directory or overwrite=True"
        )
    return [Chunk(**c) for c in plan["chunks"]]
