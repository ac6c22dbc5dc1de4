"""One worker per index shard: loads the shard once, answers query batches with its top-k."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from ..index import load_shard
from ..index.hits import HitMatrix
from ..index.queries import QueryBatch


class IndexShardActor:
    def __init__(
        self,
        directory: str,
        options: dict[str, Any] | None = None,
        threads: int | None = None,
        files: dict[str, dict[str, Any]] | None = None,
        index_documents: int | None = None,
    ) -> None:
        """``files``: the shard's checksums, verified before it loads (``None``: not verified)."""
        if threads:
            import faiss
            import torch

            faiss.omp_set_num_threads(threads)
            torch.set_num_threads(threads)
        self.directory = directory
        # A bad file or option is kept and raised by every call: raised here, it would only say
        # "the actor died" and be restarted (and retried) as if its machine had failed.
        self.error: UserError | None = None
        try:
            self.shard = load_shard(Path(directory), files, index_documents, **(options or {}))
        except UserError as err:
            self.error = err

    def ready(self) -> int:
        """The shard's document count once it has loaded; its load error if it could not."""
        if self.error is not None:
            raise self.error
        return len(self.shard.ordinals)

    def search(self, queries: QueryBatch, k: int) -> HitMatrix:
        if self.error is not None:
            raise self.error
        return self.shard.search(queries, k)
