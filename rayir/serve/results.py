"""Search results as matrices: the merged top-k of every query, written straight to a run file.

The coordinator keeps each batch's merged :class:`~rayir.index.hits.HitMatrix` (scores and
ordinals, already ranked score-descending, doc-id-ascending). A run file is written from them by
looking the ordinals up in the index's doc-id table: no per-query dicts and no re-sorting.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ..atomic import atomic_path
from ..data.trec import Run, check_tag
from ..index.hits import HitMatrix

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Hit:
    """One ranked document of one query, as a person reads it (``text`` when the corpus is given)."""

    query_id: str
    doc_id: str
    score: float
    rank: int
    text: str | None = None

    def __str__(self) -> str:
        shown = f"{self.rank:>3}. {self.doc_id}  {self.score:.4f}"
        return shown if self.text is None else f"{shown}  {_abridged(self.text)}"


def _abridged(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


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

    def readable(self, corpus: str | Path | Mapping[str, str] | None = None) -> list[list[Hit]]:
        """Each query's hits (doc id, score, rank from 1), with their texts when ``corpus`` (a source
        or a mapping of doc id to text) is given; ``print(*hits, sep="\n")`` shows a ranking."""
        ids, scores, bounds = self._flat()
        texts: Mapping[str, str] = {}
        if isinstance(corpus, Mapping):
            texts = corpus
        elif corpus is not None:
            from ..data.readers import read_docs

            wanted = set(ids)
            texts = {d.doc_id: d.text for d in read_docs(corpus) if d.doc_id in wanted}
        return [
            [
                Hit(query_id, ids[i], scores[i], i - start + 1, texts.get(ids[i]) if texts else None)
                for i in range(start, end)
            ]
            for query_id, start, end in zip(self.query_ids, bounds[:-1], bounds[1:])
        ]

    def to_frame(self) -> pd.DataFrame:
        """``qid, docno, score, rank`` (rank from 0, PyTerrier's convention), queries in row order."""
        import pandas as pd

        ids, scores, bounds = self._flat()
        counts = np.diff(bounds)
        return pd.DataFrame(
            {
                "qid": np.repeat(np.asarray(self.query_ids, dtype=object), counts),
                "docno": ids,
                "score": np.asarray(scores, dtype=np.float64),
                "rank": np.concatenate([np.arange(c) for c in counts]) if len(counts) else np.zeros(0, np.int64),
            }
        )

    def trec_lines(self, tag: str = "rayir", sort_queries: bool = False) -> Iterator[str]:
        """TREC run lines, each query ranked as searched; queries in row order or in id order."""
        check_tag(tag)
        ids, scores, bounds = self._flat()
        rows = range(len(self.query_ids))
        for row in sorted(rows, key=self.query_ids.__getitem__) if sort_queries else rows:
            query_id, start, end = self.query_ids[row], bounds[row], bounds[row + 1]
            for rank, (doc_id, score) in enumerate(zip(ids[start:end], scores[start:end]), start=1):
                yield f"{query_id} Q0 {doc_id} {rank} {score:.8g} {tag}\n"

    def write_trec(self, path: str | Path, tag: str = "rayir") -> Path:
        """A TREC run file, queries in id order, each ranked as searched; written atomically."""
        path = Path(path)
        lines = self.trec_lines(tag, sort_queries=True)
        with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
            handle.writelines(lines)
        return path
