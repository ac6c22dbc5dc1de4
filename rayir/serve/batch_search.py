"""Batch search off the driver: a query set of any size in, one TREC run file out, in bounded memory.

The pipeline (hard-negative mining over hundreds of thousands of training queries is the common case)::

    queries ──stage──▶ chunk-*.parquet ──Ray Data──▶ query-searcher actors ──▶ part-*.run ──▶ run file
                       (fixed numbering)             encode a batch, fan out
                                                     to the shared shard actors,
                                                     merge, write the chunk's lines

The driver streams the queries into numbered chunks once (8 bytes per id for the duplicate check),
starts one worker per index shard, and then only counts finished chunks. Query-searcher actors
(``num_query_encoders``, GPU-capable through ``serving.device``) load the same query encoder the
interactive :class:`~rayir.serve.coordinator.Searcher` uses and attach to the shared shard actors,
so both give the same rankings. Each chunk's lines are written atomically under a name fixed by
the chunk index: a re-run after a crash searches only the missing chunks. The run file is the
parts concatenated in chunk order (queries in input order), written atomically; the working
directory beside it is removed after success.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..atomic import atomic_path, write_with
from ..data.fingerprint import source_fingerprint
from ..data.readers import read_queries
from ..data.trec import check_tag
from ..encode.staging import QUERY_SCHEMA, Chunk, stage_records
from ..execution import Pool, executor
from ..index.manifest import read_index_manifest
from ..locks import output_lock
from ..logs import report_truncation
from ..options import ServingOptions
from ..progress import Progress, Tally, tally

logger = logging.getLogger(__name__)


@dataclass
class BatchSearchResult:
    run_file: Path
    queries: int
    chunks: int
    searched_chunks: int  # chunks searched by this call (the rest were already done)
    shard_retries: int
    seconds: float
    without_hits: int = 0  # queries that matched no document: counted in ``queries``, absent from the run
    truncated: int = 0  # queries cut at the model's query_max_length


def part_name(index: int) -> str:
    return f"part-{index:05d}.run"


def stats_name(index: int) -> str:
    """Beside each run part: the ids of the chunk's queries that matched nothing (they have no line)
    and how many of its queries were cut at the model's ``query_max_length``."""
    return f"part-{index:05d}.stats.json"


class QueryChunkSearcher:
    """One Ray Data actor: searches whole staged query chunks and writes each chunk's run part."""

    def __init__(
        self,
        index_dir: str,
        shard_workers: list[Any],
        serving: ServingOptions,
        staging_dir: str,
        parts_dir: str,
        k: int,
        batch_size: int,
        tag: str,
        in_process: bool,
        progress: Tally | None = None,
    ) -> None:
        from .coordinator import Searcher

        self.progress = progress

        self.searcher = Searcher(index_dir, serving, in_process=in_process, shard_workers=shard_workers)
        self.staging_dir, self.parts_dir = Path(staging_dir), Path(parts_dir)
        self.k, self.batch_size, self.tag = k, batch_size, tag

    def search_chunk(self, index: int, chunk: str) -> int:
        from .results import SearchResult

        table = pq.read_table(self.staging_dir / chunk)
        ids, texts = table.column("query_id").to_pylist(), table.column("text").to_pylist()
        starts = range(0, len(ids), self.batch_size)
        encoded = (self.searcher.encoder(texts[start : start + self.batch_size]) for start in starts)
        written, without_hits = 0, []
        truncated_before = getattr(self.searcher.encoder, "truncated", 0)  # lexical encoders cut nothing

        def write(tmp: Path) -> None:
            nonlocal written
            with tmp.open("w", encoding="utf-8") as handle:
                for start, hits in zip(starts, self.searcher.search_batches(encoded, self.k)):
                    batch_ids = ids[start : start + self.batch_size]
                    handle.writelines(SearchResult(batch_ids, hits, self.searcher.doc_table).trec_lines(self.tag))
                    without_hits.extend(batch_ids[row] for row in np.flatnonzero(hits.counts == 0))
                    written += len(batch_ids)
                    if self.progress is not None:
                        self.progress.add(len(batch_ids))

        # The part, then its statistics: a chunk is done once they exist.
        write_with(self.parts_dir / part_name(index), write)
        stats = {
            "without_hits": without_hits,
            "truncated": getattr(self.searcher.encoder, "truncated", 0) - truncated_before,
        }
        write_with(self.parts_dir / stats_name(index), lambda tmp: tmp.write_text(json.dumps(stats)))
        return written

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        restarts_before = self.searcher.restarts
        rows = [self.search_chunk(int(i), str(c)) for i, c in zip(batch["index"], batch["chunk"])]
        return {
            "index": np.asarray(batch["index"]),
            "queries": np.asarray(rows, dtype=np.int64),
            "retries": np.full(len(rows), self.searcher.restarts - restarts_before),
        }


def search_to_file(
    index_dir: str | Path,
    queries: str | Path,
    output: str | Path,
    k: int = 100,
    split: str | None = None,
    batch_size: int = 64,
    serving: ServingOptions | None = None,
    num_query_encoders: int = 1,
    queries_per_chunk: int = 8192,
    tag: str = "rayir",
    in_process: bool = False,
    **options: Any,
) -> BatchSearchResult:
    """Search every query of ``queries`` (a source, as for ``read_queries``) and write ``output``.

    ``serving`` (plus single fields in ``options``) places the shard actors as for ``Searcher``;
    ``num_query_encoders`` query-searcher actors share them. The run lists queries in input order,
    each ranked as ``Searcher`` ranks it.
    """
    if k < 1 or batch_size < 1 or num_query_encoders < 1:
        raise ValueError(f"k={k}, batch_size={batch_size}, num_query_encoders={num_query_encoders}: all must be >= 1")
    if in_process and num_query_encoders != 1:
        raise ValueError(f"in_process runs one query searcher; num_query_encoders={num_query_encoders} does not apply")
    check_tag(tag)
    serving = replace(serving or ServingOptions(), **options)
    with output_lock(Path(output)):
        started = time.perf_counter()
        output = Path(output)
        manifest = read_index_manifest(index_dir)  # a missing or foreign index fails before any staging
        work = output.with_name(f".{output.name}.search-work")
        settings = {
            "queries": str(queries),
            "queries_fingerprint": source_fingerprint(queries, _beir_query_files(split)),
            "split": split,
            "index_documents": manifest["documents"],
            "index_fingerprint": manifest["query_encoder"]["model_fingerprint"],
            "queries_per_chunk": queries_per_chunk,
            "k": k,
            "tag": tag,
        }
        # Repeated ids are found by the staging's 8-byte hashes, not a set of every id in the driver.
        records = ((q.query_id, q.text) for q in read_queries(queries, split=split, check_duplicates=False))
        chunks = stage_records(records, queries, work / "queries", queries_per_chunk, settings, QUERY_SCHEMA, "query")
        parts = work / "parts"
        parts.mkdir(parents=True, exist_ok=True)
        pending = [c for c in chunks if not (parts / stats_name(c.index)).exists()]  # written last, atomically
        total = sum(c.rows for c in chunks)
        logger.info("%d queries in %d chunks; %d chunks to search", total, len(chunks), len(pending))

        from .coordinator import start_shard_workers

        run = executor(in_process)
        shard_workers = start_shard_workers(index_dir, serving, in_process=in_process)
        retries = 0
        try:
            if pending:
                constructor = dict(
                    index_dir=str(index_dir),
                    shard_workers=shard_workers,
                    serving=serving,
                    staging_dir=str(work / "queries"),
                    parts_dir=str(parts),
                    k=k,
                    batch_size=batch_size,
                    tag=tag,
                    in_process=in_process,
                    progress=tally(in_process),
                )
                gpu = serving.device.startswith("cuda")
                pool = Pool(size=min(num_query_encoders, len(pending)), num_cpus=0 if gpu else 1, num_gpus=int(gpu))
                with Progress("search", sum(c.rows for c in pending), "queries", constructor["progress"]):
                    retries = _search_chunks(run, pending, constructor, pool)
        finally:
            for worker in shard_workers:
                run.kill(worker)
        incomplete = [c.index for c in chunks if not (parts / stats_name(c.index)).exists()]
        if incomplete:
            raise RuntimeError(
                f"run parts of chunks {incomplete[:10]} are incomplete; run the same call again to resume"
            )
        with atomic_path(output) as tmp, tmp.open("wb") as handle:
            for chunk in chunks:
                with (parts / part_name(chunk.index)).open("rb") as part:
                    shutil.copyfileobj(part, handle, 1 << 20)
        without_hits, examples, truncated = 0, [], 0
        for chunk in chunks:
            stats = json.loads((parts / stats_name(chunk.index)).read_text())
            without_hits += len(stats["without_hits"])
            examples += stats["without_hits"][: 10 - len(examples)]
            truncated += stats["truncated"]
        shutil.rmtree(work, ignore_errors=True)
        seconds = time.perf_counter() - started
        logger.info("done: %d queries, %s (%.1fs, %.1f q/s)", total, output, seconds, total / max(seconds, 1e-9))
        if without_hits:
            logger.warning(
                "%d of %d queries matched no document and have no line in the run, e.g. %s",
                without_hits,
                total,
                examples,
            )
        limit = manifest["model_config"].get("query_max_length")
        report_truncation(logger, truncated, total, "queries", f"query_max_length={limit} tokens")
        return BatchSearchResult(output, total, len(chunks), len(pending), retries, seconds, without_hits, truncated)


def _beir_query_files(split: str | None) -> tuple[str, ...]:
    """The files of a BEIR directory that the queries are read from."""
    return ("queries.jsonl", f"qrels/{split}.tsv") if split else ("queries.jsonl",)


def _search_chunks(run: Any, pending: list[Chunk], constructor: dict[str, Any], pool: Pool) -> int:
    """Search the pending chunks on the query-searcher pool; check each chunk's count; log progress."""
    items = run.from_items([{"index": c.index, "chunk": c.path} for c in pending])
    rows_by_index = {c.index: c.rows for c in pending}
    done, retries, started = 0, 0, time.perf_counter()
    for row in run.iter_rows(run.map_batches(items, QueryChunkSearcher, constructor, pool, batch_size=1)):
        index, queries = int(row["index"]), int(row["queries"])
        if queries != rows_by_index[index]:
            raise RuntimeError(f"query chunk {index}: searched {queries} of {rows_by_index[index]} queries")
        done += queries
        retries += int(row["retries"])
        rate = done / max(time.perf_counter() - started, 1e-9)
        logger.debug("chunk %d done (%d queries, %.1f q/s)", index, done, rate)
    return retries
