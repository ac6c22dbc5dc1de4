"""Dense vectors in a Faiss index built from a factory string (``Flat``, ``IVF256,Flat``,
``HNSW32``, ``IVF256,PQ16``, ``PQ16``...). Scores are inner products; for cosine similarity the
vectors (and later the queries) are L2-normalised first."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import torch

from .checks import check_faiss
from .faiss_utils import build_faiss, tune_faiss
from .files import finish_shard, load_faiss, load_meta, load_ordinals
from .hits import HitMatrix, top_k
from .queries import QueryBatch


def build_dense_shard(
    vectors: np.ndarray,
    doc_ids: list[str],
    ordinals: np.ndarray,
    directory: Path,
    factory: str,
    normalize: bool,
    train_sample: int = 100_000,
    seed: int = 0,
    threads: int | None = None,
) -> dict:
    index, vectors = build_faiss(vectors, factory, normalize, train_sample, seed, threads)
    directory.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(directory / "index.faiss"))
    meta = {
        "type": "dense",
        "factory": factory,
        "normalize": normalize,
        "dim": int(vectors.shape[1]),
        "documents": len(doc_ids),
    }
    return finish_shard(directory, doc_ids, ordinals, meta)


class DenseShard:
    """A loaded Faiss shard; ``nprobe`` / ``ef_search`` tune IVF / HNSW recall.

    An exact ``Flat`` shard is searched as one matrix product plus ``torch.topk`` over the vectors
    read out of its Faiss file: the same inner products, faster than ``IndexFlatIP``'s heap
    selection on one CPU thread (``benchmarks/search.py`` shows both). Approximate factories
    search through Faiss.
    """

    def __init__(self, directory: Path, nprobe: int | None = None, ef_search: int | None = None) -> None:
        self.meta = load_meta(directory)
        self.index = load_faiss(directory / "index.faiss")
        check_faiss(directory / "index.faiss", self.index, self.meta["documents"], self.meta.get("dim"))
        self.ordinals = load_ordinals(directory, self.meta["documents"])
        self.vectors: torch.Tensor | None = None
        if self.meta["factory"] == "Flat":
            self.vectors = torch.from_numpy(self.index.reconstruct_n(0, self.index.ntotal))
            self.index = None  # the matrix above is the whole index
        tune_faiss(self.index, self.meta["factory"], directory, nprobe=nprobe, ef_search=ef_search)

    def _search_flat(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top ``k`` by exact inner product, plus whether each row's k-th score ties the next one."""
        take = min(k + 1, len(self.ordinals))
        with torch.inference_mode():
            scores, positions = torch.topk(torch.from_numpy(vectors) @ self.vectors.T, take, dim=1)
        scores, positions = scores.numpy(), positions.numpy()
        edge_tie = scores[:, k] == scores[:, k - 1] if take > k else np.zeros(len(scores), bool)
        return scores[:, :k], positions[:, :k], edge_tie

    def _exact_row(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of one query's top ``k`` over every document, ties by doc id."""
        with torch.inference_mode():
            scores = (self.vectors @ torch.from_numpy(vector)).numpy()
        return top_k(scores, k, self.ordinals)

    def search(self, queries: QueryBatch, k: int) -> HitMatrix:
        vectors = np.array(queries.vectors, dtype=np.float32, order="C")  # a writable copy (torch, Faiss)
        if self.meta["normalize"]:
            faiss.normalize_L2(vectors)
        k_eff = min(k, len(self.ordinals))
        if self.vectors is not None:
            scores, positions, edge_tie = self._search_flat(vectors, k_eff)
        else:
            scores, positions = self.index.search(vectors, k_eff)
            edge_tie = np.zeros(len(scores), bool)
        hits = HitMatrix(
            scores, self.ordinals[np.where(positions >= 0, positions, 0)], np.full(len(scores), k_eff, np.int64)
        )
        # Rows come best first; only rows with missing hits or tied scores need re-ordering (ties go
        # by ordinal, i.e. doc id, as everywhere), so the common case stays vectorised.
        simple = (positions >= 0).all(axis=1) & (scores[:, 1:] < scores[:, :-1]).all(axis=1) & ~edge_tie
        for row in np.flatnonzero(~simple):
            if self.vectors is not None:
                order, best = self._exact_row(vectors[row], k)
                ids = self.ordinals[order]
            else:
                candidates = positions[row][positions[row] >= 0]
                order, best = top_k(scores[row][positions[row] >= 0], k, self.ordinals[candidates])
                ids = self.ordinals[candidates[order]]
            hits.counts[row] = len(ids)
            hits.scores[row, : len(ids)] = best
            hits.ordinals[row, : len(ids)] = ids
        return hits
