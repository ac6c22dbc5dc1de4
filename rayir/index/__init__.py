"""Index backends (Faiss dense, exact sparse inverted, multi-vector) and the sharded index builder.

Modules by concern: ``queries`` (what a shard searches), ``hits`` (what it answers, and the
merge), ``files`` (the shard files all backends share), ``faiss_utils``, ``manifest`` (the index
manifest and doc-id table), ``ordinals``, ``build``, and one module per backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .build import build_index
from .hits import HitMatrix, merge_hits
from .queries import QueryBatch

BACKENDS = {
    "dense": (".dense", "DenseShard"),
    "sparse": (".sparse", "SparseShard"),
    "multi_vector": (".multivector", "MultiVectorShard"),
}


def load_shard(directory: str | Path, **options: Any) -> Any:
    """Open one index shard directory with the backend its ``meta.json`` names: a ``DenseShard``,
    ``SparseShard`` or ``MultiVectorShard``, each with ``search(QueryBatch, k) -> HitMatrix``.

    ``options``: ``nprobe`` / ``ef_search`` (dense), ``candidates_per_token`` / ``nprobe``
    (multi-vector); none for sparse.
    """
    from importlib import import_module

    from .files import load_meta

    directory = Path(directory)
    kind = load_meta(directory)["type"]
    module, name = BACKENDS[kind]  # only the backend in use is imported (sparse: no torch, no Faiss)
    return getattr(import_module(module, __name__), name)(directory, **options)


__all__ = ["HitMatrix", "QueryBatch", "build_index", "load_shard", "merge_hits"]
