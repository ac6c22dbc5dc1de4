"""An exact COIL index: per vocabulary id, the contextual vectors of that token in every document.

COIL scores a document by its first-token vector's dot product with the query's, plus, for every
query token, its best dot product with a document token of the same vocabulary id, floored at 0
(:func:`rayir.models.scoring.coil`). So a query token only ever meets the posting list of its own
id: the inverted lists hold token vectors instead of weights.

Files: ``first.npy`` ``(documents, C)``; ``terms.npy`` (the vocabulary ids present, ascending),
``term_offsets.npy`` (term ``i`` owns postings ``term_offsets[i]:term_offsets[i+1]``);
``posting_docs.npy`` (the shard-local document of each posting, ascending within a term) and
``posting_vectors.npy`` ``(postings, D)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import IntegrityError
from .checks import check_array, check_finite, check_offsets, check_range
from .files import finish_shard, load_array, load_meta, load_ordinals, save_array
from .hits import HitMatrix, top_k
from .queries import QueryBatch


def build_coil_shard(
    first: np.ndarray,
    counts: np.ndarray,
    token_ids: np.ndarray,
    tokens: np.ndarray,
    doc_ids: list[str],
    ordinals: np.ndarray,
    directory: Path,
) -> dict:
    """``first`` ``(N, C)``; document ``i`` owns the next ``counts[i]`` of ``token_ids``/``tokens``."""
    docs = np.repeat(np.arange(len(doc_ids), dtype=np.int32), counts)
    order = np.lexsort((docs, token_ids))  # by term, then by document
    sorted_ids = token_ids[order]
    terms, starts = np.unique(sorted_ids, return_index=True)
    directory.mkdir(parents=True, exist_ok=True)
    save_array(directory / "first.npy", np.ascontiguousarray(first, dtype=np.float32))
    save_array(directory / "terms.npy", terms.astype(np.int32))
    save_array(directory / "term_offsets.npy", np.append(starts, len(order)).astype(np.int64))
    save_array(directory / "posting_docs.npy", docs[order])
    save_array(directory / "posting_vectors.npy", np.ascontiguousarray(tokens[order], dtype=np.float32))
    meta = {
        "type": "coil",
        "documents": len(doc_ids),
        "postings": int(len(order)),
        "terms": int(len(terms)),
        "dim": int(tokens.shape[1]) if tokens.size else 0,
        "first_dim": int(first.shape[1]) if first.size else 0,
    }
    return finish_shard(directory, doc_ids, ordinals, meta)


class CoilShard:
    """Exact COIL search of one shard (no options: every document's score is computed)."""

    def __init__(self, directory: Path) -> None:
        self.meta = meta = load_meta(directory)
        documents, postings, terms = meta["documents"], meta.get("postings"), meta.get("terms")
        if not all(isinstance(v, int) and v >= 0 for v in (postings, terms, meta.get("dim"), meta.get("first_dim"))):
            raise IntegrityError(f"{directory / 'meta.json'}: no valid postings, terms and dimensions")

        def array(name: str, dtype: type, ndim: int, length: int) -> np.ndarray:
            return check_array(directory / name, load_array(directory / name, mmap=ndim == 2), dtype, ndim, length)

        self.first = array("first.npy", np.float32, 2, documents)
        self.terms = array("terms.npy", np.int32, 1, terms)
        self.offsets = array("term_offsets.npy", np.int64, 1, terms + 1)
        check_offsets(directory / "term_offsets.npy", self.offsets, postings)
        self.docs = array("posting_docs.npy", np.int32, 1, postings)
        check_range(directory / "posting_docs.npy", self.docs, 0, documents, "document numbers")
        self.vectors = array("posting_vectors.npy", np.float32, 2, postings)
        for name, matrix, dim in (
            ("first.npy", self.first, meta["first_dim"]),
            ("posting_vectors.npy", self.vectors, meta["dim"]),
        ):
            if len(matrix) and matrix.shape[1] != dim:
                raise IntegrityError(f"{directory / name}: vectors of dimension {matrix.shape[1]}, expected {dim}")
        check_finite(directory / "first.npy", np.asarray(self.first))
        self.ordinals = load_ordinals(directory, documents)

    def scores(self, first: np.ndarray, vectors: np.ndarray, token_ids: np.ndarray) -> np.ndarray:
        """Exact scores ``(documents,)`` of one query: its first-token vector, and its scoring
        tokens' vectors ``(L, D)`` with their vocabulary ids ``(L,)``."""
        scores = np.asarray(self.first) @ first
        where = np.searchsorted(self.terms, token_ids)
        for vector, token, at in zip(vectors, token_ids, where):
            if at >= len(self.terms) or self.terms[at] != token:
                continue  # the token occurs in no document of this shard
            lo, hi = int(self.offsets[at]), int(self.offsets[at + 1])
            sims = np.asarray(self.vectors[lo:hi]) @ vector
            docs = self.docs[lo:hi]
            starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])  # each document's run of postings
            best = np.maximum.reduceat(sims, starts)
            scores[docs[starts]] += np.maximum(best, 0.0)
        return scores

    def search(self, queries: QueryBatch, k: int) -> HitMatrix:
        hits = HitMatrix.empty(len(queries), min(k, len(self.ordinals)))
        for row in range(len(queries)):
            keep = queries.mask[row].astype(bool)
            scores = self.scores(
                np.asarray(queries.first[row], np.float32),
                np.asarray(queries.vectors[row][keep], np.float32),
                np.asarray(queries.token_ids[row][keep]),
            ).astype(np.float32)
            order, best = top_k(scores, k, self.ordinals)
            hits.scores[row, : len(order)] = best
            hits.ordinals[row, : len(order)] = self.ordinals[order]
            hits.counts[row] = len(order)
        return hits
