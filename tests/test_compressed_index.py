"""The compressed (PLAID-style) multi-vector index: its codec against a by-hand reference, recall
against exact MaxSim on a generated collection, the same runs at 1/2/4 shards, the manifest round
trip, and the jobs end to end."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from rayir.encode.formats import SCHEMAS
from rayir.errors import ConfigError
from rayir.index import QueryBatch, build_index, load_shard
from rayir.index.compressed import CompressedMultiVectorShard, _decompress
from rayir.index.manifest import read_index_manifest
from rayir.index.residual_codec import CodecSettings, ResidualCodec, default_centroids
from rayir.integrity import verify_files
from rayir.serve.results import SearchResult
from tests.conftest import search_index

DIM = 64
K = 10


def generated_collection(documents: int, seed: int = 0) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """Token vectors shaped like a late-interaction model's: each token is a *word* vector (3,000
    words in 100 topics of 30) plus a contextual variation (norm 0.3), unit length. A document has
    10-30 tokens, 70% from its 2 topics' words and 30% from anywhere. Returns the doc ids, each
    document's tokens and each document's words (for queries)."""
    rng = np.random.default_rng(seed)
    words = rng.normal(size=(3000, DIM)) / np.sqrt(DIM)
    ids, docs, doc_words = [], [], []
    for number in range(documents):
        topics = rng.choice(100, 2, replace=False)
        length = int(rng.integers(10, 31))
        own = topics[rng.integers(0, 2, length)] * 30 + rng.integers(0, 30, length)
        chosen = np.where(rng.random(length) < 0.7, own, rng.integers(0, 3000, length))
        tokens = words[chosen] + 0.3 * rng.normal(size=(length, DIM)) / np.sqrt(DIM)
        ids.append(f"g{number:05d}")
        docs.append((tokens / np.linalg.norm(tokens, axis=1, keepdims=True)).astype(np.float32))
        doc_words.append(chosen)
    return ids, docs, (words, doc_words)


def generated_queries(vocabulary, count: int, seed: int = 1) -> QueryBatch:
    """Queries of 4-8 tokens: words of one document in new contexts (padded to 8 with masked rows)."""
    words, doc_words = vocabulary
    rng = np.random.default_rng(seed)
    vectors = np.zeros((count, 8, DIM), np.float32)
    mask = np.zeros((count, 8), bool)
    for row in range(count):
        source = doc_words[rng.integers(len(doc_words))]
        length = int(rng.integers(4, 9))
        tokens = words[rng.choice(source, length)] + 0.3 * rng.normal(size=(length, DIM)) / np.sqrt(DIM)
        vectors[row, :length], mask[row, :length] = tokens / np.linalg.norm(tokens, axis=1, keepdims=True), True
    return QueryBatch(vectors=vectors, mask=mask)


def write_embeddings(directory, doc_ids: list[str], docs: list[np.ndarray], per_file: int = 700) -> None:
    """A multi-vector embeddings directory (the encoder's Parquet schema and manifest) of ``docs``."""
    from rayir.atomic import sha256_file

    (directory / "embeddings").mkdir(parents=True)
    shards = []
    for number, start in enumerate(range(0, len(docs), per_file)):
        part = docs[start : start + per_file]
        counts = np.asarray([len(d) for d in part], np.int32)
        offsets = np.concatenate([[0], np.cumsum(counts * DIM)]).astype(np.int32)
        column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(part).reshape(-1)))
        table = pa.Table.from_arrays(
            [pa.array(doc_ids[start : start + per_file]), pa.array(counts), column], schema=SCHEMAS["multi_vector"]
        )
        path = directory / "embeddings" / f"part-{number:05d}.parquet"
        pa.parquet.write_table(table, path)
        shards.append({"file": f"embeddings/{path.name}", "rows": table.num_rows, "sha256": sha256_file(path)})
    settings = {"model": "generated", "model_fingerprint": "generated", "config_overrides": {}, "precision": "float32"}
    manifest = {
        "format_version": 2,
        "kind": "embeddings",
        "mode": "multi_vector",
        "dim": DIM,
        "documents": len(docs),
        "shards": shards,
        "settings": settings,
        "model_config": {"mode": "multi_vector", "similarity": "cosine", "query_aggregation": "sum"},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))


def exact_top(docs: list[np.ndarray], doc_ids: list[str], queries: QueryBatch, k: int = K) -> list[list[str]]:
    """Brute-force MaxSim top-k over the uncompressed vectors, ties by doc id."""
    ranked = []
    for vectors, mask in zip(queries.vectors, queries.mask):
        q = vectors[mask]
        scores = [float((q @ d.T).max(axis=1).sum()) for d in docs]
        ranked.append([doc_ids[i] for i in sorted(range(len(docs)), key=lambda i: (-scores[i], doc_ids[i]))[:k]])
    return ranked


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    directory = tmp_path_factory.mktemp("generated")
    doc_ids, docs, vocabulary = generated_collection(2000)
    write_embeddings(directory / "enc", doc_ids, docs)
    return directory, doc_ids, docs, generated_queries(vocabulary, 40)


def test_codec_round_trip_against_a_by_hand_decoder():
    """Packing and the byte table against a loop that rebuilds each vector from its buckets."""
    rng = np.random.default_rng(3)
    sample = rng.normal(size=(40000, 16)).astype(np.float32)
    errors = []
    for bits in (1, 2, 4, 8):
        codec = ResidualCodec.train(sample, 32, bits, normalize=False, iterations=5, seed=0)
        codes, packed = codec.encode(sample[:50])
        assert packed.shape == (50, 16 * bits // 8) and packed.dtype == np.uint8
        by_hand = np.empty((50, 16), np.float32)
        for t in range(50):
            for d in range(16):
                byte, slot = divmod(d, 8 // bits)
                bucket = (int(packed[t, byte]) >> (slot * bits)) & (2**bits - 1)
                residual = sample[t, d] - codec.centroids[codes[t], d]
                assert bucket == np.searchsorted(codec.cutoffs[d], residual, side="right")
                by_hand[t, d] = codec.centroids[codes[t], d] + codec.bucket_values[d, bucket]
        np.testing.assert_array_equal(codec.decode(codes, packed), by_hand)
        errors.append(np.linalg.norm(codec.decode(codes, packed) - sample[:50], axis=1).mean())
        for normalize in (False, True):  # the search kernel reads back the same vectors
            codec.normalize = normalize
            offsets = np.asarray([0, 20, 50], np.int64)
            kernel, starts = _decompress(
                np.asarray([1, 0], np.int32), offsets, codes, packed, codec.centroids, codec.byte_table(), normalize
            )
            np.testing.assert_allclose(kernel, codec.decode(codes, packed)[np.r_[20:50, 0:20]], rtol=1e-5, atol=1e-6)
            assert starts.tolist() == [0, 30, 50]
        codec.normalize = False
    assert errors == sorted(errors, reverse=True)  # more bits, closer vectors
    assert errors[-1] < 0.02 * np.linalg.norm(sample[:50], axis=1).mean()  # 256 levels: nearly the vectors


def test_factory_settings_are_checked():
    assert CodecSettings.parse("compressed,bits=4,centroids=64") == CodecSettings(bits=4, centroids=64)
    for bad in ("compressed,bits=3", "compressed,nbits=2", "compressed,bits=", "compressedx", "compressed,sample=0"):
        with pytest.raises(ConfigError):
            CodecSettings.parse(bad)


def test_recall_against_exact_maxsim_and_the_same_runs_at_1_2_4_shards(generated):
    directory, doc_ids, docs, queries = generated
    expected = exact_top(docs, doc_ids, queries)
    runs = {}
    for shards in (1, 2, 4):
        manifest = build_index(
            directory / "enc", directory / f"idx{shards}", num_shards=shards, factory="compressed", in_process=True
        )
        assert manifest["codec"]["centroids"] == default_centroids(sum(map(len, docs))) == 2048
        assert manifest["documents"] == 2000
        runs[shards] = search_index(directory / f"idx{shards}", queries)

    def recall(run: SearchResult) -> float:
        return float(np.mean([len(set(got) & set(want)) / K for got, want in zip(run.doc_ids, expected)]))

    assert recall(runs[1]) >= 0.9, recall(runs[1])  # 0.93 when written (2 bits)
    build_index(directory / "enc", directory / "idx-4bit", factory="compressed,bits=4", in_process=True)
    assert recall(search_index(directory / "idx-4bit", queries)) >= max(0.95, recall(runs[1]))  # 0.9575
    for shards in (2, 4):
        assert runs[shards].doc_ids == runs[1].doc_ids
        np.testing.assert_allclose(runs[shards].scores, runs[1].scores, rtol=1e-6)
    # Per-shard budgets would differ: a small budget at 4 shards then shows what the merge prevents.
    small = {s: search_index(directory / f"idx{s}", queries, ndocs=12) for s in (1, 4)}
    assert small[4].doc_ids == small[1].doc_ids
    index = CompressedMultiVectorShard(directory / "idx4" / "shard-0000", ndocs=12)
    assert index.search(queries, K).width == 12


def test_memory_per_token_and_manifest_round_trip(generated):
    """Built files are plain .npy/.json/.parquet with checksums (tampering: tests/test_integrity.py);
    bytes per token at 2 bits stay within 4 (id) + D/4 (residuals) + 4 (one document-list entry
    at most)."""
    directory, _, docs, queries = generated
    index_dir = directory / "idx2"
    manifest = read_index_manifest(index_dir)
    tokens = sum(len(d) for d in docs)
    for shard in manifest["shards"]:
        names = set(shard["files"])
        assert names >= {"codes.npy", "residuals.npy", "ivf_docs.npy", "ivf_offsets.npy", "centroids.npy", "meta.json"}
        assert all(n.endswith((".npy", ".json", ".parquet")) for n in names)
        verify_files(index_dir / shard["dir"], shard["files"])
    per_token = (
        sum(
            (index_dir / s["dir"] / name).stat().st_size
            for s in manifest["shards"]
            for name in ("codes.npy", "residuals.npy", "ivf_docs.npy")
        )
        / tokens
    )
    assert per_token <= 4 + DIM * 2 / 8 + 4 + 0.1


def test_options_and_budget_checks(generated):
    directory, *_ = generated
    with pytest.raises(ConfigError, match=r"shard_options \['candidates_per_token'\] do not apply"):
        load_shard(directory / "idx1" / "shard-0000", candidates_per_token=4)
    with pytest.raises(ValueError, match="nprobe and ndocs must be >= 1"):
        load_shard(directory / "idx1" / "shard-0000", nprobe=0)
    with pytest.raises(ConfigError, match="not a compressed multi-vector index|expected name=integer"):
        build_index(directory / "enc", directory / "bad", factory="compressed,bits=two", in_process=True)
