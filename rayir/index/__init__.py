"""Index backends (Faiss dense, exact sparse inverted, multi-vector) and the sharded index builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Hits, QueryBatch, merge_hits
from .build import build_index


def load_shard(directory: str | Path, **options: Any):
    """Open one index shard directory with the backend its ``meta.json`` names.

    ``options``: ``nprobe`` / ``ef_search`` (dense), ``candidates_per_token`` / ``nprobe``
    (multi-vector); none for sparse.
    """
    from .base import load_meta
    from .dense import DenseShard
    from .multivector import MultiVectorShard
    from .sparse import SparseShard

    directory = Path(directory)
    kind = load_meta(directory)["type"]
    backends = {"dense": DenseShard, "sparse": SparseShard, "multi_vector": MultiVectorShard}
    return backends[kind](directory, **options)


__all__ = ["Hits", "QueryBatch", "build_index", "load_shard", "merge_hits"]
