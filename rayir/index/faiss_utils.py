"""Faiss helpers shared by the dense and multi-vector backends: build, train, tune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError


def train_index(index: Any, sample: np.ndarray, factory: str) -> None:
    """Train a Faiss index, turning Faiss' assertion into an error that says what to change."""
    try:
        index.train(sample)
    except RuntimeError as err:
        raise ValueError(
            f"Faiss factory {factory!r} could not be trained on {len(sample)} vectors of this shard "
            f"({str(err).splitlines()[-1][:200]}); use fewer lists/centroids or fewer, larger shards"
        ) from None


def tune_faiss(
    index: Any, factory: str, directory: Path, nprobe: int | None = None, ef_search: int | None = None
) -> None:
    """Set IVF ``nprobe`` / HNSW ``efSearch`` on a loaded shard, refusing an option its factory has
    no use for (an exact ``Flat`` shard has neither) instead of failing inside Faiss."""
    import faiss

    for name, value in (("nprobe", nprobe), ("ef_search", ef_search)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if nprobe is not None:
        ivf = faiss.try_extract_index_ivf(index) if index is not None else None
        if ivf is None:
            raise ValueError(
                f"shard {directory}: nprobe applies to IVF factories, and this shard's "
                f"factory is {factory!r}; remove nprobe"
            )
        ivf.nprobe = nprobe
    if ef_search is not None:
        hnsw = getattr(faiss.downcast_index(index), "hnsw", None) if index is not None else None
        if hnsw is None:
            raise ValueError(
                f"shard {directory}: ef_search applies to HNSW factories, and this shard's "
                f"factory is {factory!r}; remove ef_search"
            )
        hnsw.efSearch = ef_search


def check_factory(factory: str, dim: int) -> None:
    """Refuse a factory string Faiss cannot build, in the driver, before any shard task starts."""
    import faiss

    try:
        faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        message = str(err).strip().rsplit(": ", 1)[-1] or type(err).__name__  # Faiss prefixes its source line
        raise ConfigError(
            f"factory={factory!r} is not a Faiss index factory string for {dim}-dimensional vectors ({message}); "
            "e.g. Flat, HNSW32, IVF1024,Flat, IVF1024,PQ32"
        ) from None


def build_faiss(
    vectors: np.ndarray, factory: str, normalize: bool, train_sample: int, seed: int, threads: int | None
) -> tuple[Any, np.ndarray]:
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
