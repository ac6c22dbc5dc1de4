"""Index backends (Faiss dense, exact sparse inverted, pruned sparse, multi-vector, compressed
multi-vector, COIL) and the sharded index builder.

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
    "coil": (".coil", "CoilShard"),
    "compressed_multi_vector": (".compressed", "CompressedMultiVectorShard"),
    "pruned_sparse": (".pruned", "PrunedSparseShard"),
}


def load_shard(
    directory: str | Path,
    files: dict[str, dict[str, Any]] | None = None,
    index_documents: int | None = None,
    **options: Any,
) -> Any:
    """Open one index shard directory with the backend its ``meta.json`` names: a ``DenseShard``,
    ``SparseShard`` or ``MultiVectorShard``, each with ``search(QueryBatch, k) -> HitMatrix``.

    ``files`` (the shard's checksums from the index manifest) are verified before anything is read;
    ``index_documents`` bounds the shard's ordinals. ``options``: ``nprobe`` / ``ef_search``
    (dense), ``candidates_per_token`` / ``nprobe`` (multi-vector), ``nprobe`` / ``ndocs`` (compressed
    multi-vector), ``query_terms`` / ``heap_factor`` (pruned sparse); none for the exact sparse index.
    """
    import inspect
    from importlib import import_module

    from ..errors import ConfigError, IntegrityError
    from ..integrity import verify_files
    from .checks import check_range
    from .files import load_meta

    directory = Path(directory)
    if files is not None:
        verify_files(directory, files)
    kind = load_meta(directory).get("type")
    if kind not in BACKENDS:
        raise IntegrityError(f"{directory / 'meta.json'}: unknown shard type {kind!r}")
    module, name = BACKENDS[kind]  # only the backend in use is imported (sparse: no torch, no Faiss)
    backend = getattr(import_module(module, __name__), name)
    known = set(inspect.signature(backend).parameters) - {"directory"}
    if unknown := sorted(set(options) - known):
        raise ConfigError(
            f"shard_options {unknown} do not apply to a {kind} index (it takes {sorted(known) or 'none'})"
        )
    shard = backend(directory, **options)
    if index_documents is not None:
        check_range(directory / "ordinals.npy", shard.ordinals, 0, index_documents, "ordinals")
    return shard


__all__ = ["HitMatrix", "QueryBatch", "build_index", "load_shard", "merge_hits"]
