"""Sharded search through the coordinator, failure recovery, and re-ranking."""

from __future__ import annotations

import time

import pytest

from rayir.cli import EncodingOptions
from rayir.cli import index as index_stage
from rayir.cli import re_rank as rerank_stage
from rayir.cli import search as search_stage
from rayir.data import read_queries, read_run
from rayir.encode import encode_corpus
from rayir.evaluate import evaluate
from rayir.index import build_index
from rayir.options import ScoringOptions
from rayir.serve.coordinator import Searcher
from rayir.serve.shard_actor import IndexShardActor


@pytest.fixture(scope="module")
def dense_embeddings(ray_session, sample_collection, tiny_bert_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dense")
    encode_corpus(
        str(tiny_bert_dir),
        sample_collection,
        out / "embeddings",
        docs_per_shard=4,
        model_config={"similarity": "cosine"},
        in_process=True,  # the encoding is input here; encoding on Ray has its own tests
    )
    return out


def run_with(index_dir, queries, in_process=False, **kwargs):
    with Searcher(index_dir, in_process=in_process) as searcher:
        return searcher.search(queries, k=10, batch_size=3, **kwargs), searcher


def assert_same_run(a, b):
    assert a.keys() == b.keys()
    for query_id in a:
        assert list(a[query_id]) == list(b[query_id])
        for doc_id, score in a[query_id].items():
            assert b[query_id][doc_id] == pytest.approx(score, abs=1e-5)


@pytest.mark.parametrize("model", ["dense", "bm25"])
def test_one_two_and_four_shards_give_identical_runs(model, dense_embeddings, sample_collection, tmp_path):
    """Runs do not depend on the shard count (in process: Ray runs the same merge, tested below)."""
    if model == "bm25":
        encode_corpus("bm25", sample_collection, tmp_path / "embeddings", docs_per_shard=4, in_process=True)
        embeddings = tmp_path / "embeddings"
    else:
        embeddings = dense_embeddings / "embeddings"
    queries = list(read_queries(sample_collection))
    runs = []
    for shards in (1, 2, 4):
        build_index(embeddings, tmp_path / f"idx{shards}", num_shards=shards, in_process=True)
        runs.append(run_with(tmp_path / f"idx{shards}", queries, in_process=True)[0])
    assert len(runs[0]) == len(queries)
    if model == "dense":  # every document scores, so every ranking is full
        assert all(len(r) == 10 for r in runs[0].values())
    assert_same_run(runs[0], runs[1])
    assert_same_run(runs[0], runs[2])


@pytest.mark.parametrize("model", ["dense", "bm25"])
def test_in_process_pipeline_equals_the_ray_pipeline(model, ray_session, sample_collection, tiny_bert_dir, tmp_path):
    """``in_process=True`` (no Ray) writes the same shards, index and run as the Ray pipeline."""
    import pyarrow.parquet as pq

    name = "bm25" if model == "bm25" else str(tiny_bert_dir)
    queries = list(read_queries(sample_collection))
    runs = {}
    for in_process in (False, True):
        out = tmp_path / ("local" if in_process else "ray")
        result = encode_corpus(name, sample_collection, out / "embeddings", docs_per_shard=7, in_process=in_process)
        assert result.documents == 30
        build_index(out / "embeddings", out / "index", num_shards=2, in_process=in_process)
        with Searcher(out / "index", in_process=in_process) as searcher:
            assert all(isinstance(a, IndexShardActor) for a in searcher.actors) == in_process  # no Ray actors
            runs[in_process] = searcher.search(queries, k=10, batch_size=4)
    for shard in sorted((tmp_path / "ray" / "embeddings" / "embeddings").glob("part-*.parquet")):
        assert pq.read_table(shard).equals(pq.read_table(tmp_path / "local" / "embeddings" / "embeddings" / shard.name))
    assert runs[True] == runs[False]
    with pytest.raises(ValueError, match="num_encoders"):
        encode_corpus(name, sample_collection, tmp_path / "x", num_encoders=2, in_process=True)
    with pytest.raises(ValueError, match="in_process"):
        Searcher(tmp_path / "local" / "index", in_process=True, shard_resources={"index_shard": 1})


@pytest.mark.scenario
@pytest.mark.parametrize("restart", [True, False])
def test_killed_shard_actor_mid_job_gives_identical_run(restart, dense_embeddings, sample_collection, tmp_path):
    import ray

    build_index(dense_embeddings / "embeddings", tmp_path / "idx", num_shards=2)
    queries = list(read_queries(sample_collection))
    reference, _ = run_with(tmp_path / "idx", queries)

    with Searcher(tmp_path / "idx") as searcher:
        killed = []

        def kill_after_first_batch(done, total):
            if not killed:
                ray.kill(searcher.actors[1], no_restart=not restart)
                killed.append(done)

        # One query per batch: 8 batches, more than the 4 kept in flight, so later batches meet the kill.
        run = searcher.search(queries, k=10, batch_size=1, on_batch=kill_after_first_batch)
        assert killed and searcher.restarts >= 1
    assert_same_run(reference, run)


def test_search_job_writes_run_and_metrics(dense_embeddings, sample_collection, tmp_path, capsys):
    build_index(dense_embeddings / "embeddings", tmp_path / "idx", num_shards=2)
    summary = search_stage(
        str(tmp_path / "idx"),
        str(sample_collection),
        str(tmp_path / "run.txt"),
        k=5,
        split="test",
        qrels=str(sample_collection),
    )
    run = read_run(tmp_path / "run.txt")
    assert len(run) == 8 and all(len(v) == 5 for v in run.values())
    assert summary["nDCG@10"] == pytest.approx(
        evaluate(run, sample_collection, ["nDCG@10"], split="test").mean["nDCG@10"], abs=1e-6
    )
    assert '"stage": "search"' in capsys.readouterr().out


def test_bi_encoder_rerank_reproduces_search(dense_embeddings, sample_collection, tiny_bert_dir, tmp_path):
    """In process (re-ranking on Ray is checked against this path below)."""
    build_index(dense_embeddings / "embeddings", tmp_path / "idx", in_process=True)
    search_stage(
        str(tmp_path / "idx"), str(sample_collection), str(tmp_path / "first.run"), k=20, split="test", in_process=True
    )
    summary = rerank_stage(
        str(tiny_bert_dir),
        str(tmp_path / "first.run"),
        str(sample_collection),
        str(sample_collection),
        str(tmp_path / "rr.run"),
        depth=20,
        split="test",
        qrels=str(sample_collection),
        kind="bi",  # a plain backbone: which family is the caller's to say
        model_config={"similarity": "cosine"},
        in_process=True,
    )
    first, again = read_run(tmp_path / "first.run"), read_run(tmp_path / "rr.run")
    assert_same_run(first, again)
    measures = ["nDCG@10", "RR@10"]
    assert evaluate(first, sample_collection, measures, "test").mean == pytest.approx(
        evaluate(again, sample_collection, measures, "test").mean
    )
    assert summary["pairs"] == 8 * 20

    rerank_stage(
        str(tiny_bert_dir),
        str(tmp_path / "first.run"),
        str(sample_collection),
        str(sample_collection),
        str(tmp_path / "bf16.run"),
        depth=20,
        split="test",
        scoring=ScoringOptions(precision="bfloat16"),
        kind="bi",  # a plain backbone: which family is the caller's to say
        model_config={"similarity": "cosine"},
        in_process=True,
    )
    bf16 = read_run(tmp_path / "bf16.run")
    assert {q: set(d) for q, d in bf16.items()} == {q: set(d) for q, d in first.items()}
    differences = [abs(bf16[q][d] - s) for q in first for d, s in first[q].items()]
    assert 0 < max(differences) < 0.02  # autocast really ran, and cosine scores stay close


@pytest.mark.parametrize("mode", ["pointwise", "listwise"])
def test_cross_encoder_rerank_scores_exactly_the_candidates(mode, sample_collection, tiny_bert_dir, tmp_path):
    """In process: the scorer is the same code the Ray scoring actors run."""
    from rayir import CrossEncoderModule

    first = {"q1": {"d01": 3.0, "d02": 2.0, "d05": 1.0, "d09": 0.5}, "q4": {"d28": 1.0, "d27": 0.9}}
    from rayir.data import write_run

    write_run(first, tmp_path / "first.run")
    rerank_stage(
        str(tiny_bert_dir),
        str(tmp_path / "first.run"),
        str(sample_collection),
        str(sample_collection),
        str(tmp_path / "ce.run"),
        depth=3,
        split="test",
        kind="cross",
        model_config={"mode": mode, "listwise_heads": 2},
        in_process=True,
    )
    result = read_run(tmp_path / "ce.run")
    assert {q: set(v) for q, v in result.items()} == {"q1": {"d01", "d02", "d05"}, "q4": {"d28", "d27"}}
    module = CrossEncoderModule(tiny_bert_dir, mode=mode, listwise_heads=2)
    from rayir.data import DocStore

    store = DocStore.from_source(sample_collection, ids=["d01", "d02", "d05"])
    query = next(q.text for q in read_queries(sample_collection) if q.query_id == "q1")
    expected = module.score(query, [store[d] for d in ("d01", "d02", "d05")]).scores.tolist()
    assert [result["q1"][d] for d in ("d01", "d02", "d05")] == pytest.approx(expected, abs=1e-5)


def test_rerank_reports_documents_missing_from_the_corpus(sample_collection, tiny_bert_dir, tmp_path):
    from rayir.data import write_run

    write_run({"q1": {"d01": 1.0, "nope": 0.5}}, tmp_path / "first.run")
    with pytest.raises(KeyError, match="nope"):
        rerank_stage(
            str(tiny_bert_dir),
            str(tmp_path / "first.run"),
            str(sample_collection),
            str(sample_collection),
            str(tmp_path / "x.run"),
            split="test",
            kind="bi",
            in_process=True,
        )
    assert not (tmp_path / "x.run").exists()


def test_index_job_end_to_end(ray_session, sample_collection, tmp_path):
    summary = index_stage(
        str(sample_collection),
        str(tmp_path / "out"),
        model="bm25",
        num_shards=2,
        encoding=EncodingOptions(docs_per_shard=10),
    )
    assert summary["documents"] == 30 and summary["factory"] == "inverted"
    result = search_stage(
        str(tmp_path / "out" / "index"),
        str(sample_collection),
        str(tmp_path / "bm25.run"),
        split="test",
        qrels=str(sample_collection),
    )
    assert result["nDCG@10"] > 0.5  # BM25 finds the hand-judged documents of this small collection
    local = index_stage(
        str(sample_collection),
        str(tmp_path / "local"),
        model="bm25",
        num_shards=2,
        encoding=EncodingOptions(docs_per_shard=10),
        in_process=True,
    )
    assert local["documents"] == 30
    local_result = search_stage(
        str(tmp_path / "local" / "index"),
        str(sample_collection),
        str(tmp_path / "local.run"),
        split="test",
        qrels=str(sample_collection),
        in_process=True,
    )
    assert local_result["nDCG@10"] == result["nDCG@10"]
    assert read_run(tmp_path / "local.run") == read_run(tmp_path / "bm25.run")


def test_interpolation_with_the_first_stage_is_min_max_normalised():
    from rayir.serve.rerank import interpolate_with_first_stage

    model = {"q": {"a": 10.0, "b": 6.0, "c": 2.0}, "flat": {"x": 1.0, "y": 1.0}}
    first = {"q": {"a": 0.5, "b": 4.5, "c": 2.5, "z": 9.0}, "flat": {"x": 3.0, "y": 1.0}}
    mixed = interpolate_with_first_stage(model, first, 0.25)
    # q: model normalised a=1, b=0.5, c=0; first stage (over a, b, c only) a=0, b=1, c=0.5
    assert mixed["q"] == pytest.approx({"a": 0.75, "b": 0.625, "c": 0.125})
    assert mixed["flat"] == pytest.approx({"x": 0.25, "y": 0.0})  # all-equal model scores count 0
    assert interpolate_with_first_stage(model, first, 0.0) is model
    assert sorted(interpolate_with_first_stage(model, first, 1.0)["q"].items(), key=lambda kv: -kv[1])[0][0] == "b"
    with pytest.raises(ValueError, match="first_stage_weight"):
        interpolate_with_first_stage(model, first, 1.5)


def test_rerank_in_process_equals_rerank_on_ray(dense_embeddings, sample_collection, tiny_bert_dir, tmp_path):
    from rayir.serve.rerank import rerank

    build_index(dense_embeddings / "embeddings", tmp_path / "idx", in_process=True)
    search_stage(
        str(tmp_path / "idx"), str(sample_collection), str(tmp_path / "first.run"), k=15, split="test", in_process=True
    )
    runs, rates = [], []
    for in_process in (False, True):
        started = time.perf_counter()
        runs.append(
            rerank(
                tiny_bert_dir,
                tmp_path / "first.run",
                sample_collection,
                sample_collection,
                depth=15,
                split="test",
                in_process=in_process,
                kind="bi",  # a plain backbone: which family is the caller's to say
                model_config={"similarity": "cosine"},
            )
        )
        rates.append(8 * 15 / (time.perf_counter() - started))
    assert runs[0] == runs[1] and sum(len(r) for r in runs[1].values()) == 8 * 15
    # Scoring alone is faster than the whole call (start-up, staging and the join left out).
    assert all(run.scoring_pairs_per_second > rate for run, rate in zip(runs, rates))


def test_the_query_encoder_refuses_a_model_changed_since_indexing(sample_collection, bert_tokenizer, tmp_path):
    """``fit --overwrite`` over a model an index was built with: its query vectors would not match
    the documents, so searching that index is refused."""
    import torch
    from conftest import tiny_bert_config
    from transformers import BertModel

    model_dir = tmp_path / "model"
    for seed in (0, 1):
        torch.manual_seed(seed)
        BertModel(tiny_bert_config()).save_pretrained(model_dir)
        bert_tokenizer.save_pretrained(model_dir)
        if seed == 0:
            encode_corpus(
                str(model_dir), sample_collection, tmp_path / "embeddings", docs_per_shard=10, in_process=True
            )
            build_index(tmp_path / "embeddings", tmp_path / "index", in_process=True)
            Searcher(tmp_path / "index", in_process=True).close()  # the same model: accepted
    with pytest.raises(ValueError, match="has changed since the index was built"):
        Searcher(tmp_path / "index", in_process=True)


@pytest.mark.parametrize("model", ["bm25", "tiny"])
def test_an_output_directory_moved_elsewhere_searches_and_re_ranks_identically(
    model, sample_collection, tiny_bert_dir, tmp_path
):
    """Manifests hold no absolute paths: an index copied to another mount gives the same runs."""
    import json
    import shutil

    model_name = "bm25" if model == "bm25" else str(tiny_bert_dir)
    built = tmp_path / "built"
    index_stage(
        corpus=str(sample_collection),
        output=str(built),
        model=model_name,
        num_shards=2,
        encoding=EncodingOptions(docs_per_shard=8),
        in_process=True,
    )
    queries = list(read_queries(sample_collection, split="test"))
    with Searcher(built / "index", in_process=True) as searcher:
        before = searcher.search(queries, k=10)
    for manifest in built.rglob("*.json"):
        assert str(built) not in manifest.read_text() and str(tmp_path) not in manifest.read_text(), manifest
        json.loads(manifest.read_text())

    moved = tmp_path / "elsewhere" / "mount"
    shutil.copytree(built, moved)
    shutil.rmtree(built)  # nothing may still point at the old place
    with Searcher(moved / "index", in_process=True) as searcher:
        after = searcher.search(queries, k=10)
    assert after == before and list(after) == list(before)
    reranked = [
        rerank_stage(
            model=str(tiny_bert_dir),
            run=str(run_file),
            queries=str(sample_collection),
            corpus=str(sample_collection),
            output=str(tmp_path / f"reranked-{i}.run"),
            depth=5,
            split="test",
            kind="bi",
            in_process=True,
        )
        for i, run_file in enumerate(_write_runs(tmp_path, before, after))
    ]
    assert (tmp_path / "reranked-0.run").read_text() == (tmp_path / "reranked-1.run").read_text()
    assert reranked[0]["pairs"] == reranked[1]["pairs"] > 0
    assert not list(tmp_path.glob(".reranked-*.rerank-work"))  # the default staging is cleaned up


def _write_runs(directory, *runs):
    from rayir.data import write_run

    return [write_run(run, directory / f"first-stage-{i}.run") for i, run in enumerate(runs)]


def test_batch_search_off_the_driver_equals_the_searcher(ray_session, dense_embeddings, sample_collection, tmp_path):
    """Staged query chunks searched by two query-encoder actors sharing the shard actors: the run
    equals the interactive Searcher's at 1 and 2 shards, queries in input order."""
    from rayir.serve.batch_search import search_to_file

    queries = list(read_queries(sample_collection, split="test"))
    for shards in (1, 2):
        index_dir = tmp_path / f"index-{shards}"
        build_index(dense_embeddings / "embeddings", index_dir, num_shards=shards, in_process=True)
        with Searcher(index_dir, in_process=True) as searcher:
            expected = searcher.search(queries, k=7)
        output = tmp_path / f"run-{shards}.trec"
        result = search_to_file(
            index_dir,
            sample_collection,
            output,
            k=7,
            split="test",
            batch_size=2,
            num_query_encoders=2,
            queries_per_chunk=3,
        )
        assert result.queries == len(queries) and result.chunks == -(-len(queries) // 3)
        assert_same_run(read_run(output), expected)
        lines = output.read_text().splitlines()
        assert [line.split()[0] for line in lines[::7]] == [q.query_id for q in queries]
        assert not output.with_name(f".{output.name}.search-work").exists()


def test_batch_search_resumes_after_a_crash_and_rejects_repeated_query_ids(
    dense_embeddings, sample_collection, tmp_path, monkeypatch
):
    from rayir.data.errors import DuplicateIdError
    from rayir.serve.batch_search import QueryChunkSearcher, search_to_file

    index_dir = tmp_path / "index"
    build_index(dense_embeddings / "embeddings", index_dir, num_shards=2, in_process=True)
    options = dict(k=7, split="test", queries_per_chunk=3, in_process=True)
    whole = search_to_file(index_dir, sample_collection, tmp_path / "whole.trec", **options)
    last = whole.chunks - 1
    search_chunk = QueryChunkSearcher.search_chunk

    def crash_on_the_last_chunk(self, index, chunk):
        if index == last:
            raise RuntimeError("killed")
        return search_chunk(self, index, chunk)

    monkeypatch.setattr(QueryChunkSearcher, "search_chunk", crash_on_the_last_chunk)
    with pytest.raises(RuntimeError, match="killed"):
        search_to_file(index_dir, sample_collection, tmp_path / "resumed.trec", **options)
    assert not (tmp_path / "resumed.trec").exists()  # no run short of its queries
    monkeypatch.setattr(QueryChunkSearcher, "search_chunk", search_chunk)
    resumed = search_to_file(index_dir, sample_collection, tmp_path / "resumed.trec", **options)
    assert resumed.searched_chunks == 1 and whole.searched_chunks == whole.chunks > 1
    assert (tmp_path / "resumed.trec").read_text() == (tmp_path / "whole.trec").read_text()

    duplicated = tmp_path / "dup.jsonl"
    duplicated.write_text('{"_id": "q1", "text": "a"}\n{"_id": "q2", "text": "b"}\n{"_id": "q1", "text": "c"}\n')
    with pytest.raises(DuplicateIdError, match="query id 'q1' appears more than once"):
        search_to_file(index_dir, duplicated, tmp_path / "dup.trec", queries_per_chunk=1, in_process=True)
