"""Search results as matrices: the merged top-k of every query, written straight to a run file.

The coordinator keeps each batch's merged :class:`~rayir.index.hits.HitMatrix` (scores and
ordinals, already ranked score-descending, doc-id-ascending). A run file is written from them by
looking the ordinals up in the index's doc-id table: no per-query dicts and no re-sorting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..atomic import atomic_path
from ..data.trec import Run, check_tag
from ..index.hits import HitMatrix


@dataclass
class SearchResult:
    """``hits`` row ``i`` holds the ranking of ``query_ids[i]``; ``doc_table[ordinal]`` is a doc id."""

    query_ids: list[str]
    hits: HitMatrix
    doc_table: pa.StringArray

    def __len__(self) -> int:
        return len(self.query_ids)

    def row_ids(self, row: int) -> list[str]:
        count = int(self.hits.counts[row])
        return self.doc_table.take(pa.array(self.hits.ordinals[row, :count])).to_pylist()

    @property
    def doc_ids(self) -> list[list[str]]:
        return [self.row_ids(row) for row in range(len(self))]

    @property
    def scores(self) -> list[np.ndarray]:
        return [self.hits.scores[row, : int(self.hits.counts[row])] for row in range(len(self))]

    def to_run(self) -> Run:
        """``{query_id: {doc_id: score}}`` in rank order (for evaluation and the Python API)."""
        return {
            query_id: dict(zip(self.row_ids(row), map(float, self.hits.scores[row, : self.hits.counts[row]])))
            for row, query_id in enumerate(self.query_ids)
        }

    def write_trec(self, path: str | Path, tag: str = "rayir") -> Path:
        """A TREC run file, queries in id order, each ranked as searched; written atomically."""
        check_tag(tag)
        path = Path(path)
        order = sorted(range(len(self.query_ids)), key=self.query_ids.__getitem__)
        with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
            for row in order:
                query_id = self.query_ids[row]
                scores = self.hits.scores[row, : self.hits.counts[row]].tolist()
                handle.writelines(
                    f"{query_id} Q0 {doc_id} {rank} {score:.8g} {tag}\n"
                    for rank, (doc_id, score) in enumerate(zip(self.row_ids(row), scores), start=1)
                )
        return path
