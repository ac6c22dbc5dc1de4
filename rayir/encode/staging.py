"""Split a corpus into fixed, numbered chunks of document texts: the units of encoding work.

Chunk ``i`` always holds the same documents (corpus order, ``docs_per_shard`` each), so a chunk's
embedding shard can be rewritten by a retry or a re-run without ever duplicating a document.
Staging streams: one chunk is in memory at a time (plus 8 bytes per id, to reject duplicates).
It is itself resumable: ``plan.json`` is written last and marks staging as complete.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_json, write_with
from ..data.readers import duplicate_id_error, read_docs

TEXT_SCHEMA = pa.schema([("doc_id", pa.string()), ("text", pa.string())])
QUERY_SCHEMA = pa.schema([("query_id", pa.string()), ("text", pa.string())])


@dataclass(frozen=True)
class Chunk:
    index: int
    path: str
    rows: int


def chunk_name(index: int) -> str:
    return f"chunk-{index:05d}.parquet"


def id_hash(value: str) -> int:
    """The 64-bit hash an id is checked for repeats by (staging keeps these, not the strings)."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little")


class IdCheck:
    """Rejects a repeated id with memory that stays small at millions of ids.

    Each id is kept as a 64-bit hash (8 bytes, not a Python string in a set); a hash seen before
    is confirmed against the ids actually kept so far in this chunk or earlier chunks (a true
    collision is vanishingly rare and then costs one pass over the staged chunks).
    """

    def __init__(self, source: str | Path, what: str, staging_dir: Path, id_column: str) -> None:
        self.source, self.what, self.staging_dir, self.id_column = source, what, staging_dir, id_column
        self._hashes: set[int] = set()
        self._sorted = np.empty(0, dtype=np.uint64)

    def add(self, value: str, pending: list[str], chunks: list[Chunk]) -> None:
        digest = id_hash(value)
        if digest in self._hashes or _contains(self._sorted, digest):
            if value in pending or self._staged(value, chunks):
                raise duplicate_id_error(self.source, "doc" if self.what == "document" else "query", value)
        self._hashes.add(digest)
        if len(self._hashes) >= 65536:  # fold the small set into the compact sorted array
            merged = np.concatenate([self._sorted, np.fromiter(self._hashes, np.uint64, len(self._hashes))])
            self._sorted = np.sort(merged)
            self._hashes.clear()

    def _staged(self, value: str, chunks: list[Chunk]) -> bool:
        return any(
            value in pq.read_table(self.staging_dir / c.path, columns=[self.id_column]).column(0).to_pylist()
            for c in chunks
        )


def _contains(sorted_values: np.ndarray, value: int) -> bool:
    position = int(np.searchsorted(sorted_values, np.uint64(value)))
    return position < len(sorted_values) and int(sorted_values[position]) == value


def stage_corpus(corpus: str | Path, staging_dir: Path, docs_per_shard: int, settings: dict[str, Any]) -> list[Chunk]:
    """Write ``staging_dir/chunk-*.parquet`` and ``plan.json``; reuse a complete plan with equal settings."""
    records = ((doc.doc_id, doc.text) for doc in read_docs(corpus, check_duplicates=False))
    return stage_records(records, corpus, staging_dir, docs_per_shard, settings, TEXT_SCHEMA, "document")


def stage_records(
    records: Iterable[tuple[str, str]],
    source: str | Path,
    staging_dir: Path,
    per_chunk: int,
    settings: dict[str, Any],
    schema: pa.Schema,
    what: str,
) -> list[Chunk]:
    """Stream ``(id, text)`` records into numbered chunks of ``per_chunk`` (columns of ``schema``).

    One chunk is in memory at a time plus 8 bytes per id for the duplicate check; ``plan.json``,
    written last, marks staging complete and is reused when the settings are equal.
    """
    if per_chunk < 1:
        raise ValueError(f"{_plural(what)} per chunk must be >= 1")
    plan_path = staging_dir / "plan.json"
    if plan_path.exists():
        return load_plan(plan_path, settings)
    staging_dir.mkdir(parents=True, exist_ok=True)
    chunks: list[Chunk] = []
    ids: list[str] = []
    texts: list[str] = []
    check = IdCheck(source, what, staging_dir, schema.names[0])

    def flush() -> None:
        path = staging_dir / chunk_name(len(chunks))
        table = pa.Table.from_arrays([pa.array(ids, pa.string()), pa.array(texts, pa.string())], schema=schema)
        write_with(path, lambda tmp: pq.write_table(table, tmp))
        chunks.append(Chunk(len(chunks), path.name, len(ids)))
        ids.clear()
        texts.clear()

    for record_id, text in records:
        check.add(record_id, ids, chunks)
        ids.append(record_id)
        texts.append(text)
        if len(ids) == per_chunk:
            flush()
    if ids:
        flush()
    if not chunks:
        raise ValueError(f"{source}: no {_plural(what)}")
    total = sum(c.rows for c in chunks)
    write_json(plan_path, {"settings": settings, "chunks": [c.__dict__ for c in chunks], "documents": total})
    return chunks


def _plural(what: str) -> str:
    return "queries" if what == "query" else f"{what}s"


def load_plan(plan_path: Path, settings: dict[str, Any]) -> list[Chunk]:
    import json

    plan = json.loads(plan_path.read_text())
    if plan["settings"] != settings:
        raise ValueError(
            f"{plan_path.parent.parent}: an unfinished encoding with other settings is here "
            f"({settings_difference(plan['settings'], settings)}); run again with its settings to resume, or "
            "give another output directory, or --overwrite true to start over"
        )
    return [Chunk(**c) for c in plan["chunks"]]


def settings_difference(recorded: dict[str, Any], wanted: dict[str, Any]) -> str:
    """The settings that differ, by name and with both values (a changed source fingerprint is said
    in words, a changed model fingerprint without its hashes)."""
    changed = sorted(k for k in set(recorded) | set(wanted) if recorded.get(k) != wanted.get(k))
    words = {
        "corpus_fingerprint": "the corpus file changed since it was staged",
        "queries_fingerprint": "the queries file changed since they were staged",
        "model_fingerprint": "the model's files differ",
    }
    return ", ".join(words.get(k, f"{k}: {recorded.get(k)!r} there, {wanted.get(k)!r} now") for k in changed)
