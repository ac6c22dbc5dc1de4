"""An exact inverted index for sparse vectors (SPLADE, BM25).

Postings are stored term-major as CSR arrays (``indptr.npy``, ``docs.npy``, ``weights.npy``), i.e.
the transposed document-term matrix. A query batch is a sparse ``(B, V)`` matrix; its product with
the postings touches only the posting lists of the query terms and gives exact scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .base import Hits, QueryBatch, load_array, load_doc_ids, load_meta, save_array, save_doc_ids, save_meta, top_k


def build_sparse_shard(indptr: np.ndarray, terms: np.ndarray, weights: np.ndarray, doc_ids: list[str],
                       directory: Path, vocab_size: int) -> dict:
    """``indptr``/``terms``/``weights``: documents as CSR rows over a ``vocab_size`` vocabulary."""
    docs = sp.csr_matrix((weights, terms, indptr), shape=(len(doc_ids), vocab_size), dtype=np.float32)
    postings = docs.T.tocsr()  # (V, N): one row of postings per term
    postings.sort_indices()
    directory.mkdir(parents=True, exist_ok=True)
    save_array(directory / "indptr.npy", postings.indptr.astype(np.int64))
    save_array(directory / "docs.npy", postings.indices.astype(np.int32))
    save_array(directory / "weights.npy", postings.data.astype(np.float32))
    save_doc_ids(directory, doc_ids)
    meta = {"type": "sparse", "vocab_size": int(vocab_size), "documents": len(doc_ids), "postings": int(postings.nnz)}
    save_meta(directory, meta)
    return meta


class SparseShard:
    def __init__(self, directory: Path) -> None:
        self.meta = load_meta(directory)
        self.doc_ids = load_doc_ids(directory)
        self.postings = sp.csr_matrix(
            (load_array(directory / "weights.npy"), load_array(directory / "docs.npy"), load_array(directory / "indptr.npy")),
            shape=(self.meta["vocab_size"], len(self.doc_ids)),
        )

    def search(self, queries: QueryBatch, k: int) -> Hits:
        vocab = self.meta["vocab_size"]
        if len(queries.terms) and int(queries.terms.max()) >= vocab:
            raise ValueError(f"query term id {int(queries.terms.max())} outside the index vocabulary ({vocab})")
        q = sp.csr_matrix((queries.weights, queries.terms, queries.indptr), shape=(len(queries), vocab), dtype=np.float32)
        scores = (q @ self.postings).tocsr()  # (B, N), only documents sharing a term with the query
        hits_scores, hits_ids = [], []
        for row in range(scores.shape[0]):
            start, end = scores.indptr[row], scores.indptr[row + 1]
            positions, values = scores.indices[start:end], scores.data[start:end]
            matched = values > 0
            positions, values = positions[matched], values[matched]
            ids = self.doc_ids[positions]
            order, best = top_k(values, k, ids)
            hits_scores.append(best.astype(np.float32))
            hits_ids.append(ids[order].tolist())
        return Hits(hits_scores, hits_ids)
