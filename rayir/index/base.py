"""What every index shard backend offers, and the files all of them share.

A shard directory holds ``doc_ids.parquet`` (the shard's documents in internal order) and
``meta.json`` (backend type and settings), beside the backend's own plain files (Faiss index files,
``.npy`` arrays). Nothing is pickled: loading an index from an untrusted source runs no code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_json, write_with


@dataclass
class QueryBatch:
    """Query representations in the form a backend searches.

    ``dense``: ``vectors`` ``(B, D)``; ``multi_vector``: ``vectors`` ``(B, L, D)`` + ``mask``;
    ``sparse``: CSR ``indptr``/``terms``/``weights`` over the vocabulary.
    """

    vectors: np.ndarray | None = None
    mask: np.ndarray | None = None
    indptr: np.ndarray | None = None
    terms: np.ndarray | None = None
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.vectors) if self.vectors is not None else len(self.indptr) - 1

    @classmethod
    def from_embeddings(cls, embeddings: Any, mode: str) -> "QueryBatch":
        """From model :class:`~rayir.models.Embeddings` (torch tensors) of the given mode."""
        vectors = embeddings.vectors.detach().float().cpu().numpy()
        if mode == "dense":
            return cls(vectors=vectors)
        if mode == "multi_vector":
            return cls(vectors=vectors, mask=embeddings.mask.cpu().numpy().astype(bool))
        rows, terms = np.nonzero(vectors > 0)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(vectors)))])
        return cls(indptr=indptr, terms=terms.astype(np.int32), weights=vectors[rows, terms].astype(np.float32))

    @classmethod
    def from_sparse_rows(cls, rows: list[tuple[np.ndarray, np.ndarray]]) -> "QueryBatch":
        """From per-query ``(term ids, weights)`` pairs (BM25 queries)."""
        indptr = np.concatenate([[0], np.cumsum([len(ids) for ids, _ in rows])]).astype(np.int64)
        terms = np.concatenate([ids for ids, _ in rows]).astype(np.int32) if rows else np.zeros(0, np.int32)
        weights = np.concatenate([w for _, w in rows]).astype(np.float32) if rows else np.zeros(0, np.float32)
        return cls(indptr=indptr, terms=terms, weights=weights)


@dataclass
class Hits:
    """Top-k of a query batch: ``scores`` ``(B, k)`` float32 and ``doc_ids`` (lists of str).

    Rows hold fewer than ``k`` hits when fewer documents match (sparse search)."""

    scores: list[np.ndarray]
    doc_ids: list[list[str]]


class IndexShard(Protocol):
    def search(self, queries: QueryBatch, k: int) -> Hits: ...


def save_doc_ids(directory: Path, doc_ids: list[str]) -> None:
    table = pa.table({"doc_id": pa.array(doc_ids, pa.string())})
    write_with(directory / "doc_ids.parquet", lambda tmp: pq.write_table(table, tmp))


def load_doc_ids(directory: Path) -> np.ndarray:
    return np.asarray(pq.read_table(directory / "doc_ids.parquet").column("doc_id").to_pylist(), dtype=object)


def save_meta(directory: Path, meta: dict[str, Any]) -> None:
    write_json(directory / "meta.json", meta)


def load_meta(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "meta.json").read_text())


def save_array(path: Path, array: np.ndarray) -> None:
    write_with(path, lambda tmp: np.save(tmp.open("wb"), array, allow_pickle=False))


def load_array(path: Path, mmap: bool = False) -> np.ndarray:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def top_k(scores: np.ndarray, k: int, doc_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions and scores of the ``k`` best entries of 1-D ``scores``, best first.

    Ties are broken by doc id (as in run files), so the result does not depend on how documents
    were split over shards.
    """
    n = scores.shape[0]
    k = min(k, n)
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    if k < n:
        kth = np.partition(scores, n - k)[n - k]
        candidates = np.flatnonzero(scores >= kth)  # includes every document tied with the k-th
    else:
        candidates = np.arange(n)
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    if len(np.unique(scores[order])) < len(order):  # ties: order them by doc id (rare for floats)
        order = np.asarray(sorted(order.tolist(), key=lambda i: (-float(scores[i]), doc_ids[i])), dtype=np.int64)
    best = order[:k]
    return best, scores[best]


def merge_hits(parts: list[Hits], k: int) -> Hits:
    """Exact global top-k from per-shard top-k lists (score descending, doc id ascending)."""
    if len(parts) == 1:
        return Hits([s[:k] for s in parts[0].scores], [ids[:k] for ids in parts[0].doc_ids])
    scores, doc_ids = [], []
    for row in range(len(parts[0].doc_ids)):
        row_scores = np.concatenate([part.scores[row] for part in parts]).astype(np.float32, copy=False)
        row_ids = np.asarray([d for part in parts for d in part.doc_ids[row]], dtype=object)
        best, best_scores = top_k(row_scores, k, row_ids)
        scores.append(best_scores)
        doc_ids.append(row_ids[best].tolist())
    return Hits(scores, doc_ids)


def train_index(index: Any, sample: np.ndarray, factory: str) -> None:
    """Train a Faiss index, turning Faiss' assertion into an error that says what to change."""
    try:
        index.train(sample)
    except RuntimeError as err:
        raise ValueError(
            f"Faiss factory {factory!r} could not be trained on {len(sample)} vectors of this shard "
            f"({str(err).splitlines()[-1][:200]}); use fewer lists/centroids or fewer, larger shards"
        ) from None


def build_faiss(vectors: np.ndarray, factory: str, normalize: bool, train_sample: int, seed: int,
                threads: int | None) -> tuple[Any, np.ndarray]:
    """An inner-product Faiss index from a factory string, trained on a seeded sample, filled.

    Returns the index and the (normalised, if asked) float32 vectors it holds."""
    import faiss

    if threads:
        faiss.omp_set_num_threads(threads)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if normalize:
        faiss.normalize_L2(vectors)
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        train_index(index, vectors[rng.choice(len(vectors), min(train_sample, len(vectors)), replace=False)], factory)
    index.add(vectors)
    return index, vectors
