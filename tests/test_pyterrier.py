"""rayir as PyTerrier transformers: pt.Experiment over a BM25 → cross-encoder pipeline and a dense
retriever gives the numbers rayir's own search, re-rank and evaluation give."""

from __future__ import annotations

import pytest

pt = pytest.importorskip("pyterrier")
pd = pytest.importorskip("pandas")

import ir_measures  # noqa: E402

from rayir import CrossEncoderModule, rerank  # noqa: E402
from rayir.cli.stages import index  # noqa: E402
from rayir.data import qrels_to_frame, read_qrels, read_queries, run_from_frame, run_to_frame  # noqa: E402
from rayir.evaluate import evaluate  # noqa: E402
from rayir.pyterrier import ReRanker, Retriever  # noqa: E402
from rayir.serve.api import search  # noqa: E402

MEASURES = ["nDCG@10", "RR@10"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, sample_collection, tiny_bert_dir):
    root = tmp_path_factory.mktemp("pyterrier")
    index(str(sample_collection), str(root / "bm25"), "bm25", num_shards=2, in_process=True)
    index(str(sample_collection), str(root / "dense"), str(tiny_bert_dir), in_process=True)
    CrossEncoderModule(tiny_bert_dir).save_pretrained(root / "cross")  # one fixed head for both sides
    return root


def test_pt_experiment_equals_rayirs_own_evaluation(built, sample_collection):
    qrels = read_qrels(sample_collection, "test")
    queries = list(read_queries(sample_collection, split="test"))
    topics = pd.DataFrame({"qid": [q.query_id for q in queries], "query": [q.text for q in queries]})

    bm25 = Retriever(built / "bm25" / "index", k=10, in_process=True)
    dense = Retriever(built / "dense" / "index", k=10, in_process=True)
    cross = ReRanker(str(built / "cross"), corpus=sample_collection, in_process=True)
    experiment = pt.Experiment(
        [bm25 >> cross, dense],
        topics,
        qrels_to_frame(qrels),
        [ir_measures.parse_measure(m) for m in MEASURES],
        names=["bm25 >> cross", "dense"],
    ).set_index("name")

    first = search(built / "bm25" / "index", sample_collection, k=10, split="test", in_process=True)
    ours = {
        "bm25 >> cross": rerank(
            str(built / "cross"), first, sample_collection, sample_collection, depth=10, split="test", in_process=True
        ),
        "dense": search(built / "dense" / "index", sample_collection, k=10, split="test", in_process=True),
    }
    for name, run in ours.items():
        expected = evaluate(run, qrels, MEASURES).mean
        for measure in MEASURES:
            assert experiment.loc[name, measure] == pytest.approx(expected[measure], abs=1e-9), (name, measure)


def test_frames_compose_with_the_pyterrier_operators(built, sample_collection):
    topics = pd.DataFrame({"qid": ["a", "b"], "query": ["what causes earthquakes", "coffee and health"]})
    bm25 = Retriever(built / "bm25" / "index", k=10, in_process=True)
    dense = Retriever(built / "dense" / "index", k=10, in_process=True)
    found = dense(topics)  # a dense index ranks every document: 10 for each query
    assert list(found.columns) == ["qid", "query", "docno", "score", "rank"]
    assert found.groupby("qid")["rank"].apply(list).tolist() == [list(range(10))] * 2
    assert (found.groupby("qid")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()
    assert ((dense % 3)(topics).groupby("qid").size() == 3).all()
    fused = (bm25 + dense)(topics)  # PyTerrier's linear fusion of the two rankings
    assert set(fused["qid"]) == {"a", "b"} and fused["score"].notna().all()
    # texts in the frame instead of a corpus: the same scores
    with_text = found.assign(text=[t for t in _texts(sample_collection, found["docno"])])
    reranked = ReRanker(str(built / "cross"), in_process=True)(with_text)
    by_corpus = ReRanker(str(built / "cross"), corpus=sample_collection, in_process=True)(found)
    by_text, looked_up = run_from_frame(reranked), run_from_frame(by_corpus)
    assert by_text.keys() == looked_up.keys()
    for query_id, scores in looked_up.items():
        assert by_text[query_id] == pytest.approx(scores, abs=1e-6)
    assert "text" in reranked.columns


def test_runs_go_to_frames_and_back():
    run = {"q1": {"d2": 0.5, "d1": 0.5, "d3": 2.0}, "q2": {"d9": -1.0}}
    frame = run_to_frame(run)
    assert frame.to_dict("records")[:3] == [
        {"qid": "q1", "docno": "d3", "score": 2.0, "rank": 0},
        {"qid": "q1", "docno": "d1", "score": 0.5, "rank": 1},  # ties by doc id
        {"qid": "q1", "docno": "d2", "score": 0.5, "rank": 2},
    ]
    assert run_from_frame(frame) == run


def _texts(sample_collection, doc_ids):
    from rayir.data import read_docs

    texts = {d.doc_id: d.text for d in read_docs(sample_collection)}
    return [texts[d] for d in doc_ids]
