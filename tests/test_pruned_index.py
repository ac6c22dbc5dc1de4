"""The pruned (approximate) sparse index: at its most exact setting it returns the exact index's run
(the sample collection and a generated 10k collection), at its defaults recall against exact stays
high and runs are identical at 1/2/4 shards, the estimated (Seismic) search trades recall for
fewer blocks by its heap factor, and the index round-trips through its manifest."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rayir.encode.formats import SCHEMAS
from rayir.errors import ConfigError
from rayir.index import QueryBatch, build_index, load_shard
from rayir.index.manifest import read_index_manifest
from rayir.index.pruned import PrunedSparseShard, PruningSettings
from rayir.integrity import verify_files
from rayir.serve.results import SearchResult
from tests.conftest import save_tiny_mlm, search_index

VOCAB = 5000
K = 10
EXACT = {"query_terms": 0}


@pytest.fixture(scope="module")
def sparse_mlm_dir(tmp_path_factory, bert_tokenizer):
    """The tiny random MLM with its output bias lowered so that a sample document keeps about 1,900
    of the 30,522 terms, as a trained SPLADE model keeps few (the plain random one keeps nearly all,
    and building a pruned index over 30 fully dense rows takes a minute)."""
    return save_tiny_mlm(tmp_path_factory.mktemp("sparse-mlm"), bert_tokenizer, output_bias=-0.3)


def generated_sparse(documents: int, seed: int = 0) -> tuple[list[str], list[tuple[np.ndarray, np.ndarray]]]:
    """SPLADE-shaped vectors: a document draws 30-120 terms, 60% from its 2 topics (50 terms
    each, out of 80 topics) and 40% from a Zipf-like background over the whole vocabulary (so a
    few terms are in most documents); weights are log-normal, topic terms heavier."""
    rng = np.random.default_rng(seed)
    topics = rng.permutation(VOCAB)[: 80 * 50].reshape(80, 50)
    background = 1 / np.arange(1, VOCAB + 1) ** 0.9
    background /= background.sum()
    ids, docs = [], []
    for number in range(documents):
        length = int(rng.integers(30, 121))
        own = topics[rng.choice(80, 2, replace=False)].reshape(-1)
        picked = np.where(rng.random(length) < 0.6, rng.choice(own, length), rng.choice(VOCAB, length, p=background))
        terms, first = np.unique(picked, return_index=True)
        topical = np.isin(terms, own)
        weights = rng.lognormal(np.where(topical, 0.0, -0.8), 0.5).astype(np.float32)
        ids.append(f"s{number:05d}")
        docs.append((terms.astype(np.int32), weights))
    return ids, docs


def generated_queries(docs, count: int, seed: int = 1) -> QueryBatch:
    """Queries of 5-25 terms of one document each, weights jittered, term ids ascending."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        terms, weights = docs[rng.integers(len(docs))]
        chosen = np.sort(rng.choice(len(terms), min(len(terms), int(rng.integers(5, 26))), replace=False))
        rows.append((terms[chosen], (weights[chosen] * rng.lognormal(0, 0.3, len(chosen))).astype(np.float32)))
    return QueryBatch.from_sparse_rows(rows)


def write_sparse_embeddings(directory, doc_ids, docs, per_file: int = 1500) -> None:
    """A sparse embeddings directory (the encoder's Parquet schema and manifest) of ``docs``."""
    from rayir.atomic import sha256_file

    (directory / "embeddings").mkdir(parents=True)
    shards = []
    for number, start in enumerate(range(0, len(docs), per_file)):
        part = docs[start : start + per_file]
        table = pa.Table.from_arrays(
            [
                pa.array(doc_ids[start : start + per_file]),
                pa.array([t for t, _ in part], pa.list_(pa.int32())),
                pa.array([w for _, w in part], pa.list_(pa.float32())),
            ],
            schema=SCHEMAS["sparse"],
        )
        path = directory / "embeddings" / f"part-{number:05d}.parquet"
        pq.write_table(table, path)
        shards.append({"file": f"embeddings/{path.name}", "rows": table.num_rows, "sha256": sha256_file(path)})
    settings = {"model": "generated", "model_fingerprint": "generated", "config_overrides": {}, "precision": "float32"}
    manifest = {
        "format_version": 2,
        "kind": "embeddings",
        "mode": "sparse",
        "dim": VOCAB,
        "documents": len(docs),
        "shards": shards,
        "settings": settings,
        "model_config": {"mode": "sparse"},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))


def recall(run: SearchResult, reference: SearchResult) -> float:
    return float(np.mean([len(set(a) & set(b)) / max(len(b), 1) for a, b in zip(run.doc_ids, reference.doc_ids)]))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pruned")
    doc_ids, docs = generated_sparse(10_000)
    write_sparse_embeddings(directory / "enc", doc_ids, docs)
    build_index(directory / "enc", directory / "exact", factory="inverted", in_process=True)
    return directory, doc_ids, docs, generated_queries(docs, 60)


def test_factory_settings_are_checked():
    assert PruningSettings.parse("pruned,postings=300") == PruningSettings(postings=300)
    assert PruningSettings.parse("pruned,block=8,energy=20") == PruningSettings(block=8, energy=20)
    for bad in (
        "pruned,postings=-1",
        "pruned,lists=3",
        "pruned,postings=",
        "prunedx",
        "pruned,block=0",
        "pruned,energy=0",
        "pruned,energy=101",
        "pruned,summary=32",
    ):
        with pytest.raises(ConfigError):
            PruningSettings.parse(bad)


def test_most_exact_setting_equals_the_exact_index_on_a_generated_collection(generated):
    directory, _, _, queries = generated
    build_index(directory / "enc", directory / "all", factory="pruned,postings=0", num_shards=3, in_process=True)
    for k in (10, 100):
        exact, pruned = (
            search_index(directory / "exact", queries, k),
            search_index(directory / "all", queries, k, **EXACT),
        )
        assert pruned.doc_ids == exact.doc_ids
        np.testing.assert_array_equal(pruned.scores, exact.scores)  # bit for bit


def test_defaults_recall_and_the_same_runs_at_1_2_4_shards(generated):
    directory, _, _, queries = generated
    exact = search_index(directory / "exact", queries)
    runs = {}
    for shards in (1, 2, 4):
        manifest = build_index(
            directory / "enc",
            directory / f"p{shards}",
            factory="pruned,postings=400",
            num_shards=shards,
            in_process=True,
        )
        assert manifest["pruning"]["postings"] == 400 and manifest["pruning"]["terms_cut"] > 0
        assert all(s["list_postings"] > 2 * s["blocks"] > 0 for s in manifest["shards"])
        runs[shards] = search_index(directory / f"p{shards}", queries)
    assert recall(runs[1], exact) >= 0.95, recall(runs[1], exact)
    for shards in (2, 4):
        assert runs[shards].doc_ids == runs[1].doc_ids
        np.testing.assert_array_equal(runs[shards].scores, runs[1].scores)
    # Fewer lists lose recall, and still give the same run at any shard count: the answer is the
    # exact top-k of the documents in those lists, however the shards cut them into blocks.
    narrow = {s: search_index(directory / f"p{s}", queries, query_terms=2) for s in (1, 4)}
    assert narrow[4].doc_ids == narrow[1].doc_ids
    assert recall(narrow[1], exact) < recall(runs[1], exact)
    # The estimated search: a smaller heap factor reads more blocks and finds more of the exact
    # top-10, never more than the bounded search of the same lists.
    estimated = {h: search_index(directory / "p1", queries, heap_factor=h) for h in (1.0, 0.8, 0.5)}
    recalls = [recall(estimated[h], exact) for h in (1.0, 0.8, 0.5)]
    assert recalls[0] < recalls[2] <= recall(runs[1], exact), recalls
    assert recalls[1] >= 0.9, recalls
    # Every score returned is the document's exact score.
    wide = search_index(directory / "exact", queries, 1000)
    exact_scores = {
        (row, d): s for row, (ids, sc) in enumerate(zip(wide.doc_ids, wide.scores)) for d, s in zip(ids, sc)
    }
    for run in (narrow[1], estimated[1.0]):
        for row, (ids, scores) in enumerate(zip(run.doc_ids, run.scores)):
            assert all(exact_scores[(row, d)] == s for d, s in zip(ids, scores))


def block_summaries_of(shard: PrunedSparseShard) -> dict[int, dict[int, float]]:
    """Every block's summary as ``{block: {term: dequantised value}}``, read back from the shard's
    per-list inverted layout."""
    block_indptr = shard.blocks[0]
    term_indptr, summary_terms, entry_indptr, entry_blocks, entry_values = shard.summaries
    summaries: dict[int, dict[int, float]] = {b: {} for b in range(len(shard.block_scales))}
    for t in range(len(term_indptr) - 1):
        for position in range(term_indptr[t], term_indptr[t + 1]):
            for e in range(entry_indptr[position], entry_indptr[position + 1]):
                block = block_indptr[t] + int(entry_blocks[e])
                summaries[block][int(summary_terms[position])] = float(entry_values[e]) * shard.block_scales[block]
    return summaries


def test_block_summaries_keep_their_energy_and_bound_every_member(generated):
    """Against each block's maximum vector computed here from its members: the summary keeps its
    largest coordinates up to 40% of its mass, at most 512 (8-bit values rounded up, never below), ``rest`` is
    the largest coordinate left out, and the bound (summary score plus ``rest`` times the query
    weight not covered) is never below a member's exact score, for every block a query reads."""
    directory, _, _, queries = generated
    shard = PrunedSparseShard(directory / "p2" / "shard-0001")
    block_indptr, block_starts, list_docs = shard.blocks
    doc_indptr, doc_terms, doc_weights = shard.forward
    summaries = block_summaries_of(shard)
    assert (np.diff(block_starts) <= 16).all()
    maxima: dict[int, np.ndarray] = {}
    for block in range(0, len(block_starts) - 1, 7):
        maximum = np.zeros(VOCAB, np.float32)
        for d in list_docs[block_starts[block] : block_starts[block + 1]]:
            span = slice(doc_indptr[d], doc_indptr[d + 1])
            np.maximum.at(maximum, doc_terms[span].astype(np.int64), doc_weights[span])
        maxima[block] = maximum
        kept = np.array(sorted(summaries[block]))
        values = np.array([summaries[block][t] for t in kept])
        assert (values >= maximum[kept] * (1 - 1e-6)).all()
        assert (values <= maximum[kept] + maximum.max() / 255 * 1.001).all()
        left_out = np.delete(maximum, kept)
        assert shard.block_rest[block] == left_out.max(initial=0)
        assert len(kept) <= 512 and 0.4 * maximum.sum() > maximum[kept].sum() - maximum[kept].min()
        assert maximum[kept].sum() >= 0.4 * maximum.sum() or len(kept) == 512
        assert maximum[kept].min() >= left_out.max(initial=0)
    checked = 0
    for row in range(10):
        lo, hi = queries.indptr[row], queries.indptr[row + 1]
        dense = np.zeros(VOCAB, np.float64)
        dense[queries.terms[lo:hi]] = queries.weights[lo:hi]
        for t in queries.terms[lo:hi]:
            for block in range(block_indptr[t], block_indptr[t + 1]):
                kept = np.array(sorted(summaries[block]), np.int64)
                values = np.array([summaries[block][term] for term in kept])
                bound = dense[kept] @ values + shard.block_rest[block] * (dense.sum() - dense[kept].sum())
                for d in list_docs[block_starts[block] : block_starts[block + 1]]:
                    span = slice(doc_indptr[d], doc_indptr[d + 1])
                    assert dense[doc_terms[span]] @ doc_weights[span] <= bound + 1e-9
                    checked += 1
    assert checked > 1000 and len(maxima) > 100


def test_lists_keep_each_terms_best_postings_index_wide(generated):
    """The cut-off is the term's 400th largest weight over all documents, whatever the shard."""
    directory, _, docs, _ = generated
    by_term: dict[int, list[float]] = {}
    for terms, weights in docs:
        for t, w in zip(terms.tolist(), weights.tolist()):
            by_term.setdefault(t, []).append(w)
    manifest = read_index_manifest(directory / "p4")
    kept: dict[int, int] = {}
    for shard in manifest["shards"]:
        block_indptr, block_starts = PrunedSparseShard(directory / "p4" / shard["dir"]).blocks[:2]
        for t, n in enumerate(np.diff(block_starts[block_indptr])):
            kept[t] = kept.get(t, 0) + int(n)
        cutoffs = np.load(directory / "p4" / shard["dir"] / "cutoffs.npy")
    for t, weights in by_term.items():
        ranked = sorted(weights, reverse=True)
        want = np.float32(ranked[399]) if len(ranked) >= 400 else 0
        assert cutoffs[t] == want
        assert kept[t] == sum(w >= want for w in ranked)


def test_manifest_round_trip_and_plain_files(generated):
    directory, _, _, queries = generated
    manifest = read_index_manifest(directory / "p2")
    for shard in manifest["shards"]:
        assert all(name.endswith((".npy", ".json", ".parquet")) for name in shard["files"])
        verify_files(directory / "p2" / shard["dir"], shard["files"])
        assert json.loads((directory / "p2" / shard["dir"] / "meta.json").read_text())["type"] == "pruned_sparse"
    with pytest.raises(ConfigError, match="query_terms"):
        load_shard(directory / "p2" / "shard-0000", nprobe=3)
    with pytest.raises(ValueError, match="non-negative"):
        load_shard(directory / "p2" / "shard-0000").search(
            QueryBatch.from_sparse_rows([(np.array([1], np.int32), np.array([-1.0], np.float32))]), K
        )


def test_other_options_on_a_loaded_shard_search_as_a_shard_loaded_with_them(generated):
    directory, _, _, queries = generated
    path = directory / "p2" / "shard-0000"
    loaded = load_shard(path)
    for options in ({"query_terms": 2, "heap_factor": 0.0}, {"query_terms": 5, "heap_factor": 0.8}):
        shared = loaded.with_options(**options).search(queries, K)
        fresh = load_shard(path, **options).search(queries, K)
        np.testing.assert_array_equal(shared.ordinals, fresh.ordinals)
        np.testing.assert_array_equal(shared.scores, fresh.scores)
    assert (loaded.query_terms, loaded.heap_factor) == (10, 0.0)  # the loaded shard keeps its own
    with pytest.raises(ValueError, match="heap_factor"):
        loaded.with_options(10, 1.5)


def test_jobs_on_the_sample_at_the_most_exact_setting_equal_the_exact_index(
    sparse_mlm_dir, sample_collection, tmp_path
):
    """``rayir index --factory pruned,postings=0`` + ``search`` with every query term and every
    document reached writes the exact index's run; at the defaults the run file holds the same
    number of queries and exact scores."""
    from rayir.cli import index, search
    from rayir.data import read_run
    from rayir.options import ServingOptions

    runs = {}
    for name, factory, options in (
        ("exact", "Flat", None),
        ("pruned", "pruned,postings=0", EXACT),
        ("defaults", "pruned", None),
    ):
        index(str(sample_collection), str(tmp_path / name), str(sparse_mlm_dir), factory=factory, in_process=True)
        manifest = read_index_manifest(tmp_path / name / "index")
        assert manifest["factory"] == ("inverted" if name == "exact" else factory)
        search(
            str(tmp_path / name / "index"),
            str(sample_collection),
            str(tmp_path / f"{name}.run"),
            k=10,
            split="test",
            serving=ServingOptions(shard_options=options),
            in_process=True,
        )
        runs[name] = read_run(tmp_path / f"{name}.run")
    assert len(runs["exact"]) == 8 and all(len(docs) == 10 for docs in runs["exact"].values())
    assert runs["pruned"] == runs["exact"]  # ids and scores as written
    assert runs["defaults"] == runs["exact"]  # 30 documents: no list is long enough to cut
