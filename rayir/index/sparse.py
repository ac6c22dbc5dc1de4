"""An exact inverted index for sparse vectors (SPLADE, BM25).

Postings are stored term-major as CSR arrays (``indptr.npy``, ``docs.npy``, ``weights.npy``), i.e.
the transposed document-term matrix. A query batch is CSR rows over the vocabulary; the compiled
kernel in :mod:`.sparse_kernel` adds up only the posting lists of each query's terms, so scores are
exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .files import finish_shard, load_array, load_meta, load_ordinals, save_array
from .hits import HitMatrix, top_k
from .queries import QueryBatch
from .sparse_kernel import search_postings


def build_sparse_shard(
    indptr: np.ndarray,
    terms: np.ndarray,
    weights: np.ndarray,
    doc_ids: list[str],
    ordinals: np.ndarray,
    directory: Path,
    vocab_size: int,
) -> dict:
    """``indptr``/``terms``/``weights``: documents as CSR rows over a ``vocab_size`` vocabulary."""
    docs = sp.csr_matrix((weights, terms, indptr), shape=(len(doc_ids), vocab_size), dtype=np.float32)
    postings = docs.T.tocsr()  # (V, N): one row of postings per term
    postings.sort_indices()
    directory.mkdir(parents=True, exist_ok=True)
    save_array(directory / "indptr.npy", postings.indptr.astype(np.int64))
    save_array(directory / "docs.npy", postings.indices.astype(np.int32))
    save_array(directory / "weights.npy", postings.data.astype(np.float32))
    meta = {"type": "sparse", "vocab_size": int(vocab_size), "documents": len(doc_ids), "postings": int(postings.nnz)}
    return finish_shard(directory, doc_ids, ordinals, meta)


DENSE_TERM_FRACTION = 0.25


class SparseShard:
    """A loaded inverted index. Search runs the compiled accumulator kernel (see
    :mod:`.sparse_kernel`); the rare rows whose order hinges on tied scores are re-done in numpy
    and ordered by doc id, as everywhere.

    Terms in at least ``dense_term_fraction`` of the shard's documents are also held as dense
    columns (4 bytes per document each: at most twice their postings' 8 bytes per entry).
    """

    def __init__(self, directory: Path, dense_term_fraction: float = DENSE_TERM_FRACTION) -> None:
        self.meta = load_meta(directory)
        self.ordinals = load_ordinals(directory)
        self.postings = sp.csr_matrix(
            (
                load_array(directory / "weights.npy"),
                load_array(directory / "docs.npy"),
                load_array(directory / "indptr.npy"),
            ),
            shape=(self.meta["vocab_size"], len(self.ordinals)),
        )
        indices = self.postings.indices  # unsigned for the kernel: no negative-index checks
        self.docs_unsigned = indices.view(np.uint32) if indices.dtype == np.int32 else indices.astype(np.uint32)
        self.dense_row, self.dense_columns = self._dense_columns(dense_term_fraction)

    def _dense_columns(self, fraction: float) -> tuple[np.ndarray, np.ndarray]:
        postings, num_docs = self.postings, len(self.ordinals)
        frequency = np.diff(postings.indptr)
        dense_terms = np.flatnonzero((frequency > 0) & (frequency >= fraction * num_docs))
        dense_row = np.full(postings.shape[0], -1, np.int32)
        dense_row[dense_terms] = np.arange(len(dense_terms), dtype=np.int32)
        columns = postings[dense_terms].toarray().astype(np.float32, copy=False)
        return dense_row, np.ascontiguousarray(columns)

    def search(self, queries: QueryBatch, k: int) -> HitMatrix:
        vocab = self.meta["vocab_size"]
        if len(queries.terms) and int(queries.terms.max()) >= vocab:
            raise ValueError(f"query term id {int(queries.terms.max())} outside the index vocabulary ({vocab})")
        n, k = len(queries), max(0, min(k, len(self.ordinals)))
        positions = np.zeros((n, k), np.int64)
        scores = np.zeros((n, k), np.float32)
        counts = np.zeros(n, np.int64)
        tied = np.zeros(n, np.bool_)
        if k:
            search_postings(
                queries.indptr.astype(np.int64),
                queries.terms.astype(np.int64),
                queries.weights.astype(np.float32),
                self.postings.indptr,
                self.docs_unsigned,
                self.postings.data,
                self.dense_row,
                self.dense_columns,
                len(self.ordinals),
                k,
                positions,
                scores,
                counts,
                tied,
            )
        hits = HitMatrix(scores, self.ordinals[positions], counts)
        for row in np.flatnonzero(tied):
            row_scores, row_positions = self._search_row_with_ties(queries, int(row), k)
            hits.scores[row, : len(row_positions)] = row_scores
            hits.ordinals[row, : len(row_positions)] = self.ordinals[row_positions]
        return hits

    def _search_row_with_ties(self, queries: QueryBatch, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and positions of one query's top ``k``, exhaustively in numpy (the same float32 sums
        as the kernel), ties ordered by ordinal (doc id)."""
        start, end = queries.indptr[row], queries.indptr[row + 1]
        scores = np.zeros(len(self.ordinals), np.float32)
        for term, weight in zip(queries.terms[start:end], queries.weights[start:end]):  # the kernel's order
            lo, hi = self.postings.indptr[term], self.postings.indptr[term + 1]
            scores[self.postings.indices[lo:hi]] += np.float32(weight) * self.postings.data[lo:hi]
        positions = np.flatnonzero(scores > 0)
        order, best = top_k(scores[positions], k, self.ordinals[positions])
        return best.astype(np.float32), positions[order]
