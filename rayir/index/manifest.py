"""The index manifest: what an index holds, how its queries must be encoded, and its doc-id table.

``manifest.json`` is written last, so its presence means every shard is complete. It records the
type, factory, shards and their document counts, and the ``query_encoder`` spec (see
:mod:`rayir.encoders`) that the search stage loads. ``doc_ids.parquet`` beside it lists every
document id in sorted order: a document's row there is its ordinal (see :mod:`.hits`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_json
from ..errors import IntegrityError
from ..integrity import inside

INDEX_MANIFEST = "manifest.json"
INDEX_FORMAT_VERSION = 4  # 4: checksums of every file, and of the manifest itself
SELF_CHECKSUM = "manifest_sha256"
DOC_TABLE = "doc_ids.parquet"


def write_index_manifest(index_dir: Path, manifest: dict[str, Any]) -> None:
    content = {"format_version": INDEX_FORMAT_VERSION, "kind": "index", **manifest}
    write_json(index_dir / INDEX_MANIFEST, {**content, SELF_CHECKSUM: _digest(content)})


def _digest(content: dict[str, Any]) -> str:
    """The manifest's own checksum: over its canonical JSON without this field, so that no byte of
    the manifest can change unnoticed either."""
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def read_index_manifest(index_dir: str | Path) -> dict[str, Any]:
    """The manifest of a finished index; an unfinished, foreign, older-format, changed one, or one
    whose paths lead outside the index, is an error."""
    path = Path(index_dir) / INDEX_MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{index_dir}: no {INDEX_MANIFEST}; build the index first (jobs/index.py)")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IntegrityError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "index":
        raise IntegrityError(f"{path}: not an index manifest")
    if manifest.get("format_version") != INDEX_FORMAT_VERSION:
        raise IntegrityError(
            f"{path}: format_version {manifest.get('format_version')} (this rayir reads "
            f"{INDEX_FORMAT_VERSION}); rebuild the index"
        )
    recorded = manifest.pop(SELF_CHECKSUM, None)
    if recorded != _digest(manifest):
        raise IntegrityError(f"{path}: differs from its own checksum (corrupt or edited); rebuild the index")
    for shard in manifest["shards"]:
        inside(Path(index_dir), shard["dir"], "shard")
    if manifest["query_encoder"]["files"] is not None:
        inside(Path(index_dir), manifest["query_encoder"]["files"], "query encoder files")
    return manifest


def read_doc_table(index_dir: str | Path) -> pa.StringArray:
    """Every doc id of the index in ordinal order (``table[ordinal]`` is the id)."""
    return pq.read_table(Path(index_dir) / DOC_TABLE, columns=["doc_id"]).column("doc_id").combine_chunks()
