"""Build a sharded index from an embeddings directory: one Ray task per index shard.

Index directory::

    manifest.json       written last: type, settings, shards and their document counts, and the
                        query encoder (model + config) the search stage must use
    shard-0000/ ...     one backend directory per shard (see dense.py, sparse.py, multivector.py)

Embedding shard files are split into ``num_shards`` contiguous groups, so every document lands in
exactly one index shard.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_json
from ..encode.formats import dense_matrix, sparse_rows, token_matrix
from ..encode.manifest import read_manifest
from ..ray_runtime import ensure_ray

INDEX_MANIFEST = "manifest.json"
INDEX_FORMAT_VERSION = 1


def shard_dir_name(index: int) -> str:
    return f"shard-{index:04d}"


def _groups(files: list[str], num_shards: int) -> list[list[str]]:
    if num_shards < 1:
        raise ValueError("num_shards must be >= 1")
    if num_shards > len(files):
        raise ValueError(f"num_shards={num_shards} but the embeddings have only {len(files)} shard files; "
                         "encode with a smaller docs_per_shard or build fewer index shards")
    bounds = np.linspace(0, len(files), num_shards + 1).round().astype(int)
    return [files[bounds[i]: bounds[i + 1]] for i in range(num_shards)]


def build_index_shard(embeddings_dir: str, files: list[str], target: str, manifest: dict[str, Any],
                      factory: str, threads: int | None) -> dict[str, Any]:
    """Build one index shard from some embedding Parquet files (runs as a Ray task)."""
    from .dense import build_dense_shard
    from .multivector import build_multivector_shard
    from .sparse import build_sparse_shard

    table = pa.concat_tables([pq.read_table(Path(embeddings_dir) / f) for f in files])
    doc_ids = table.column("doc_id").to_pylist()
    config = manifest["model_config"]
    cosine = config.get("similarity") == "cosine"
    directory = Path(target)
    if directory.exists():
        shutil.rmtree(directory)  # a half-built shard from an earlier attempt
    mode = manifest["mode"]
    if mode == "dense":
        return build_dense_shard(dense_matrix(table), doc_ids, directory, factory, cosine, threads=threads)
    if mode == "sparse":
        indptr, terms, weights = sparse_rows(table)
        return build_sparse_shard(indptr, terms, weights, doc_ids, directory, manifest["dim"])
    tokens, counts = token_matrix(table)
    return build_multivector_shard(tokens, counts, doc_ids, directory, factory, cosine,
                                   config.get("query_aggregation", "sum"), threads=threads)


def build_index(
    embeddings_dir: str | Path,
    index_dir: str | Path,
    num_shards: int = 1,
    factory: str = "Flat",
    threads_per_shard: int | None = None,
    overwrite: bool = False,
    in_process: bool = False,
) -> dict[str, Any]:
    """Build ``num_shards`` index shards in parallel Ray tasks and write the index manifest.

    ``factory`` is a Faiss index factory string for dense and multi-vector embeddings (``Flat``,
    ``IVF1024,Flat``, ``HNSW32``, ``IVF1024,PQ32``...); sparse embeddings always get the exact
    inverted index and take ``factory="inverted"``. ``in_process=True`` builds the shards one after
    another in this process, without Ray (small indexes).
    """
    import ray

    embeddings_dir, index_dir = Path(embeddings_dir), Path(index_dir)
    manifest = read_manifest(embeddings_dir)
    if manifest["mode"] == "sparse" and factory not in ("inverted", "Flat"):
        raise ValueError(f"sparse embeddings use the exact inverted index; factory={factory!r} does not apply")
    if manifest["mode"] == "sparse":
        factory = "inverted"
    if (index_dir / INDEX_MANIFEST).exists():
        if not overwrite:
            raise FileExistsError(f"{index_dir}: an index is already there; pass overwrite=True to rebuild")
        shutil.rmtree(index_dir)
    groups = _groups([s["file"] for s in manifest["shards"]], num_shards)
    started = time.perf_counter()
    jobs = [(str(embeddings_dir), files, str(index_dir / shard_dir_name(i)), manifest, factory, threads_per_shard)
            for i, files in enumerate(groups)]
    if in_process:
        metas = [build_index_shard(*job) for job in jobs]
    else:
        ensure_ray()
        remote = ray.remote(build_index_shard).options(num_cpus=threads_per_shard or 1, max_retries=2)
        metas = ray.get([remote.remote(*job) for job in jobs])
    documents = sum(m["documents"] for m in metas)
    if documents != manifest["documents"]:
        raise RuntimeError(f"index holds {documents} documents but the embeddings have {manifest['documents']}")
    index_manifest = {
        "format_version": INDEX_FORMAT_VERSION,
        "kind": "index",
        "type": manifest["mode"],
        "factory": factory,
        "documents": documents,
        "shards": [{"dir": shard_dir_name(i), **meta} for i, meta in enumerate(metas)],
        "embeddings": {"dir": str(embeddings_dir.resolve()), "model_fingerprint": manifest["settings"]["model_fingerprint"]},
        "query_encoder": {
            "model": manifest["settings"]["model"],
            "config_overrides": manifest["settings"]["config_overrides"],
            "precision": manifest["settings"]["precision"],
        },
        "model_config": manifest["model_config"],
        "build_seconds": round(time.perf_counter() - started, 3),
    }
    write_json(index_dir / INDEX_MANIFEST, index_manifest)
    print(f"[rayir.index] {documents} documents in {num_shards} {factory} shard(s) at {index_dir} "
          f"({index_manifest['build_seconds']}s)", file=sys.stderr, flush=True)
    return index_manifest
