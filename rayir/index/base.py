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
    """Top-k of a query batch: ``scores`` (``k`` float32 per row) and ``doc_ids`` (lists of str).

    Rows hold fewer than ``k`` hits when fewer documents match (sparse search)."""

    scores: list[np.ndarray]
    doc_ids: list[list[str]]


@dataclass
class HitMatrix:
    """The same top-k as arrays: ``scores`` ``(B, k)`` float32, ``doc_ids`` ``(B, k)`` fixed-width
    (see :func:`fixed_width_ids`), row ``i`` valid up to ``counts[i]``. Shards send this: three
    small buffers pickle and merge far faster than ``B x k`` Python strings."""

    scores: np.ndarray
    doc_ids: np.ndarray
    counts: np.ndarray

    def to_hits(self) -> Hits:
        return Hits([self.scores[i, :c] for i, c in enumerate(self.counts)],
                    [id_list(self.doc_ids[i, :c]) for i, c in enumerate(self.counts)])

    @classmethod
    def from_hits(cls, hits: Hits, k: int) -> "HitMatrix":
        rows = len(hits.doc_ids)
        scores = np.full((rows, k), -np.inf, np.float32)
        counts = np.asarray([len(ids) for ids in hits.doc_ids], np.int64)
        flat = fixed_width_ids([d for ids in hits.doc_ids for d in ids] or [""])
        doc_ids = np.full((rows, k), "" if flat.dtype == object else b"", dtype=flat.dtype)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        for i, row_scores in enumerate(hits.scores):
            scores[i, : counts[i]] = row_scores
            doc_ids[i, : counts[i]] = flat[offsets[i] : offsets[i + 1]]
        return cls(scores, doc_ids, counts)


def fixed_width_ids(doc_ids) -> np.ndarray:
    """Doc ids as one fixed-width array of UTF-8 bytes (``S``): for ASCII ids a quarter of the
    ``U`` size, so a batch's top-k ids travel as one small buffer. Byte order is code point order,
    so ties still sort by id. (Ids ending in NUL, which fixed-width strings strip, stay objects.)"""
    encoded = [d.encode() for d in doc_ids]
    if any(e.endswith(b"\0") for e in encoded):
        return np.asarray(list(doc_ids), dtype=object)
    return np.asarray(encoded, dtype=bytes)


def id_list(ids: np.ndarray) -> list[str]:
    """A row of :func:`fixed_width_ids` back as Python strings."""
    if ids.dtype.kind != "S":
        return ids.tolist()
    try:
        return ids.astype(str).tolist()  # ASCII: one vectorised conversion
    except UnicodeDecodeError:
        return [d.decode() for d in ids.tolist()]


class IndexShard(Protocol):
    def search(self, queries: QueryBatch, k: int) -> Hits: ...

    def search_matrix(self, queries: QueryBatch, k: int) -> HitMatrix: ...


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
    return merge_hit_matrices([HitMatrix.from_hits(part, k) for part in parts], k).to_hits()


def merge_hit_matrices(parts: list[HitMatrix], k: int) -> HitMatrix:
    """Exact global top-k from per-shard top-k matrices (score descending, doc id ascending).

    Vectorised over the batch: each row's concatenated hits are sorted by score; only rows where
    equal scores meet inside the top k (or at its edge) go through the doc-id tie-break."""
    if len(parts) == 1 and parts[0].scores.shape[1] <= k:
        return parts[0]
    scores = np.concatenate([p.scores for p in parts], axis=1)
    if len({p.doc_ids.dtype.kind for p in parts}) > 1:  # a shard kept object ids: merge as str
        parts = [HitMatrix(p.scores, np.char.decode(p.doc_ids, "utf-8").astype(object) if p.doc_ids.dtype.kind == "S"
                           else p.doc_ids, p.counts) for p in parts]
    doc_ids = np.concatenate([p.doc_ids for p in parts], axis=1)
    valid = np.concatenate([np.arange(p.scores.shape[1])[None, :] < p.counts[:, None] for p in parts], axis=1)
    scores = np.where(valid, scores, -np.inf).astype(np.float32)
    counts = np.minimum(valid.sum(axis=1), k)
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=1)
    width = min(k + 1, ranked.shape[1])
    edge = (np.arange(1, width)[None, :] <= counts[:, None])  # pairs inside the top k or at its edge
    tied = ((ranked[:, 1:width] == ranked[:, : width - 1]) & edge & np.isfinite(ranked[:, 1:width])).any(axis=1)
    order = order[:, :k]
    out_scores = np.take_along_axis(scores, order, axis=1)
    out_ids = np.take_along_axis(doc_ids, order, axis=1)
    for row in np.flatnonzero(tied):
        keep = np.flatnonzero(valid[row])
        best, best_scores = top_k(scores[row, keep], k, doc_ids[row, keep].astype(object))  # bytes order = id order
        out_scores[row, : len(best)] = best_scores
        out_ids[row, : len(best)] = doc_ids[row, keep[best]]
    return HitMatrix(out_scores, out_ids, counts)


def train_index(index: Any, sample: np.ndarray, factory: str) -> None:
    """Train a Faiss index, turning Faiss' assertion into an error that says what to change."""
    try:
        index.train(sample)
    except RuntimeError as err:
        raise ValueError(
            f"Faiss factory {factory!r} could not be trained on {len(sample)} vectors of this shard "
            f"({str(err).splitlines()[-1][:200]}); use fewer lists/centroids or fewer, larger shards"
        ) from None


def tune_faiss(index: Any, factory: str, directory: Path, nprobe: int | None = None,
               ef_search: int | None = None) -> None:
    """Set IVF ``nprobe`` / HNSW ``efSearch`` on a loaded shard, refusing an option its factory has
    no use for (an exact ``Flat`` shard has neither) instead of failing inside Faiss."""
    import faiss

    for name, value in (("nprobe", nprobe), ("ef_search", ef_search)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if nprobe is not None:
        ivf = faiss.try_extract_index_ivf(index) if index is not None else None
        if ivf is None:
            raise ValueError(f"shard {directory}: nprobe applies to IVF factories, and this shard's "
                             f"factory is {factory!r}; remove nprobe")
        ivf.nprobe = nprobe
    if ef_search is not None:
        hnsw = getattr(faiss.downcast_index(index), "hnsw", None) if index is not None else None
        if hnsw is None:
            raise ValueError(f"shard {directory}: ef_search applies to HNSW factories, and this shard's "
                             f"factory is {factory!r}; remove ef_search")
        hnsw.efSearch = ef_search


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
