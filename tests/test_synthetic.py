"""The scale benchmark's generator (``benchmarks/synthetic.py``): collections written in rayir's own
format that index, verify and search like an encoding, with statistics inherited from the seed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rayir.encode import encode_corpus, verify_manifest
from rayir.index import QueryBatch, build_index, load_shard
from rayir.index.manifest import read_doc_table

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def synthetic():
    spec = importlib.util.spec_from_file_location("synthetic", BENCHMARKS / "synthetic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed_csr(synthetic):
    """Four hand-made sparse rows over a 50-term vocabulary."""
    rows = [([1, 5, 9], [1.0, 2.0, 0.5]), ([2, 5], [0.3, 0.7]), ([40], [3.0]), ([0, 1, 2, 3, 4, 45], [0.1] * 6)]
    indptr = np.concatenate([[0], np.cumsum([len(t) for t, _ in rows])]).astype(np.int64)
    terms = np.concatenate([t for t, _ in rows]).astype(np.int32)
    weights = np.concatenate([w for _, w in rows]).astype(np.float32)
    return synthetic.Csr(indptr, terms, weights)


def test_sparse_rows_come_from_the_seed_rows(synthetic):
    seed = seed_csr(synthetic)
    rows = synthetic.perturbed_sparse(seed, 5000, np.random.default_rng(0))
    lengths = np.diff(rows.indptr)
    assert len(rows) == 5000 and lengths.min() >= 1  # never an empty document
    for i in range(len(rows)):
        terms = rows.terms[rows.indptr[i] : rows.indptr[i + 1]]
        assert (np.diff(terms) > 0).all()  # ascending, each term once
    assert set(rows.terms.tolist()) <= set(seed.terms.tolist())
    assert (rows.weights > 0).all()
    # Expected length: 0.8 of the seed rows' mean (plus the always-kept first term) + 0.2 borrowed.
    seed_mean = np.diff(seed.indptr).mean()
    assert 0.9 * seed_mean <= lengths.mean() <= 1.15 * seed_mean


def test_a_10k_dense_collection_verifies_builds_and_searches_exactly(
    synthetic, sample_collection, tiny_bert_dir, tmp_path
):
    from rayir.encode import read_manifest
    from rayir.encode.formats import dense_matrix

    def vectors_of(directory: Path, manifest: dict) -> np.ndarray:
        return dense_matrix(pa.concat_tables([pq.read_table(directory / s["file"]) for s in manifest["shards"]]))

    real = encode_corpus(str(tiny_bert_dir), sample_collection, tmp_path / "seed", docs_per_shard=16, in_process=True)
    seed = vectors_of(tmp_path / "seed", real.manifest)
    seed = seed / np.linalg.norm(seed, axis=1, keepdims=True)
    template = {k: v for k, v in read_manifest(tmp_path / "seed").items() if k != "shards"}
    synthetic.synthetic_embeddings(tmp_path / "synthetic", template, seed, 10000, docs_per_shard=2500)
    manifest = verify_manifest(tmp_path / "synthetic")  # checksums, row counts, unique ids
    assert manifest["documents"] == 10000 and len(manifest["shards"]) == 4
    assert manifest["settings"]["model"] == real.manifest["settings"]["model"]

    vectors = vectors_of(tmp_path / "synthetic", manifest)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    nearest = (vectors @ seed.T).max(axis=1)  # each a near-copy of one real document (noise 0.5)
    assert np.median(nearest) > 0.85 and nearest.min() > 0.7

    build_index(tmp_path / "synthetic", tmp_path / "index", num_shards=1, in_process=True)
    queries = synthetic.synthetic_queries(seed, 16)
    hits = load_shard(tmp_path / "index" / "shard-0000").search(QueryBatch(vectors=queries), 10)
    doc_ids = read_doc_table(tmp_path / "index").to_pylist()
    found = [[int(doc_ids[o][1:]) for o in row] for row in hits.ordinals]
    expected = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :10]
    assert found == expected.tolist()
