"""The coordinator: encode a query batch, fan it out to every shard worker, merge the top-k exactly.

Shard workers come from the :mod:`execution seam <rayir.execution>`: Ray actors, or the shards
themselves in this process (``in_process``). A shard actor that dies is restarted by Ray
(``max_restarts``); the coordinator re-sends the batch to it, and if the actor is gone for good it
starts a fresh one. Merging keeps the global order score-descending, doc-id-ascending (by
ordinal), so 1, 2 or N shards give the same run.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..data.samples import QuerySample
from ..data.trec import Run
from ..execution import executor
from ..index.hits import HitMatrix, merge_hits
from ..index.manifest import read_doc_table, read_index_manifest
from ..index.queries import QueryBatch
from ..integrity import verify_files
from ..options import ServingOptions
from .query_encoder import index_query_encoder
from .results import SearchResult
from .shard_actor import IndexShardActor

logger = logging.getLogger(__name__)

# How long a shard whose node stopped answering is waited for (Ray then restarts it elsewhere).
UNREACHABLE_WAIT_S = 120.0


class Searcher:
    """A long-lived search handle over a sharded index (one worker per shard).

    ``serving`` (:class:`~rayir.options.ServingOptions`) sets backend options, placement and
    retries. ``in_process=True`` loads the shards into this process instead of actors (small indexes,
    notebooks): the same search and merge without Ray.
    """

    def __init__(
        self,
        index_dir: str | Path,
        serving: ServingOptions | None = None,
        in_process: bool = False,
        shard_workers: list[Any] | None = None,
        **options: Any,
    ) -> None:
        """``options`` set single fields of ``serving`` (``Searcher(path, cpus_per_shard=1)``).

        ``shard_workers`` attaches to shard workers another handle started (``start_shard_workers``):
        the batch-search actors share one set of shards; ``close`` then leaves them running.
        """
        serving = replace(serving or ServingOptions(), **options)
        self.index_dir = Path(index_dir)
        self.manifest = read_index_manifest(index_dir)
        if serving.verify:  # the doc-id table and the query encoder's files; each shard checks its own
            verify_files(self.index_dir, self.manifest["files"])
        self.doc_table = read_doc_table(index_dir)
        self.encoder = index_query_encoder(index_dir, self.manifest, device=serving.device)
        self.max_retries = serving.max_retries
        self.restarts = 0
        self.executor = executor(in_process)
        self._actor_args, self._placement = _shard_worker_args(self.index_dir, self.manifest, serving)
        self._owns_actors = shard_workers is None
        if shard_workers is None:
            shard_workers = _started(self.executor, self._actor_args, self._placement)
        elif len(shard_workers) != len(self._actor_args):
            raise ValueError(f"{len(shard_workers)} shard workers for {len(self._actor_args)} shards")
        self.actors = list(shard_workers)

    def search_texts(self, texts: Sequence[str], k: int = 10) -> SearchResult:
        """Top-``k`` of each query text (exact over all shards); queries are numbered from ``"0"``."""
        return SearchResult(
            [str(i) for i in range(len(texts))], self.search_batch(self.encoder(list(texts)), k), self.doc_table
        )

    def search_batch(self, queries: QueryBatch, k: int = 10) -> HitMatrix:
        """Top-``k`` of already encoded queries: fan out to every shard, merge exactly."""
        return self._collect(self._submit(queries, k), k)

    def search_batches(self, batches: Iterable[QueryBatch], k: int = 10, in_flight: int = 4) -> Iterator[HitMatrix]:
        """Top-``k`` of each batch, in order, with up to ``in_flight`` batches out at the shards.

        Pipelining hides the per-batch round trip: shards search batch *i + 1* while the
        coordinator merges batch *i* (and, for ``search``, encodes batch *i + 2*).
        """
        pending: deque = deque()
        for queries in batches:
            pending.append(self._submit(queries, k))
            if len(pending) >= in_flight:
                yield self._collect(pending.popleft(), k)
        while pending:
            yield self._collect(pending.popleft(), k)

    def _submit(self, queries: QueryBatch, k: int) -> tuple[Any, list]:
        # One shard: the batch goes inline with the call; several: stored once, read by each.
        batch = self.executor.put(queries) if len(self.actors) > 1 else queries
        return batch, [(actor, self.executor.call(actor, "search", batch, k)) for actor in self.actors]

    def _collect(self, submitted: tuple[Any, list], k: int) -> HitMatrix:
        batch, calls = submitted
        return merge_hits([self._result(i, actor, future, batch, k) for i, (actor, future) in enumerate(calls)], k)

    def _result(self, shard: int, actor: Any, future: Any, batch: Any, k: int) -> HitMatrix:
        attempt, waited = 0, 0.0
        while True:
            try:
                return self.executor.result(future)
            except self.executor.retryable_errors as err:
                if _unreachable(err) and waited < UNREACHABLE_WAIT_S:
                    # Its node stopped answering: until Ray declares the node dead (and restarts
                    # the actor elsewhere) re-sending is all there is to do; this uses no retry.
                    logger.warning("shard %d unreachable (%.0fs so far); re-sending the batch", shard, waited)
                    time.sleep(1.0)
                    waited += 1.0
                    self.restarts += 1
                    future = self.executor.call(self.actors[shard], "search", batch, k)
                    continue
                if attempt == self.max_retries:
                    raise RuntimeError(
                        f"shard {shard} ({self._actor_args[shard][0]}) failed {attempt + 1} times"
                    ) from err
                self.restarts += 1
                logger.warning("shard %d failed (%s); retrying the batch", shard, type(err).__name__)
                if _gone_for_good(err) and actor is self.actors[shard]:
                    # Restarts exhausted or killed for good: start a fresh actor for this shard
                    # (once: later batches that were in flight to the dead actor just re-send).
                    [self.actors[shard]] = self.executor.actors(
                        IndexShardActor, [self._actor_args[shard]], **self._placement
                    )
                time.sleep(0.5 * attempt)
                attempt += 1
                actor = self.actors[shard]
                future = self.executor.call(actor, "search", batch, k)

    def search_result(
        self,
        queries: Sequence[QuerySample],
        k: int = 100,
        batch_size: int = 64,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> SearchResult:
        """The merged top-``k`` of every query; ``on_batch(done, total)`` after each batch."""
        if k < 1:
            raise ValueError(f"k={k}; expected k >= 1")
        query_ids = [q.query_id for q in queries]
        seen: set[str] = set()
        for query_id in query_ids:  # before any work is done
            if query_id in seen:
                raise ValueError(f"query id {query_id!r} appears twice")
            seen.add(query_id)
        started = time.perf_counter()
        chunks = [queries[start : start + batch_size] for start in range(0, len(queries), batch_size)]
        encoded = (self.encoder([q.text for q in chunk]) for chunk in chunks)
        parts, done = [], 0
        for chunk, hits in zip(chunks, self.search_batches(encoded, k)):
            parts.append(hits)
            done += len(chunk)
            if on_batch is not None:
                on_batch(done, len(queries))
            rate = done / max(time.perf_counter() - started, 1e-9)
            logger.info("%d/%d queries (%.1f q/s)", done, len(queries), rate)
        return SearchResult(query_ids, HitMatrix.stack(parts), self.doc_table)

    def search(
        self,
        queries: Sequence[QuerySample],
        k: int = 100,
        batch_size: int = 64,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> Run:
        """A run ``{query_id: {doc_id: score}}`` for all ``queries`` (see :meth:`search_result`)."""
        return self.search_result(queries, k, batch_size, on_batch).to_run()

    def close(self) -> None:
        if self._owns_actors:
            for actor in self.actors:
                self.executor.kill(actor)
        self.actors = []

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shard_worker_args(
    index_dir: Path, manifest: dict[str, Any], serving: ServingOptions
) -> tuple[list[tuple], dict[str, Any]]:
    """Constructor arguments of each shard's worker, and the placement they all get."""
    args = [
        (
            str(index_dir / s["dir"]),  # read_index_manifest checked it stays inside the index
            serving.shard_options or {},
            serving.threads_per_shard,
            s["files"] if serving.verify else None,
            manifest["documents"],
        )
        for s in manifest["shards"]
    ]
    placement = {
        "num_cpus": serving.cpus_per_shard,
        "resources": serving.shard_resources,
        "max_restarts": serving.max_retries,
    }
    return args, placement


def start_shard_workers(index_dir: str | Path, serving: ServingOptions, in_process: bool = False) -> list[Any]:
    """One worker per shard of the index (Ray actors, or the shards loaded here when ``in_process``)."""
    args, placement = _shard_worker_args(Path(index_dir), read_index_manifest(index_dir), serving)
    return _started(executor(in_process), args, placement)


def _started(run: Any, args: list[tuple], placement: dict[str, Any]) -> list[Any]:
    """Shard workers that have loaded (and verified) their shards: a corrupt file or a wrong option
    is raised here, once, before any query is sent."""
    workers = run.actors(IndexShardActor, args, **placement)
    try:
        for worker in workers:
            try:
                run.result(run.call(worker, "ready"))
            except run.retryable_errors:  # its process died: searching restarts or replaces it
                logger.warning("shard worker %s died while loading; it is restarted when searched", worker)
    except BaseException:
        for worker in workers:
            run.kill(worker)
        raise
    return workers


def _unreachable(err: BaseException) -> bool:
    from ray.exceptions import ActorUnavailableError

    return isinstance(err, ActorUnavailableError)


def _gone_for_good(err: BaseException) -> bool:
    from ray.exceptions import ActorDiedError

    return isinstance(err, ActorDiedError) and not getattr(err, "preempted", False)
