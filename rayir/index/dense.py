"""Dense vectors in a Faiss index built from a factory string (``Flat``, ``IVF256,Flat``,
``HNSW32``, ``IVF256,PQ16``, ``PQ16``...). Scores are inner products; for cosine similarity the
vectors (and later the queries) are L2-normalised first."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from .base import build_faiss
from .base import Hits, QueryBatch, load_doc_ids, load_meta, save_doc_ids, save_meta, top_k


def build_dense_shard(
    vectors: np.ndarray, doc_ids: list[str], directory: Path, factory: str, normalize: bool,
    train_sample: int = 100_000, seed: int = 0, threads: int | None = None,
) -> dict:
    index, vectors = build_faiss(vectors, factory, normalize, train_sample, seed, threads)
    directory.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(directory / "index.faiss"))
    save_doc_ids(directory, doc_ids)
    meta = {"type": "dense", "factory": factory, "normalize": normalize, "dim": int(vectors.shape[1]),
            "documents": len(doc_ids)}
    save_meta(directory, meta)
    return meta


class DenseShard:
    """A loaded Faiss shard; ``nprobe`` / ``ef_search`` tune IVF / HNSW recall."""

    def __init__(self, directory: Path, nprobe: int | None = None, ef_search: int | None = None) -> None:
        self.meta = load_meta(directory)
        self.index = faiss.read_index(str(directory / "index.faiss"))
        self.doc_ids = load_doc_ids(directory)
        if nprobe is not None:
            faiss.extract_index_ivf(self.index).nprobe = nprobe
        if ef_search is not None:
            faiss.downcast_index(self.index).hnsw.efSearch = ef_search

    def search(self, queries: QueryBatch, k: int) -> Hits:
        vectors = np.ascontiguousarray(queries.vectors, dtype=np.float32)
        if self.meta["normalize"]:
            vectors = vectors.copy()
            faiss.normalize_L2(vectors)
        k_eff = min(k, len(self.doc_ids))
        scores, positions = self.index.search(vectors, k_eff)
        # Faiss returns rows best first; only rows with missing hits or tied scores need re-ordering
        # (ties go by doc id, as everywhere), so the common case stays vectorised.
        simple = (positions >= 0).all(axis=1) & (scores[:, 1:] < scores[:, :-1]).all(axis=1)  # strictly best first
        id_matrix = self.doc_ids[np.where(positions >= 0, positions, 0)]
        hits_scores, hits_ids = [], []
        for row, (row_scores, row_positions) in enumerate(zip(scores, positions)):
            if simple[row]:
                hits_scores.append(row_scores)
                hits_ids.append(id_matrix[row].tolist())
                continue
            valid = row_positions >= 0
            ids = self.doc_ids[row_positions[valid]]
            order, best = top_k(row_scores[valid], k, ids)
            hits_scores.append(best.astype(np.float32))
            hits_ids.append(ids[order].tolist())
        return Hits(hits_scores, hits_ids)
