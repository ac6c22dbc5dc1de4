"""Sharded indexes return exactly the brute-force top-k of the model's own scores."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet  # noqa: F401 - pa.parquet
import pytest

from rayir import BiEncoderModule
from rayir.data import read_docs, read_queries
from rayir.encode import encode_corpus
from rayir.index import HitMatrix, QueryBatch, build_index, load_shard, merge_hits
from rayir.index.manifest import read_doc_table
from rayir.lexical.bm25 import BM25Model
from rayir.serve.results import SearchResult

K = 10
SETTINGS = {
    "dense": {"similarity": "cosine"},
    "multi_vector": {
        "mode": "multi_vector",
        "pooling": None,
        "embedding_dim": 8,
        "normalize": True,
        "query_expansion": True,
        "query_max_length": 12,
        "doc_max_length": 48,
    },
    "sparse": {},
}


@pytest.fixture(scope="module")
def texts(sample_collection):
    docs = list(read_docs(sample_collection))
    queries = list(read_queries(sample_collection))
    return [d.doc_id for d in docs], [d.text for d in docs], [q.text for q in queries]


def search_all(index_dir, manifest, queries: QueryBatch, k=K, **options) -> SearchResult:
    """Every shard searched in this process and merged; ``.doc_ids`` / ``.scores`` per query."""
    shards = [load_shard(index_dir / s["dir"], **options) for s in manifest["shards"]]
    merged = merge_hits([s.search(queries, k) for s in shards], k)
    return SearchResult([str(i) for i in range(len(queries))], merged, read_doc_table(index_dir))


def in_id_order(doc_ids: list[str]) -> tuple[np.ndarray, pa.StringArray]:
    """Each id's ordinal (its rank in sorted order) and the sorted table, as an index build assigns them."""
    table = sorted(doc_ids)
    rank = {d: i for i, d in enumerate(table)}
    return np.asarray([rank[d] for d in doc_ids], np.int64), pa.array(table, pa.string())


def as_ids(hits: HitMatrix, table: pa.StringArray) -> SearchResult:
    return SearchResult([str(i) for i in range(len(hits))], hits, table)


def brute_force(scores: np.ndarray, doc_ids: list[str], k=K):
    ranked = [sorted(zip(row.tolist(), doc_ids), key=lambda x: (-x[0], x[1]))[:k] for row in scores]
    return [[d for _, d in r] for r in ranked], [[s for s, _ in r] for r in ranked]


@pytest.mark.parametrize("kind", ["dense", "multi_vector", "sparse"])
def test_sharded_search_equals_brute_force(
    kind, ray_session, sample_collection, tiny_bert_dir, tiny_mlm_dir, texts, tmp_path
):
    model = tiny_mlm_dir if kind == "sparse" else tiny_bert_dir
    doc_ids, doc_texts, query_texts = texts
    encode_corpus(
        str(model), sample_collection, tmp_path / "enc", docs_per_shard=5, model_config=SETTINGS[kind], in_process=True
    )
    module = BiEncoderModule(model, **SETTINGS[kind])
    q = module.encode_queries(query_texts)
    expected_ids, expected_scores = brute_force(
        module.model.score_matrix(q, module.encode_docs(doc_texts)).numpy(), doc_ids
    )
    batch = QueryBatch.from_dense(q.vectors.numpy(), module.config.mode, None if q.mask is None else q.mask.numpy())
    for shards in (1, 3):
        manifest = build_index(tmp_path / "enc", tmp_path / f"idx{shards}", num_shards=shards)
        options = {"candidates_per_token": 1000} if kind == "multi_vector" else {}
        hits = search_all(tmp_path / f"idx{shards}", manifest, batch, **options)
        if kind == "sparse":  # only documents sharing a term are hits
            expected = [[d for d, s in zip(i, sc) if s > 0] for i, sc in zip(expected_ids, expected_scores)]
            assert hits.doc_ids == expected
        else:
            assert hits.doc_ids == expected_ids
        for got, want in zip(hits.scores, expected_scores):
            np.testing.assert_allclose(got, want[: len(got)], atol=1e-5, rtol=1e-5)


def test_bm25_index_equals_reference_scores(ray_session, sample_collection, texts, tmp_path):
    doc_ids, doc_texts, query_texts = texts
    bm25 = {"k1": 1.2, "b": 0.75}
    encode_corpus("bm25", sample_collection, tmp_path / "enc", docs_per_shard=4, model_config=bm25, in_process=True)
    model = BM25Model(tmp_path / "enc" / "bm25")
    assert model.config["documents"] == 30
    scores = np.asarray([[model.score(q, d) for d in doc_texts] for q in query_texts])
    expected_ids, expected_scores = brute_force(scores, doc_ids)
    manifest = build_index(tmp_path / "enc", tmp_path / "idx", num_shards=2)
    hits = search_all(
        tmp_path / "idx", manifest, QueryBatch.from_sparse_rows([model.encode_query(q) for q in query_texts])
    )
    for got_ids, got_scores, want_ids, want_scores in zip(hits.doc_ids, hits.scores, expected_ids, expected_scores):
        positive = [d for d, s in zip(want_ids, want_scores) if s > 0]
        assert got_ids == positive
        np.testing.assert_allclose(got_scores, want_scores[: len(got_ids)], atol=1e-4)


def test_bm25_weights_by_hand():
    """One document, worked through the Lucene formula."""
    import math
    from collections import Counter

    from rayir.lexical.analyzer import Analyzer

    analyze = Analyzer()
    assert analyze("The Proteins' folding is running") == ["protein", "fold", "run"]
    df = Counter({"protein": 1, "fold": 2, "run": 1})
    directory = BM25Model.save(__import__("tempfile").mkdtemp(), df, total_length=8, documents=2, k1=0.9, b=0.4)
    model = BM25Model(directory)
    ids, weights = model.encode_doc("protein folding protein")
    terms = {t: i for i, t in enumerate(sorted(df))}
    idf = lambda n: math.log(1 + (2 - n + 0.5) / (n + 0.5))  # noqa: E731
    norm = 0.9 * (1 - 0.4 + 0.4 * 3 / 4)
    expected = {terms["protein"]: idf(1) * 2 * 1.9 / (2 + norm), terms["fold"]: idf(2) * 1 * 1.9 / (1 + norm)}
    assert dict(zip(ids.tolist(), weights.tolist())) == pytest.approx(expected)


def test_bm25_analyzer_equals_a_plain_regex_reference(sample_collection):
    """The batched analyzer (byte-table split for ASCII, Arrow counting) against the textbook
    steps in plain Python, on the sample corpus plus awkward cases."""
    import re
    from collections import Counter

    import Stemmer

    from rayir.lexical.analyzer import STOPWORDS, Analyzer, analyse_texts

    stemmer = Stemmer.Stemmer("porter")

    def reference(text):
        words = re.findall(r"\w+", re.sub(r"'s\b", "", text.lower()))
        return stemmer.stemWords([w for w in words if w not in STOPWORDS])

    texts = [d.text for d in read_docs(sample_collection)] + [
        "",
        "The THE the",
        "John's car; JOHN'S cars' x's_y it's",
        "Café naïve ΑΒΓ straße 12ab_3 — dash",
        "a\tb\nc",
        "ﬁne ligature İstanbul",
        "under_score __ 42",
    ]
    analyze = Analyzer()
    for text in texts:
        assert analyze(text) == reference(text), text
    table = analyse_texts(texts)
    for row, text in zip(table.to_pylist(), texts):
        expected = Counter(reference(text))
        assert dict(zip(row["terms"], row["counts"])) == expected and row["terms"] == sorted(expected)
        assert row["length"] == sum(expected.values())


@pytest.mark.parametrize("factory", ["IVF4,Flat", "HNSW16", "PQ4x4", "IVF2,PQ4x4"])
def test_approximate_factories_build_and_search(
    factory, ray_session, sample_collection, tiny_bert_dir, texts, tmp_path
):
    _, _, query_texts = texts
    encode_corpus(str(tiny_bert_dir), sample_collection, tmp_path / "enc", docs_per_shard=10, in_process=True)
    manifest = build_index(tmp_path / "enc", tmp_path / "idx", num_shards=1, factory=factory, in_process=True)
    assert manifest["factory"] == factory and manifest["documents"] == 30
    batch = QueryBatch.from_dense(BiEncoderModule(tiny_bert_dir).encode_queries(query_texts).vectors.numpy(), "dense")
    options = {"nprobe": int(factory[3])} if factory.startswith("IVF") else {}  # probe every list
    hits = search_all(tmp_path / "idx", manifest, batch, k=5, **options)
    assert all(len(ids) == 5 and len(set(ids)) == 5 for ids in hits.doc_ids)
    if factory == "IVF4,Flat":  # probing every list of a flat IVF is exact
        flat = build_index(tmp_path / "enc", tmp_path / "flat", num_shards=1, in_process=True)
        assert hits.doc_ids == search_all(tmp_path / "flat", flat, batch, k=5).doc_ids


def test_index_refuses_to_mix(sample_collection, tiny_bert_dir, tmp_path):
    encode_corpus(str(tiny_bert_dir), sample_collection, tmp_path / "enc", docs_per_shard=10, in_process=True)
    build_index(tmp_path / "enc", tmp_path / "idx", in_process=True)
    with pytest.raises(FileExistsError):
        build_index(tmp_path / "enc", tmp_path / "idx")
    with pytest.raises(ValueError, match="num_shards=31 but the embeddings hold only 30 documents"):
        build_index(tmp_path / "enc", tmp_path / "idx2", num_shards=31)


def test_index_shards_split_rows_not_embedding_files(sample_collection, tiny_bert_dir, texts, tmp_path):
    """3 embedding files (10 rows each) give 4 or 30 index shards of near-equal rows, and the same hits."""
    encode_corpus(str(tiny_bert_dir), sample_collection, tmp_path / "enc", docs_per_shard=10, in_process=True)
    batch = QueryBatch.from_dense(BiEncoderModule(tiny_bert_dir).encode_queries(texts[2]).vectors.numpy(), "dense")
    one = build_index(tmp_path / "enc", tmp_path / "one", in_process=True)
    expected = search_all(tmp_path / "one", one, batch)
    for num_shards, sizes in [(4, [8, 7, 7, 8]), (30, [1] * 30)]:
        manifest = build_index(tmp_path / "enc", tmp_path / f"by{num_shards}", num_shards=num_shards, in_process=True)
        assert [s["documents"] for s in manifest["shards"]] == sizes
        hits = search_all(tmp_path / f"by{num_shards}", manifest, batch)
        assert hits.doc_ids == expected.doc_ids
        np.testing.assert_allclose(hits.scores, expected.scores, rtol=1e-6)


def sparse_shard_of(dense_docs: np.ndarray, directory, **options):
    """A sparse shard of a dense ``(documents, vocab)`` weight matrix, doc ids in an order other
    than positions (so ties by doc id are not ties by position); also the ids and their table."""
    from rayir.index.sparse import SparseShard, build_sparse_shard

    num_docs, vocab = dense_docs.shape
    shuffled = np.random.default_rng(0).permutation(num_docs)
    doc_ids = [f"d{shuffled[i]:05d}-{i}" for i in range(num_docs)]
    rows, terms = np.nonzero(dense_docs)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=num_docs))])
    ordinals, table = in_id_order(doc_ids)
    build_sparse_shard(indptr, terms, dense_docs[rows, terms], doc_ids, ordinals, directory, vocab)
    return SparseShard(directory, **options), doc_ids, table


def sparse_queries(dense_queries: np.ndarray) -> QueryBatch:
    q_rows, q_terms = np.nonzero(dense_queries)
    return QueryBatch(
        indptr=np.concatenate([[0], np.cumsum(np.bincount(q_rows, minlength=len(dense_queries)))]),
        terms=q_terms.astype(np.int32),
        weights=dense_queries[q_rows, q_terms],
    )


def assert_sparse_search_is_brute_force(shard, doc_ids, table, dense_docs, dense_queries, k) -> np.ndarray:
    """The shard's top ``k`` equals dense numpy scoring (ties by doc id); returns which rows tie."""
    hits = as_ids(shard.search(sparse_queries(dense_queries), k), table)
    expected_ids, expected_scores = brute_force(dense_queries @ dense_docs.T, doc_ids, k)
    for row in range(len(dense_queries)):
        want = [(d, s) for d, s in zip(expected_ids[row], expected_scores[row]) if s > 0]
        assert hits.doc_ids[row] == [d for d, _ in want], row
        np.testing.assert_array_equal(hits.scores[row], np.asarray([s for _, s in want], np.float32))
    return np.array([len(set(scores)) < len(scores) for scores in expected_scores])


@pytest.mark.parametrize("dense_term_fraction", [0.1, 0.25, 2.0])  # most / some / no terms as dense columns
def test_sparse_kernel_equals_brute_force_with_ties(dense_term_fraction, tmp_path):
    """The compiled accumulator against dense numpy scoring, on weights coarse enough that many
    documents tie (inside the top k and at the k-th place): ties must go by doc id."""
    rng = np.random.default_rng(7)
    num_docs, vocab, k = 300, 40, 10
    density = np.linspace(0.02, 0.4, vocab)  # term document frequencies on both sides of the dense cut
    dense_docs = np.where(rng.random((num_docs, vocab)) < density, rng.integers(1, 4, (num_docs, vocab)), 0).astype(
        np.float32
    )
    shard, doc_ids, table = sparse_shard_of(dense_docs, tmp_path / "shard", dense_term_fraction=dense_term_fraction)
    assert (shard.dense_row >= 0).any() == (dense_term_fraction < 1)
    dense_queries = np.where(rng.random((50, vocab)) < 0.1, rng.integers(1, 3, (50, vocab)), 0).astype(np.float32)
    dense_queries[0] = 0  # a query with no terms: no hits
    tied = assert_sparse_search_is_brute_force(shard, doc_ids, table, dense_docs, dense_queries, k)
    assert tied.sum() > 10  # the data really exercises tie-breaking
    assert as_ids(shard.search(sparse_queries(dense_queries[:1]), k), table).doc_ids[0] == []


def test_queries_with_few_postings_score_only_the_documents_they_touch_and_equal_brute_force(tmp_path):
    """Rare-term queries (postings under the kernel's share of the shard) take the touched-documents
    path, common-term queries the full scan; both equal dense numpy scoring, ties by doc id."""
    from rayir.index.sparse_kernel import SPARSE_QUERY_SHARE

    rng = np.random.default_rng(3)
    num_docs, vocab, k = 2000, 60, 10
    density = np.geomspace(0.001, 0.3, vocab)  # from 2 to 600 documents per term
    dense_docs = np.where(rng.random((num_docs, vocab)) < density, rng.integers(1, 4, (num_docs, vocab)), 0).astype(
        np.float32
    )
    shard, doc_ids, table = sparse_shard_of(dense_docs, tmp_path / "shard", dense_term_fraction=2.0)
    queries = np.zeros((80, vocab), np.float32)
    for row in range(80):  # rows 0-39 from the 30 rarest terms, 40-79 from any term
        pool = 30 if row < 40 else vocab
        queries[row, rng.choice(pool, rng.integers(1, 4), replace=False)] = rng.integers(1, 3)
    postings = np.diff(shard.postings.indptr)
    few = np.array([postings[np.flatnonzero(q)].sum() <= num_docs * SPARSE_QUERY_SHARE for q in queries])
    assert 20 < few.sum() < 70  # both paths are exercised
    tied = assert_sparse_search_is_brute_force(shard, doc_ids, table, dense_docs, queries, k)
    assert (tied & few).sum() > 5  # ties on the touched path too


def test_sparse_dense_columns_give_bitwise_identical_scores(tmp_path):
    """Real-valued weights: holding common terms as dense columns adds the same float32 terms in the
    same order, so scores equal the postings-only layout bit for bit."""
    from rayir.index.sparse import SparseShard, build_sparse_shard

    rng = np.random.default_rng(11)
    num_docs, vocab = 500, 60
    density = np.linspace(0.01, 0.6, vocab)
    docs = np.where(rng.random((num_docs, vocab)) < density, rng.random((num_docs, vocab)), 0).astype(np.float32)
    rows, terms = np.nonzero(docs)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=num_docs))])
    ordinals, _ = in_id_order([f"d{i}" for i in range(num_docs)])
    build_sparse_shard(
        indptr, terms, docs[rows, terms], [f"d{i}" for i in range(num_docs)], ordinals, tmp_path / "s", vocab
    )
    queries = np.where(rng.random((40, vocab)) < 0.3, rng.random((40, vocab)), 0).astype(np.float32)
    q_rows, q_terms = np.nonzero(queries)
    batch = QueryBatch(
        indptr=np.concatenate([[0], np.cumsum(np.bincount(q_rows, minlength=40))]),
        terms=q_terms.astype(np.int32),
        weights=queries[q_rows, q_terms],
    )
    with_columns = SparseShard(tmp_path / "s", dense_term_fraction=0.2)
    postings_only = SparseShard(tmp_path / "s", dense_term_fraction=2.0)
    assert (with_columns.dense_row >= 0).sum() > 10
    a, b = with_columns.search(batch, 20), postings_only.search(batch, 20)
    assert np.array_equal(a.scores, b.scores) and np.array_equal(a.ordinals, b.ordinals)
    assert np.allclose(a.scores[:, 0], (queries @ docs.T).max(1), rtol=1e-5)


def test_merge_of_shard_top_k_equals_global_top_k_with_ties():
    """Per-shard top-k lists (some short, many tied scores) merge into the global top k with ties by
    doc id, compared with sorting everything."""
    from rayir.index.hits import top_k

    rng = np.random.default_rng(3)
    k, shards = 8, 3
    for _ in range(20):
        num_docs = int(rng.integers(5, 40))
        ids = np.asarray([f"doc{int(i):03d}" for i in rng.permutation(1000)[:num_docs]], dtype=object)
        ordinals, table = in_id_order(ids.tolist())
        scores = rng.integers(0, 4, (6, num_docs)).astype(np.float32)  # coarse: ties everywhere
        owner = rng.integers(0, shards, num_docs)
        parts = []
        for shard in range(shards):
            mine = np.flatnonzero(owner == shard)
            part = HitMatrix.empty(len(scores), k)
            for row, row_scores in enumerate(scores):
                order, best = top_k(row_scores[mine], k, ordinals[mine])
                part.scores[row, : len(order)], part.ordinals[row, : len(order)] = best, ordinals[mine][order]
                part.counts[row] = len(order)
            parts.append(part)
        merged = as_ids(merge_hits(parts, k), table)
        expected_ids, expected_scores = brute_force(scores, ids.tolist(), k)
        assert merged.doc_ids == expected_ids
        assert [s.tolist() for s in merged.scores] == expected_scores


def test_ordinals_follow_code_point_order_for_any_doc_id(tmp_path):
    """Ordinals come from Arrow's sort of the ids: non-ASCII ids and ids with a NUL sort as Python
    sorts them, come back unchanged, and merge in id order with ties."""
    from rayir.atomic import sha256_file
    from rayir.index.ordinals import ordinals_of, write_doc_table

    ids = ["b", "a", "é-doc", "ä", "a\0"]
    pa.parquet.write_table(pa.table({"doc_id": pa.array(ids)}), tmp_path / "part.parquet")
    shard = {"file": "part.parquet", "sha256": sha256_file(tmp_path / "part.parquet")}
    assert write_doc_table(str(tmp_path), [shard], str(tmp_path)) == 5
    table = read_doc_table(tmp_path)
    assert table.to_pylist() == sorted(ids)
    ordinals = ordinals_of(pa.array(ids), tmp_path)
    parts = [
        HitMatrix(np.asarray([scores], np.float32), ordinals[None, positions], np.asarray([len(positions)]))
        for scores, positions in (([2.0, 1.0], [0, 1]), ([2.0, 1.0], [2, 3]), ([2.0], [4]))
    ]
    merged = as_ids(merge_hits(parts, 4), table)
    assert merged.doc_ids == [["a\0", "b", "é-doc", "a"]]
    assert merged.scores[0].tolist() == [2.0, 2.0, 2.0, 1.0]


def test_search_options_the_factory_has_no_use_for_are_refused_by_name(tmp_path):
    import faiss

    from rayir.index.dense import DenseShard, build_dense_shard

    vectors = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    doc_ids = [f"d{i}" for i in range(200)]
    ordinals, _ = in_id_order(doc_ids)
    for factory in ("Flat", "HNSW8", "IVF4,Flat"):
        build_dense_shard(vectors, doc_ids, ordinals, tmp_path / factory, factory, normalize=False)
    assert faiss.extract_index_ivf(DenseShard(tmp_path / "IVF4,Flat", nprobe=3).index).nprobe == 3
    assert DenseShard(tmp_path / "HNSW8", ef_search=40).index.hnsw.efSearch == 40
    refused = [
        ("Flat", {"nprobe": 2}, "nprobe applies to IVF"),
        ("Flat", {"ef_search": 8}, "ef_search applies to HNSW"),
        ("HNSW8", {"nprobe": 2}, "factory is 'HNSW8'"),
        ("IVF4,Flat", {"ef_search": 8}, "factory is 'IVF4,Flat'"),
        ("IVF4,Flat", {"nprobe": 0}, "nprobe must be >= 1"),
    ]
    for factory, options, message in refused:
        with pytest.raises(ValueError, match=message):
            DenseShard(tmp_path / factory, **options)


def test_the_index_manifest_is_versioned_and_checked_on_read(sample_collection, tmp_path):
    import json

    from rayir.index.manifest import INDEX_FORMAT_VERSION, read_index_manifest

    encode_corpus("bm25", sample_collection, tmp_path / "enc", docs_per_shard=10, in_process=True)
    build_index(tmp_path / "enc", tmp_path / "idx", in_process=True)
    manifest = read_index_manifest(tmp_path / "idx")
    assert manifest["format_version"] == INDEX_FORMAT_VERSION and manifest["query_encoder"]["files"] == "bm25"
    assert (tmp_path / "idx" / "bm25" / "bm25.json").exists()  # the index's own copy of the statistics
    path = tmp_path / "idx" / "manifest.json"
    path.write_text(json.dumps({**manifest, "format_version": 1}))
    with pytest.raises(ValueError, match="format_version 1"):
        read_index_manifest(tmp_path / "idx")
    path.write_text(json.dumps({**manifest, "kind": "embeddings"}))
    with pytest.raises(ValueError, match="not an index manifest"):
        read_index_manifest(tmp_path / "idx")


def test_default_threads_per_worker_never_exceed_one_node():
    """Two 4-CPU nodes: one worker gets 4 threads (all 8 would never be scheduled), four get 2."""
    from rayir.execution import RayExecutor

    class FakeRay:
        @staticmethod
        def nodes():
            return [
                {"Alive": True, "Resources": {"CPU": 4.0}},
                {"Alive": True, "Resources": {"CPU": 4.0}},
                {"Alive": False, "Resources": {"CPU": 64.0}},
            ]

    ray_executor = object.__new__(RayExecutor)
    ray_executor._ray = FakeRay
    assert [ray_executor.threads_per_worker(n) for n in (1, 2, 4, 16)] == [4, 4, 2, 1]
