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

from ..errors import IntegrityError
from .checks import check_array, check_finite, check_offsets, check_range
from .files import finish_shard, load_array, load_meta, load_ordinals, save_array
from .hits import HitMatrix
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


def _checked_postings(directory: Path, meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(weights, docs, indptr)`` as the kernel needs them: it indexes without bounds checks, so a
    document number or an offset out of range must be refused here, not read past an array."""
    vocab, documents, postings = meta.get("vocab_size"), meta["documents"], meta.get("postings")
    if not isinstance(vocab, int) or vocab < 1 or not isinstance(postings, int):
        raise IntegrityError(f"{directory / 'meta.json'}: no valid vocab_size and postings count")
    indptr = check_array(directory / "indptr.npy", load_array(directory / "indptr.npy"), np.int64, 1, vocab + 1)
    check_offsets(directory / "indptr.npy", indptr, postings)
    docs = check_array(directory / "docs.npy", load_array(directory / "docs.npy"), np.int32, 1, postings)
    check_range(directory / "docs.npy", docs, 0, documents, "document numbers")
    weights = check_array(directory / "weights.npy", load_array(directory / "weights.npy"), np.float32, 1, postings)
    check_finite(directory / "weights.npy", weights)
    return weights, docs, indptr


DENSE_TERM_FRACTION = 0.25


class SparseShard:
    """A loaded inverted index. Search runs the compiled accumulator kernel (see
    :mod:`.sparse_kernel`), which orders equal scores by ordinal (doc id), as everywhere.

    Terms in at least ``dense_term_fraction`` of the shard's documents are also held as dense
    columns (4 bytes per document each: at most twice their postings' 8 bytes per entry).
    """

    def __init__(self, directory: Path, dense_term_fraction: float = DENSE_TERM_FRACTION) -> None:
        self.meta = load_meta(directory)
        self.ordinals = load_ordinals(directory, self.meta["documents"])
        self.postings = sp.csr_matrix(
            _checked_postings(directory, self.meta), shape=(self.meta["vocab_size"], len(self.ordinals))
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
        queries.check_vocabulary(self.meta["vocab_size"])
        n, k = len(queries), max(0, min(k, len(self.ordinals)))
        positions = np.zeros((n, k), np.int64)
        scores = np.zeros((n, k), np.float32)
        counts = np.zeros(n, np.int64)
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
                self.ordinals,
                k,
                positions,
                scores,
                counts,
            )
        return HitMatrix(scores, self.ordinals[positions], counts)
