"""The embeddings manifest: what was encoded, by which model, and proof that nothing is missing.

``manifest.json`` is written last, after verification, so its presence means the directory is
complete: every staged document appears in exactly one shard, in order, and every shard's checksum
is recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..errors import IntegrityError
from ..integrity import inside, verify_file

FORMAT_VERSION = 2  # 2: model fingerprints hash the checkpoint's files
MANIFEST = "manifest.json"


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{directory}: no {MANIFEST}; the encoding is missing or unfinished")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IntegrityError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise IntegrityError(f"{path}: format_version {version} (this rayir reads {FORMAT_VERSION})")
    for shard in manifest.get("shards", []):
        inside(Path(directory), shard.get("file"), "embedding shard")
    return manifest


class VerificationError(IntegrityError):
    """Embedding shards disagree with the staged corpus or the manifest."""


def verify_shard_against_chunk(shard: Path, chunk: Path) -> int:
    """Same doc ids in the same order; returns the row count."""
    shard_ids = pq.read_table(shard, columns=["doc_id"]).column("doc_id")
    chunk_ids = pq.read_table(chunk, columns=["doc_id"]).column("doc_id")
    if not shard_ids.equals(chunk_ids):
        raise VerificationError(f"{shard}: document ids differ from {chunk}")
    return len(shard_ids)


def verify_manifest(directory: str | Path) -> dict[str, Any]:
    """Re-check a finished directory: shard row counts, checksums and globally unique doc ids."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    seen: set[str] = set()
    total = 0
    for shard in manifest["shards"]:
        path = directory / shard["file"]
        verify_file(path, shard["sha256"], remedy="encode again with overwrite")
        ids = pq.read_table(path, columns=["doc_id"]).column("doc_id").to_pylist()
        if len(ids) != shard["rows"]:
            raise VerificationError(f"{path}: {len(ids)} rows, manifest says {shard['rows']}")
        before = len(seen)
        seen.update(ids)
        if len(seen) - before != len(ids):
            raise VerificationError(f"{path}: document ids repeated across shards")
        total += len(ids)
    if total != manifest["documents"]:
        raise VerificationError(f"{directory}: {total} documents in shards, manifest says {manifest['documents']}")
    return manifest
