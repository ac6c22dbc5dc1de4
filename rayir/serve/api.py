"""The Python API for search and re-ranking (the jobs call the same code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.readers import read_queries
from ..data.samples import QuerySample
from ..data.trec import Run
from .coordinator import Searcher
from .rerank import rerank

__all__ = ["Searcher", "rerank", "search"]


def search(
    index_dir: str | Path,
    queries: str | Path | list[QuerySample] | list[str],
    k: int = 100,
    split: str | None = None,
    batch_size: int = 64,
    **searcher_options: Any,
) -> Run:
    """A run for ``queries`` (a source, samples, or plain texts numbered from ``"0"``)."""
    if isinstance(queries, (str, Path)):
        samples = list(read_queries(queries, split=split))
    else:
        samples = [q if isinstance(q, QuerySample) else QuerySample(str(i), q) for i, q in enumerate(queries)]
    with Searcher(index_dir, **searcher_options) as searcher:
        return searcher.search(samples, k=k, batch_size=batch_size)
