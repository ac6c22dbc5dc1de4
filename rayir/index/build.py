"""Build a sharded index from an embeddings directory: one task per index shard.

Index directory::

    manifest.json       written last (see manifest.py): type, settings, shards, query encoder
    doc_ids.parquet     every doc id, sorted: a document's row is its ordinal (see hits.py)
    <files>/            what the query encoder needs besides the model (e.g. collection
                        statistics), copied from the embeddings directory: the index is
                        self-contained and can be moved or copied on its own
    shard-0000/ ...     one backend directory per shard (see dense.py, sparse.py, multivector.py)

The embeddings' rows are split into ``num_shards`` contiguous ranges of near-equal size, so every
document lands in exactly one index shard.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..encode.formats import coil_arrays, dense_matrix, sparse_rows, token_matrix
from ..encode.manifest import read_manifest
from ..errors import ConfigError, IntegrityError
from ..execution import executor
from ..integrity import checksum_files, file_checksum, inside
from ..locks import output_lock
from .manifest import DOC_TABLE, INDEX_MANIFEST, write_index_manifest
from .ordinals import ordinals_of, write_doc_table

logger = logging.getLogger(__name__)


def shard_dir_name(index: int) -> str:
    return f"shard-{index:04d}"


def _groups(files: list[dict[str, Any]], num_shards: int) -> list[list[dict[str, Any]]]:
    """Split the embeddings into ``num_shards`` contiguous row ranges of near-equal size: each group
    lists the embedding files it takes rows from, with the ``start``/``stop`` rows it takes. Any
    ``num_shards`` up to the number of documents works, whatever ``docs_per_shard`` staging used."""
    total = sum(entry["rows"] for entry in files)
    if num_shards < 1:
        raise ConfigError("num_shards must be >= 1")
    if num_shards > total:
        raise ConfigError(f"num_shards={num_shards} but the embeddings hold only {total} documents")
    bounds = np.linspace(0, total, num_shards + 1).round().astype(int)
    groups: list[list[dict[str, Any]]] = [[] for _ in range(num_shards)]
    first_row = 0
    for entry in files:
        last_row = first_row + entry["rows"]
        for shard in range(num_shards):
            start, stop = max(first_row, bounds[shard]), min(last_row, bounds[shard + 1])
            if start < stop:
                groups[shard].append({**entry, "start": int(start - first_row), "stop": int(stop - first_row)})
        first_row = last_row
    return groups


def build_index_shard(
    embeddings_dir: str,
    files: list[dict[str, Any]],
    index_dir: str,
    target: str,
    manifest: dict[str, Any],
    factory: str,
    threads: int | None,
) -> dict[str, Any]:
    """Build one index shard from row ranges of embedding Parquet files (their manifest entries, whose
    checksums :func:`.ordinals.write_doc_table` verified; row counts are checked here). Runs as a
    task; returns the shard's ``meta.json`` plus the checksums of its files. Only the backend in
    use is imported: a sparse index needs neither torch nor Faiss."""
    table = pa.concat_tables([_rows_of(Path(embeddings_dir), entry) for entry in files])
    ids = table.column("doc_id").combine_chunks()
    ordinals = ordinals_of(ids, index_dir)
    doc_ids = ids.to_pylist()
    directory = Path(target)
    if directory.exists():
        shutil.rmtree(directory)  # a half-built shard from an earlier attempt
    return {
        **_build_backend(table, doc_ids, ordinals, directory, manifest, factory, threads),
        "files": checksum_files(directory),
    }


def _rows_of(embeddings_dir: Path, entry: dict[str, Any]) -> pa.Table:
    """Rows ``start:stop`` of one embedding file, whose row count is checked against the manifest."""
    path = embeddings_dir / entry["file"]
    table = pq.read_table(path)
    if table.num_rows != entry["rows"]:
        raise IntegrityError(f"{path}: {table.num_rows} rows, the embeddings manifest says {entry['rows']}")
    return table.slice(entry["start"], entry["stop"] - entry["start"])


def _build_backend(
    table: pa.Table,
    doc_ids: list[str],
    ordinals: np.ndarray,
    directory: Path,
    manifest: dict[str, Any],
    factory: str,
    threads: int | None,
) -> dict[str, Any]:
    config = manifest["model_config"]
    cosine = config.get("similarity") == "cosine"
    mode = manifest["mode"]
    if mode == "dense":
        from .dense import build_dense_shard

        return build_dense_shard(dense_matrix(table), doc_ids, ordinals, directory, factory, cosine, threads=threads)
    if mode == "sparse" and factory.startswith("pruned"):
        from .pruned import CUTOFFS_DIR, build_pruned_shard

        rows = (*sparse_rows(table), doc_ids, ordinals, directory, manifest["dim"])
        return build_pruned_shard(*rows, factory, directory.parent / CUTOFFS_DIR, threads)
    if mode == "sparse":
        from .sparse import build_sparse_shard

        indptr, terms, weights = sparse_rows(table)
        return build_sparse_shard(indptr, terms, weights, doc_ids, ordinals, directory, manifest["dim"])
    if mode == "coil":
        from .coil import build_coil_shard

        return build_coil_shard(*coil_arrays(table), doc_ids, ordinals, directory)
    tokens, counts = token_matrix(table)
    shard = (tokens, counts, doc_ids, ordinals, directory, factory, cosine, config.get("query_aggregation", "sum"))
    if factory.startswith("compressed"):
        from .compressed import CODEC_DIR, build_compressed_shard

        return build_compressed_shard(*shard, directory.parent / CODEC_DIR)
    from .multivector import build_multivector_shard

    return build_multivector_shard(*shard, threads=threads)


def _train_codec(
    run: Any, embeddings_dir: Path, index_dir: Path, manifest: dict[str, Any], factory: str, threads: int | None
) -> dict[str, Any]:
    """The compressed multi-vector index's one codec, trained in one task on a sample of every
    embedding file (:func:`.residual_codec.train_codec`) before any shard is built."""
    from .compressed import CODEC_DIR
    from .residual_codec import CodecSettings, train_codec

    cosine = manifest["model_config"].get("similarity") == "cosine"
    job = (
        str(embeddings_dir),
        manifest["shards"],
        str(index_dir / CODEC_DIR),
        CodecSettings.parse(factory),
        cosine,
        threads,
    )
    [codec] = run.map_tasks(train_codec, [job], num_cpus=threads or 1)
    return codec


def _term_cutoffs(run: Any, embeddings_dir: Path, index_dir: Path, manifest: dict[str, Any], factory: str) -> dict:
    """The pruned sparse index's per-term cut-offs, computed in one task over every embedding file
    (:func:`.pruned.term_cutoffs`) before any shard is built."""
    from .pruned import CUTOFFS_DIR, term_cutoffs

    job = (str(embeddings_dir), manifest["shards"], str(index_dir / CUTOFFS_DIR), factory, manifest["dim"])
    [pruning] = run.map_tasks(term_cutoffs, [job])
    return pruning


def _index_level_checksums(index_dir: Path, query_files: str | None) -> dict[str, Any]:
    """Checksums of the files outside the shards: the doc-id table and the query encoder's files."""
    files = {DOC_TABLE: file_checksum(index_dir / DOC_TABLE)}
    if query_files is not None:
        files.update({f"{query_files}/{k}": v for k, v in checksum_files(index_dir / query_files).items()})
    return files


def build_index(
    embeddings_dir: str | Path,
    index_dir: str | Path,
    num_shards: int = 1,
    factory: str = "Flat",
    threads_per_shard: int | None = None,
    overwrite: bool = False,
    in_process: bool = False,
) -> dict[str, Any]:
    """Build ``num_shards`` index shards in parallel tasks and write the index manifest.

    ``factory`` is a Faiss index factory string for dense and multi-vector embeddings (``Flat``,
    ``IVF1024,Flat``, ``HNSW32``, ``IVF1024,PQ32``...), or for multi-vector embeddings
    ``compressed[,bits=2,centroids=N,…]`` (:mod:`.compressed`, PLAID-style). Sparse embeddings get
    the exact inverted index with ``factory="inverted"`` or the approximate ``pruned[,postings=N]``
    (:mod:`.pruned`); COIL embeddings take ``inverted`` (exact per-term lists of token vectors).
    ``in_process=True`` builds the shards one after another in this process, without Ray (small
    indexes).
    """
    embeddings_dir, index_dir = Path(embeddings_dir), Path(index_dir)
    manifest = read_manifest(embeddings_dir)
    pruned = manifest["mode"] == "sparse" and factory.startswith("pruned")
    inverted = manifest["mode"] in ("sparse", "coil") and not pruned
    if inverted and factory not in ("inverted", "Flat"):
        mode = manifest["mode"]
        choices = "inverted (or the default Flat)" + (" or pruned[,postings=N]" if mode == "sparse" else "")
        raise ConfigError(
            f"factory={factory!r} does not apply to a {mode} model: it takes {choices}; the encoding in "
            f"{embeddings_dir} is complete and is reused when you run again with another factory"
        )
    compressed = manifest["mode"] == "multi_vector" and factory.startswith("compressed")
    if pruned:
        from .pruned import PruningSettings

        PruningSettings.parse(factory)  # refuse a bad setting before any task starts
    elif inverted:
        factory = "inverted"
    elif compressed:
        from .residual_codec import CodecSettings

        CodecSettings.parse(factory)  # refuse a bad setting before any task starts
    else:
        from .faiss_utils import check_factory

        check_factory(factory, manifest["dim"])
    with output_lock(index_dir):
        if (index_dir / INDEX_MANIFEST).exists():
            if not overwrite:
                raise FileExistsError(f"{index_dir}: an index is already there; pass overwrite=True to rebuild")
            shutil.rmtree(index_dir)
        index_dir.mkdir(parents=True, exist_ok=True)
        groups = _groups(manifest["shards"], num_shards)
        started = time.perf_counter()
        run = executor(in_process)
        [documents] = run.map_tasks(write_doc_table, [(str(embeddings_dir), manifest["shards"], str(index_dir))])
        codec = (
            _train_codec(run, embeddings_dir, index_dir, manifest, factory, threads_per_shard) if compressed else None
        )
        pruning = _term_cutoffs(run, embeddings_dir, index_dir, manifest, factory) if pruned else None
        jobs = [
            (
                str(embeddings_dir),
                group,
                str(index_dir),
                str(index_dir / shard_dir_name(i)),
                manifest,
                factory,
                threads_per_shard,
            )
            for i, group in enumerate(groups)
        ]
        metas = run.map_tasks(build_index_shard, jobs, num_cpus=threads_per_shard or 1)
        if compressed:
            from .compressed import CODEC_DIR

            shutil.rmtree(index_dir / CODEC_DIR)  # every shard holds its copy
        if pruned:
            from .pruned import CUTOFFS_DIR

            shutil.rmtree(index_dir / CUTOFFS_DIR)  # every shard holds its copy
        built = sum(m["documents"] for m in metas)
        if not documents == built == manifest["documents"]:
            raise RuntimeError(
                f"index holds {built} documents ({documents} ids) but the embeddings have {manifest['documents']}"
            )
        query_files = manifest.get("model_dir")
        if query_files is not None:  # e.g. BM25's collection statistics: the index carries its own copy
            shutil.copytree(inside(embeddings_dir, query_files, "model files"), index_dir / query_files)
        settings = manifest["settings"]
        index_manifest = {
            "type": manifest["mode"],
            "factory": factory,
            "documents": built,
            "shards": [{"dir": shard_dir_name(i), **meta} for i, meta in enumerate(metas)],
            "files": _index_level_checksums(index_dir, query_files),
            # Relative: the output directory can be copied or mounted elsewhere and still point home.
            "embeddings": {
                "dir": os.path.relpath(embeddings_dir.resolve(), index_dir.resolve()),
                "model_fingerprint": settings["model_fingerprint"],
            },
            "query_encoder": {
                "model": settings["model"],
                "config_overrides": settings["config_overrides"],
                "precision": settings["precision"],
                "model_fingerprint": settings["model_fingerprint"],
                "files": query_files,
            },
            "model_config": manifest["model_config"],
            **({"codec": codec} if codec else {}),
            **({"pruning": pruning} if pruning else {}),
            "build_seconds": round(time.perf_counter() - started, 3),
        }
        write_index_manifest(index_dir, index_manifest)
        logger.info(
            "%d documents in %d %s shard(s) at %s (%ss)",
            built,
            num_shards,
            factory,
            index_dir,
            index_manifest["build_seconds"],
        )
        return index_manifest
