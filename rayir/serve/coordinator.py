"""The coordinator: encode a query batch, fan it out to every shard actor, merge the top-k exactly.

A shard actor that dies is restarted by Ray (``max_restarts``); the coordinator re-sends the
batch to it, and if the actor is gone for good it starts a fresh one. Merging keeps the global
order score-descending, doc-id-ascending, so 1, 2 or N shards give the same run.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..data.samples import QuerySample
from ..index.base import HitMatrix, Hits, QueryBatch, merge_hit_matrices
from ..index.build import INDEX_MANIFEST
from ..ray_runtime import ensure_ray
from .query_encoder import QueryEncoder
from .shard_actor import IndexShardActor


def read_index_manifest(index_dir: str | Path) -> dict[str, Any]:
    path = Path(index_dir) / INDEX_MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{index_dir}: no {INDEX_MANIFEST}; build the index first (jobs/index.py)")
    return json.loads(path.read_text())


class Searcher:
    """A long-lived search handle over a sharded index (one actor per shard).

    ``shard_options`` go to every shard backend (``nprobe``, ``ef_search``,
    ``candidates_per_token``). ``cpus_per_shard`` reserves CPUs per actor (0: no reservation, so
    any number of shards fits a small machine). ``shard_resources`` (e.g. ``{"index_shard": 1}``)
    places shard actors on nodes that advertise that custom resource (memory-heavy index nodes).
    ``in_process=True`` loads the shards into this process instead of actors (small indexes,
    notebooks): the same search and merge without Ray.
    """

    def __init__(
        self,
        index_dir: str | Path,
        shard_options: dict[str, Any] | None = None,
        device: str = "cpu",
        cpus_per_shard: float = 0,
        threads_per_shard: int | None = None,
        max_retries: int = 3,
        shard_resources: dict[str, float] | None = None,
        in_process: bool = False,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.manifest = read_index_manifest(index_dir)
        self.encoder = QueryEncoder(self.manifest, device=device)
        self.max_retries = max_retries
        self._actor_args = [
            (str(self.index_dir / s["dir"]), shard_options or {}, threads_per_shard) for s in self.manifest["shards"]
        ]
        self.restarts = 0
        self.in_process_shards: list[IndexShardActor] = []
        self.actors: list = []
        if in_process:
            if cpus_per_shard or shard_resources:
                raise ValueError("cpus_per_shard and shard_resources place shard actors; in_process has none")
            self.in_process_shards = [IndexShardActor(*args) for args in self._actor_args]
            return
        import ray

        ensure_ray()
        self._actor_cls = ray.remote(IndexShardActor).options(
            num_cpus=cpus_per_shard, resources=shard_resources or {}, max_restarts=max_retries)
        self.actors = [self._actor_cls.remote(*args) for args in self._actor_args]

    def search_texts(self, texts: Sequence[str], k: int = 10) -> Hits:
        """Top-``k`` of each query text (exact over all shards)."""
        return self.search_batch(self.encoder(list(texts)), k)

    def search_batch(self, queries: QueryBatch, k: int = 10) -> Hits:
        """Top-``k`` of already encoded queries: fan out to every shard, merge exactly."""
        return self._collect(self._submit(queries, k), k)

    def search_batches(self, batches: Iterable[QueryBatch], k: int = 10, in_flight: int = 4) -> Iterator[Hits]:
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
        if self.in_process_shards:  # answered already: the shards' hits themselves
            return None, [shard.search(queries, k) for shard in self.in_process_shards]
        import ray

        # One shard: the batch goes inline with the call; several: stored once, read by each.
        batch = ray.put(queries) if len(self.actors) > 1 else queries
        return batch, [(actor, actor.search.remote(batch, k)) for actor in self.actors]

    def _collect(self, submitted: tuple[Any, list], k: int) -> Hits:
        batch, calls = submitted
        if self.in_process_shards:
            parts = calls
        else:
            parts = [self._result(i, actor, future, batch, k) for i, (actor, future) in enumerate(calls)]
        return merge_hit_matrices(parts, k).to_hits()

    def _result(self, shard: int, actor, future, batch, k: int) -> HitMatrix:
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        for attempt in range(self.max_retries + 1):
            try:
                return ray.get(future)
            except (RayActorError, ActorDiedError, ActorUnavailableError) as err:
                if attempt == self.max_retries:
                    raise RuntimeError(f"shard {shard} ({self._actor_args[shard][0]}) failed {attempt + 1} times") from err
                self.restarts += 1
                print(f"[rayir.search] shard {shard} failed ({type(err).__name__}); retrying the batch",
                      file=sys.stderr, flush=True)
                if isinstance(err, ActorDiedError) and not getattr(err, "preempted", False) and actor is self.actors[shard]:
                    # Restarts exhausted or killed for good: start a fresh actor for this shard
                    # (once: later batches that were in flight to the dead actor just re-send).
                    self.actors[shard] = self._actor_cls.remote(*self._actor_args[shard])
                time.sleep(0.5 * attempt)
                actor = self.actors[shard]
                future = actor.search.remote(batch, k)
        raise AssertionError("unreachable")

    def search(
        self,
        queries: Sequence[QuerySample],
        k: int = 100,
        batch_size: int = 64,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> dict[str, dict[str, float]]:
        """A run ``{query_id: {doc_id: score}}`` for all ``queries``; ``on_batch(done, total)`` after each batch."""
        run: dict[str, dict[str, float]] = {}
        started = time.perf_counter()
        chunks = [queries[start : start + batch_size] for start in range(0, len(queries), batch_size)]
        encoded = (self.encoder([q.text for q in chunk]) for chunk in chunks)
        done = 0
        for chunk, hits in zip(chunks, self.search_batches(encoded, k)):
            for query, ids, scores in zip(chunk, hits.doc_ids, hits.scores):
                if query.query_id in run:
                    raise ValueError(f"query id {query.query_id!r} appears twice")
                run[query.query_id] = dict(zip(ids, map(float, scores)))
            done += len(chunk)
            if on_batch is not None:
                on_batch(done, len(queries))
            rate = done / max(time.perf_counter() - started, 1e-9)
            print(f"[rayir.search] {done}/{len(queries)} queries ({rate:.1f} q/s)", file=sys.stderr, flush=True)
        return run

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        self.in_process_shards = []

    def __enter__(self) -> "Searcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
