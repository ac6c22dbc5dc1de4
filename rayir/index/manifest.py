"""The index manifest: what an index holds, how its queries must be encoded, and its doc-id table.

``manifest.json`` is written last, so its presence means every shard is complete. It records the
type, factory, shards and their document counts, and the ``query_encoder`` spec (see
:mod:`rayir.encoders`) that the search stage loads. ``doc_ids.parquet`` beside it lists every
document id in sorted order: a document's row there is its ordinal (see :mod:`.hits`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_json

INDEX_MANIFEST = "manifest.json"
INDEX_FORMAT_VERSION = 3  # 3: query-encoder fingerprints hash the checkpoint files; relative paths only
DOC_TABLE = "doc_ids.parquet"


def write_index_manifest(index_dir: Path, manifest: dict[str, Any]) -> None:
    write_json(index_dir / INDEX_MANIFEST, {"format_version": INDEX_FORMAT_VERSION, "kind": "index", **manifest})


def read_index_manifest(index_dir: str | Path) -> dict[str, Any]:
    """The manifest of a finished index; an unfinished, foreign or older-format one is an error."""
    path = Path(index_dir) / INDEX_MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{index_dir}: no {INDEX_MANIFEST}; build the index first (jobs/index.py)")
    manifest = json.loads(path.read_text())
    if manifest.get("kind") != "index":
        raise ValueError(f"{path}: not an index manifest (kind={manifest.get('kind')!r})")
    if manifest.get("format_version") != INDEX_FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {manifest.get('format_version')} (this rayir reads "
            f"{INDEX_FORMAT_VERSION}); rebuild the index"
        )
    return manifest


def read_doc_table(index_dir: str | Path) -> pa.StringArray:
    """Every doc id of the index in ordinal order (``table[ordinal]`` is the id)."""
    return pq.read_table(Path(index_dir) / DOC_TABLE, columns=["doc_id"]).column("doc_id").combine_chunks()
