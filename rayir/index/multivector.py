"""Late-interaction (ColBERT-style) search: token-level ANN for candidates, exact MaxSim to rank.

Files: ``index.faiss`` over all document token vectors (any factory string), ``tokens.npy`` (the
same vectors, exact, float32, memory-mapped at search time) and ``offsets.npy`` (document ``i``
owns tokens ``offsets[i]:offsets[i+1]``).
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from ..errors import IntegrityError
from .checks import check_array, check_faiss, check_offsets
from .faiss_utils import build_faiss, tune_faiss
from .files import finish_shard, load_array, load_faiss, load_meta, load_ordinals, save_array
from .hits import HitMatrix, top_k
from .queries import QueryBatch


def build_multivector_shard(
    tokens: np.ndarray,
    counts: np.ndarray,
    doc_ids: list[str],
    ordinals: np.ndarray,
    directory: Path,
    factory: str,
    normalize: bool,
    query_aggregation: str,
    train_sample: int = 200_000,
    seed: int = 0,
    threads: int | None = None,
) -> dict:
    index, tokens = build_faiss(tokens, factory, normalize, train_sample, seed, threads)
    directory.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(directory / "index.faiss"))
    save_array(directory / "tokens.npy", tokens)
    save_array(directory / "offsets.npy", np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    meta = {
        "type": "multi_vector",
        "factory": factory,
        "normalize": normalize,
        "dim": int(tokens.shape[1]),
        "query_aggregation": query_aggregation,
        "documents": len(doc_ids),
        "tokens": int(len(tokens)),
    }
    return finish_shard(directory, doc_ids, ordinals, meta)


class MultiVectorShard:
    """``candidates_per_token``: token neighbours fetched per query token to form the candidate set."""

    def __init__(self, directory: Path, candidates_per_token: int = 64, nprobe: int | None = None) -> None:
        self.meta = load_meta(directory)
        documents, tokens, dim = self.meta["documents"], self.meta.get("tokens"), self.meta.get("dim")
        self.index = load_faiss(directory / "index.faiss")
        check_faiss(directory / "index.faiss", self.index, tokens, dim)
        tune_faiss(self.index, self.meta["factory"], directory, nprobe=nprobe)
        self.tokens = check_array(
            directory / "tokens.npy", load_array(directory / "tokens.npy", mmap=True), np.float32, 2, tokens
        )
        if self.tokens.shape[1] != dim:
            raise IntegrityError(
                f"{directory / 'tokens.npy'}: vectors of dimension {self.tokens.shape[1]}, expected {dim}"
            )
        self.offsets = check_array(
            directory / "offsets.npy", load_array(directory / "offsets.npy"), np.int64, 1, documents + 1
        )
        check_offsets(directory / "offsets.npy", self.offsets, tokens)
        self.token_doc = np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))
        self.ordinals = load_ordinals(directory, documents)
        self.candidates_per_token = candidates_per_token

    def maxsim(self, query: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """Exact scores of one query's token vectors ``(Lq, D)`` against the documents ``docs``."""
        starts, ends = self.offsets[docs], self.offsets[docs + 1]
        token_rows = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)])
        sims = query @ np.asarray(self.tokens[token_rows]).T  # (Lq, tokens of all candidates)
        bounds = np.concatenate([[0], np.cumsum(ends - starts)[:-1]])
        best = np.maximum.reduceat(sims, bounds, axis=1)  # (Lq, candidates)
        total = best.sum(axis=0)
        return total / len(query) if self.meta["query_aggregation"] == "mean" else total

    def search(self, queries: QueryBatch, k: int) -> HitMatrix:
        hits = HitMatrix.empty(len(queries), min(k, len(self.ordinals)))
        for row, (vectors, mask) in enumerate(zip(queries.vectors, queries.mask)):
            query = np.ascontiguousarray(vectors[mask.astype(bool)], dtype=np.float32)
            if self.meta["normalize"]:
                faiss.normalize_L2(query)
            _, neighbours = self.index.search(query, min(self.candidates_per_token, len(self.token_doc)))
            docs = np.unique(self.token_doc[neighbours[neighbours >= 0]])
            scores = self.maxsim(query, docs).astype(np.float32)
            order, best = top_k(scores, k, self.ordinals[docs])
            hits.scores[row, : len(order)] = best
            hits.ordinals[row, : len(order)] = self.ordinals[docs[order]]
            hits.counts[row] = len(order)
        return hits
