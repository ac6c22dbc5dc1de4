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

    def _flat(self) -> tuple[list[str], list[float], np.ndarray]:
        """Every hit's doc id and score, row after row, in one Arrow lookup, and the row bounds."""
        valid = self.hits.valid()
        ids = self.doc_table.take(pa.array(self.hits.ordinals[valid])).to_pylist()
        bounds = np.concatenate([[0], np.cumsum(self.hits.counts)])
        return ids, self.hits.scores[valid].tolist(), bounds

    @property
    def doc_ids(self) -> list[list[str]]:
        ids, _, bounds = self._flat()
        return [ids[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    @property
    def scores(self) -> list[np.ndarray]:
        return [self.hits.scores[row, : int(self.hits.counts[row])] for row in range(len(self))]

    def to_run(self) -> Run:
        """``{query_id: {doc_id: score}}`` in rank order (for evaluation and the Python API)."""
        ids, scores, bounds = self._flat()
        return {q: dict(zip(ids[a:b], scores[a:b])) for q, a, b in zip(self.query_ids, bounds[:-1], bounds[1:])}

    def write_trec(self, path: str | Path, tag: str = "rayir") -> Path:
        """A TREC run file, queries in id order, each ranked as searched; written atomically."""
        check_tag(tag)
        path = Path(path)
        ids, scores, bounds = self._flat()
        order = sorted(range(len(self.query_ids)), key=self.query_ids.__getitem__)
        with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
            for row in order:
                query_id, start, end = self.query_ids[row], bounds[row], bounds[row + 1]
                handle.writelines(
                    f"{query_id} Q0 {doc_id} {rank} {score:.8g} {tag}\n"
                    for rank, (doc_id, score) in enumerate(zip(ids[start:end], scores[start:end]), start=1)
                )
        return path
