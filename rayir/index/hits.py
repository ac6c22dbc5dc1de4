"""What a shard answers, and the exact cross-shard merge (the wire type out of the index).

Every document of an index has an int64 *ordinal*: its position among the index's doc ids sorted
in code-point order (``doc_ids.parquet`` at the index root). Ordering by ordinal is therefore
ordering by doc id, so shards, the merge and run files all break score ties by doc id with
integer comparisons, and 1, 2 or N shards give the same ranking.

A backend that ranks only a budget of candidates chosen by a cheaper score (the compressed
multi-vector index) answers with that score as ``prefilter`` and the budget as ``budget``: each
shard sends its own best ``budget`` candidates by ``prefilter`` with their final scores, and the
merge keeps the global best ``budget`` by ``prefilter`` before ranking by score, so the budget is
global and the answer does not depend on the shard count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NO_ORDINAL = np.iinfo(np.int64).max  # fills the unused tail of a row


@dataclass
class HitMatrix:
    """Top-k of a query batch: ``scores`` ``(B, width)`` float32 best first, ``ordinals``
    ``(B, width)`` int64; row ``i`` is valid up to ``counts[i]`` (fewer documents may match).
    ``prefilter`` / ``budget``: see the module docstring (``None`` / 0 for final answers)."""

    scores: np.ndarray
    ordinals: np.ndarray
    counts: np.ndarray
    prefilter: np.ndarray | None = None
    budget: int = 0

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def width(self) -> int:
        return self.scores.shape[1]

    @classmethod
    def empty(cls, rows: int, width: int) -> HitMatrix:
        return cls(
            np.zeros((rows, width), np.float32), np.full((rows, width), NO_ORDINAL, np.int64), np.zeros(rows, np.int64)
        )

    def valid(self) -> np.ndarray:
        """``(B, width)`` mask of the entries within each row's count."""
        return np.arange(self.width)[None, :] < self.counts[:, None]

    @staticmethod
    def stack(parts: Sequence[HitMatrix]) -> HitMatrix:
        """Batches one after another (rows concatenated; narrower batches padded); final answers only."""
        if any(p.prefilter is not None for p in parts):
            raise ValueError("stack merged answers: these hits still carry a candidate budget")
        width = max((p.width for p in parts), default=0)
        out = HitMatrix.empty(sum(len(p) for p in parts), width)
        row = 0
        for part in parts:
            out.scores[row : row + len(part), : part.width] = part.scores
            out.ordinals[row : row + len(part), : part.width] = part.ordinals
            out.counts[row : row + len(part)] = part.counts
            row += len(part)
        return out


def top_k(scores: np.ndarray, k: int, ordinals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions and scores of the ``k`` best entries of 1-D ``scores``, best first, score ties in
    ordinal (= doc id) order."""
    n = scores.shape[0]
    k = min(k, n)
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    if k < n:
        kth = np.partition(scores, n - k)[n - k]
        candidates = np.flatnonzero(scores >= kth)  # includes every document tied with the k-th
    else:
        candidates = np.arange(n)
    best = candidates[np.lexsort((ordinals[candidates], -scores[candidates]))][:k]
    return best, scores[best]


def merge_hits(parts: Sequence[HitMatrix], k: int) -> HitMatrix:
    """Exact global top-k of per-shard top-k matrices: one lexsort per row over all shards' hits,
    score descending, ordinal ascending. Budgeted answers (``prefilter``) first keep the global
    best ``budget`` by ``prefilter`` (ordinal ascending on ties)."""
    budgets = {p.budget for p in parts if p.prefilter is not None}
    if not budgets and len(parts) == 1 and parts[0].width <= k:
        return parts[0]
    if len(budgets) > 1 or (budgets and any(p.prefilter is None for p in parts)):
        raise ValueError(f"shards answered with different candidate budgets {sorted(budgets)}")
    valid = np.concatenate([p.valid() for p in parts], axis=1)
    scores = np.where(valid, np.concatenate([p.scores for p in parts], axis=1), -np.inf).astype(np.float32)
    ordinals = np.where(valid, np.concatenate([p.ordinals for p in parts], axis=1), NO_ORDINAL)
    counts = valid.sum(axis=1)
    if budgets:
        [budget] = budgets
        prefilter = np.where(valid, np.concatenate([p.prefilter for p in parts], axis=1), -np.inf)
        kept = np.lexsort((ordinals, -prefilter), axis=1)[:, :budget]
        scores, ordinals = np.take_along_axis(scores, kept, axis=1), np.take_along_axis(ordinals, kept, axis=1)
        counts = np.minimum(counts, budget)
        scores[np.arange(scores.shape[1])[None, :] >= counts[:, None]] = -np.inf
    order = np.lexsort((ordinals, -scores), axis=1)[:, :k]
    return HitMatrix(
        np.take_along_axis(scores, order, axis=1),
        np.take_along_axis(ordinals, order, axis=1),
        np.minimum(counts, k).astype(np.int64),
    )
