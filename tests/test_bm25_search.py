"""BM25 search in this process (no Ray): a moved index, and queries that match nothing."""

from __future__ import annotations

from rayir.cli import search as search_stage
from rayir.data import read_queries, read_run
from rayir.encode import encode_corpus
from rayir.index import build_index
from rayir.serve.coordinator import Searcher


def test_a_bm25_index_moved_away_from_its_embeddings_searches_identically(sample_collection, tmp_path):
    """The index carries its own copy of BM25's statistics: copied elsewhere, with the embeddings
    deleted, it writes the same run file byte for byte."""
    import shutil

    encode_corpus("bm25", sample_collection, tmp_path / "embeddings", docs_per_shard=7, in_process=True)
    build_index(tmp_path / "embeddings", tmp_path / "index", num_shards=2, in_process=True)
    queries = list(read_queries(sample_collection))
    with Searcher(tmp_path / "index", in_process=True) as searcher:
        searcher.search_result(queries, k=10).write_trec(tmp_path / "before.run")
    shutil.copytree(tmp_path / "index", tmp_path / "moved" / "index")
    shutil.rmtree(tmp_path / "embeddings")
    shutil.rmtree(tmp_path / "index")
    with Searcher(tmp_path / "moved" / "index", in_process=True) as searcher:
        searcher.search_result(queries, k=10).write_trec(tmp_path / "after.run")
    before = (tmp_path / "before.run").read_bytes()
    assert before == (tmp_path / "after.run").read_bytes() and before.count(b"\n") > 30


def test_queries_that_match_nothing_are_counted_in_the_search_summary(sample_collection, tmp_path):
    """Every input query is in the summary's count; those without a single hit have no run line
    (a TREC run cannot say "nothing") and are counted apart (a warning names the first ten)."""
    import json

    encode_corpus("bm25", sample_collection, tmp_path / "embeddings", docs_per_shard=7, in_process=True)
    build_index(tmp_path / "embeddings", tmp_path / "index", num_shards=2, in_process=True)
    real = [(q.query_id, q.text) for q in read_queries(sample_collection)][:5]
    queries = real[:2] + [("nothing1", "zzxqv qqzzv")] + real[2:] + [("nothing2", "vvqzx")]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries))
    summary = search_stage(
        str(tmp_path / "index"),
        str(tmp_path / "q.jsonl"),
        str(tmp_path / "out.run"),
        k=5,
        queries_per_chunk=3,
        in_process=True,
    )
    assert summary["queries"] == 7 and summary["queries_without_hits"] == 2
    assert sorted(read_run(tmp_path / "out.run")) == sorted(i for i, _ in real)


def test_search_hits_read_with_their_texts(sample_collection, tmp_path):
    from rayir.cli.stages import index
    from rayir.data import read_docs

    index(str(sample_collection), str(tmp_path / "out"), "bm25", in_process=True)
    with Searcher(tmp_path / "out" / "index", in_process=True) as searcher:
        result = searcher.search_texts(["what causes earthquakes"], k=3)
    hits = result.readable(sample_collection)[0]
    texts = {d.doc_id: d.text for d in read_docs(sample_collection)}
    assert [h.doc_id for h in hits] == list(result.to_run()["0"]) and [h.rank for h in hits] == [1, 2, 3]
    assert all(h.text == texts[h.doc_id] for h in hits) and "earthquake" in str(hits[0]).lower()
    assert [h.text for h in result.readable()[0]] == [None] * 3
    assert result.to_frame()[["docno", "rank"]].values.tolist() == [[h.doc_id, h.rank - 1] for h in hits]
