"""One worker per index shard: loads the shard once, answers query batches with its top-k."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..index import load_shard
from ..index.hits import HitMatrix
from ..index.queries import QueryBatch


class IndexShardActor:
    def __init__(self, directory: str, options: dict[str, Any] | None = None, threads: int | None = None) -> None:
        if threads:
            import faiss
            import torch

            faiss.omp_set_num_threads(threads)
            torch.set_num_threads(threads)
        self.directory = directory
        self.shard = load_shard(Path(directory), **(options or {}))

    def search(self, queries: QueryBatch, k: int) -> HitMatrix:
        return self.shard.search(queries, k)
