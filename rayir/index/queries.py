"""What a shard searches: a batch of query representations (the wire type into the index)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class QueryBatch:
    """Query representations in the form a backend searches.

    ``dense``: ``vectors`` ``(B, D)``; ``multi_vector``: ``vectors`` ``(B, L, D)`` + ``mask``;
    ``sparse``: CSR ``indptr``/``terms``/``weights`` over the vocabulary; ``coil``: ``vectors``
    ``(B, L, D)`` + ``mask`` + ``token_ids`` ``(B, L)`` and ``first`` ``(B, C)``.
    """

    vectors: np.ndarray | None = None
    mask: np.ndarray | None = None
    indptr: np.ndarray | None = None
    terms: np.ndarray | None = None
    weights: np.ndarray | None = None
    token_ids: np.ndarray | None = None
    first: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.vectors) if self.vectors is not None else len(self.indptr) - 1

    @classmethod
    def from_dense(
        cls,
        vectors: np.ndarray,
        mode: str,
        mask: np.ndarray | None = None,
        token_ids: np.ndarray | None = None,
        first: np.ndarray | None = None,
    ) -> QueryBatch:
        """From a model's float vectors: ``(B, D)`` dense, ``(B, L, D)`` + ``mask`` multi-vector
        (COIL: also ``token_ids`` and ``first``), or ``(B, V)`` vocabulary-sized sparse vectors (kept
        as CSR over their positive entries)."""
        if mode == "dense":
            return cls(vectors=vectors)
        if mode == "multi_vector":
            return cls(vectors=vectors, mask=np.asarray(mask).astype(bool))
        if mode == "coil":
            return cls(vectors=vectors, mask=np.asarray(mask).astype(bool), token_ids=token_ids, first=first)
        rows, terms = np.nonzero(vectors > 0)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(vectors)))])
        return cls(indptr=indptr, terms=terms.astype(np.int32), weights=vectors[rows, terms].astype(np.float32))

    @classmethod
    def from_sparse_rows(cls, rows: list[tuple[np.ndarray, np.ndarray]]) -> QueryBatch:
        """From per-query ``(term ids, weights)`` pairs."""
        indptr = np.concatenate([[0], np.cumsum([len(ids) for ids, _ in rows])]).astype(np.int64)
        terms = np.concatenate([ids for ids, _ in rows]).astype(np.int32) if rows else np.zeros(0, np.int32)
        weights = np.concatenate([w for _, w in rows]).astype(np.float32) if rows else np.zeros(0, np.float32)
        return cls(indptr=indptr, terms=terms, weights=weights)

    def check_vocabulary(self, vocab: int) -> None:
        """Sparse queries: every term id must lie in the index's ``vocab`` (compiled kernels index
        without bounds checks)."""
        if len(self.terms) and int(self.terms.max()) >= vocab:
            raise ValueError(f"query term id {int(self.terms.max())} outside the index vocabulary ({vocab})")

    def rows(self, start: int, stop: int) -> QueryBatch:
        """Queries ``start:stop`` as their own batch."""
        if self.vectors is not None:

            def part(array: np.ndarray | None) -> np.ndarray | None:
                return None if array is None else array[start:stop]

            return QueryBatch(
                vectors=self.vectors[start:stop],
                mask=part(self.mask),
                token_ids=part(self.token_ids),
                first=part(self.first),
            )
        lo, hi = int(self.indptr[start]), int(self.indptr[min(stop, len(self))])
        return QueryBatch(
            indptr=self.indptr[start : stop + 1] - lo, terms=self.terms[lo:hi], weights=self.weights[lo:hi]
        )
