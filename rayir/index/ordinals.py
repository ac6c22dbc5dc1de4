"""Ordinals: each document's position among the index's doc ids in sorted (code-point) order.

The index-level table is written by one task before the shards are built; each shard task then
looks its own documents up in it. Neither step runs in the driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..atomic import write_with
from ..errors import IntegrityError
from ..integrity import verify_file
from .manifest import DOC_TABLE, read_doc_table


def write_doc_table(embeddings_dir: str, shards: list[dict[str, Any]], index_dir: str) -> int:
    """Sort every doc id of the embedding shards (their manifest entries) into
    ``<index_dir>/doc_ids.parquet``; returns the count. It runs before any index shard is built and
    first verifies each embedding shard against its checksum, so a corrupt shard stops the build
    here, by name; a document id in two shards does too.

    Arrow compares strings by their UTF-8 bytes, which is code-point order: the order Python's
    ``sorted`` gives and run files use for ties."""
    paths = [Path(embeddings_dir) / shard["file"] for shard in shards]
    for path, shard in zip(paths, shards):
        verify_file(path, shard["sha256"], remedy="encode the corpus again")
    ids = pa.concat_arrays([pq.read_table(p, columns=["doc_id"]).column("doc_id").combine_chunks() for p in paths])
    ordered = ids.take(pc.sort_indices(ids))
    repeated = pc.equal(ordered[1:], ordered[:-1]) if len(ordered) > 1 else pa.array([], pa.bool_())
    if pc.any(repeated).as_py():
        first = ordered[pc.index(repeated, True).as_py()].as_py()
        raise IntegrityError(f"{embeddings_dir}: document id {first!r} appears in more than one embedding shard")
    table = pa.table({"doc_id": ordered})
    write_with(Path(index_dir) / DOC_TABLE, lambda tmp: pq.write_table(table, tmp))
    return len(ids)


def ordinals_of(doc_ids: pa.Array, index_dir: str | Path) -> np.ndarray:
    """The int64 ordinals of ``doc_ids`` (each must be in the index's table)."""
    positions = pc.index_in(doc_ids, value_set=read_doc_table(index_dir))
    if positions.null_count:
        raise ValueError(f"{index_dir}: {positions.null_count} document(s) missing from {DOC_TABLE}")
    return positions.to_numpy().astype(np.int64)
