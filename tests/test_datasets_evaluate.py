"""Run/tuple datasets and evaluation against hand-computed values and pytrec_eval."""

from __future__ import annotations

import math

import pytest

from rayir.data import DocStore, RunDataset, TupleDataset
from rayir.evaluate import evaluate

CORPUS = {f"d{i}": f"text {i}" for i in range(6)}
QUERIES = {"q1": "first", "q2": "second", "q3": "third"}
RUN = {
    "q1": {"d0": 5.0, "d1": 4.0, "d2": 3.0, "d3": 2.0},
    "q2": {"d4": 1.0, "d5": 0.5},
    "q3": {"d0": 1.0},
}
QRELS = {"q1": {"d1": 2, "d3": 1}, "q2": {"d5": 1}, "q3": {"d4": 1}}


def test_run_dataset_top_depth_and_targets():
    data = RunDataset(RUN, QUERIES, CORPUS, depth=3, targets="relevance", qrels=QRELS)
    first = data[0]
    assert (first.query_id, first.query, first.doc_ids) == ("q1", "first", ["d0", "d1", "d2"])
    assert first.docs == ["text 0", "text 1", "text 2"]
    assert first.targets == [0.0, 2.0, 0.0]
    ranks = RunDataset(RUN, QUERIES, CORPUS, depth=2, targets="rank")
    assert ranks[0].targets == [1.0, 2.0]
    scores = RunDataset(RUN, QUERIES, CORPUS, sample_size=2, targets="score")
    assert scores[0].targets == [5.0, 4.0]


def test_run_dataset_single_relevant_and_random():
    data = RunDataset(RUN, QUERIES, CORPUS, sample_size=3, sampling_strategy="single_relevant", qrels=QRELS, seed=1)
    assert data.skipped == ["q3"]  # no relevant candidate in its ranking
    for sample in data:
        assert QRELS[sample.query_id].get(sample.doc_ids[0], 0) > 0
        assert all(QRELS[sample.query_id].get(d, 0) == 0 for d in sample.doc_ids[1:])
    assert data[0].doc_ids[1:] == ["d0", "d2"]
    sampled = RunDataset(RUN, QUERIES, CORPUS, sample_size=2, sampling_strategy="random", seed=3)
    assert len(sampled[0].doc_ids) == 2 and set(sampled[0].doc_ids) <= set(RUN["q1"])
    again = RunDataset(RUN, QUERIES, CORPUS, sample_size=2, sampling_strategy="random", seed=3)
    assert again[0].doc_ids == sampled[0].doc_ids


def test_run_dataset_needs_qrels_for_relevance():
    with pytest.raises(ValueError, match="need qrels"):
        RunDataset(RUN, QUERIES, CORPUS, targets="relevance")


def test_doc_store_keeps_only_needed_ids(sample_collection):
    store = DocStore.from_source(sample_collection, ids=["d01", "d30"])
    assert len(store) == 2 and store["d30"].startswith("Glaciers")
    with pytest.raises(KeyError, match="not in the corpus"):
        DocStore.from_source(sample_collection, ids=["d01", "nope"])


def test_tuple_dataset_ids_and_texts(tmp_path):
    by_id = tmp_path / "triples.tsv"
    by_id.write_text("q1\td1\td0\td2\nq2\td5\td4\n")
    data = TupleDataset(by_id, QUERIES, CORPUS)
    assert [s.doc_ids for s in data] == [["d1", "d0", "d2"], ["d5", "d4"]]
    assert data[0].targets == [1.0, 0.0, 0.0] and data[1].docs == ["text 5", "text 4"]
    texts = tmp_path / "texts.tsv"
    texts.write_text("a query\tgood doc\tbad doc\n")
    assert TupleDataset(texts)[0].docs == ["good doc", "bad doc"]
    texts.write_text("a query\tonly positive\n")
    with pytest.raises(ValueError, match="texts.tsv:1"):
        TupleDataset(texts)


def dcg(gains):
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def test_evaluate_matches_hand_computation():
    result = evaluate(RUN, QRELS, ["nDCG@10", "R@100", "RR@10", "P@2"])
    ndcg_q1 = dcg([0, 2, 0, 1]) / dcg([2, 1])
    ndcg_q2 = dcg([0, 1]) / dcg([1])
    assert result.per_query["nDCG@10"]["q1"] == pytest.approx(ndcg_q1)
    assert result.per_query["nDCG@10"]["q2"] == pytest.approx(ndcg_q2)
    assert result.per_query["nDCG@10"]["q3"] == 0.0
    assert result.mean["nDCG@10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 3)
    assert result.mean["RR@10"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert result.mean["P@2"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert result.mean["R@100"] == pytest.approx((1 + 1 + 0) / 3)


def test_rayir_evaluate_still_evaluates_once_its_module_is_imported():
    """Importing ``rayir.evaluate`` (the CLI does) makes the package attribute the module; it still evaluates."""
    import rayir
    import rayir.evaluate

    result = rayir.evaluate(RUN, QRELS, ["nDCG@10"])
    assert result.mean["nDCG@10"] == pytest.approx((dcg([0, 2, 0, 1]) / dcg([2, 1]) + dcg([0, 1]) / dcg([1])) / 3)


def test_rayir_version(capsys):
    from rayir import __version__
    from rayir.cli import main

    with pytest.raises(SystemExit) as ended:
        main(["--version"])
    assert ended.value.code == 0
    assert capsys.readouterr().out.strip() == f"rayir {__version__}"


def test_judged_queries_missing_from_the_run_count_as_zero():
    partial = {"q1": RUN["q1"]}
    result = evaluate(partial, QRELS, ["nDCG@10"])
    assert result.missing_queries == ["q2", "q3"]
    assert result.mean["nDCG@10"] == pytest.approx(result.per_query["nDCG@10"]["q1"] / 3)
    with_unjudged = evaluate({**RUN, "q9": {"d0": 1.0}}, QRELS, ["nDCG@10"])
    assert with_unjudged.mean == evaluate(RUN, QRELS, ["nDCG@10"]).mean


def test_evaluate_agrees_with_pytrec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    evaluator = pytrec_eval.RelevanceEvaluator(QRELS, {"ndcg_cut.10", "recip_rank", "map"})
    reference = evaluator.evaluate(RUN)
    ours = evaluate(RUN, QRELS, ["nDCG@10", "RR", "AP"])
    for query_id, values in reference.items():
        assert ours.per_query["nDCG@10"][query_id] == pytest.approx(values["ndcg_cut_10"])
        assert ours.per_query["RR"][query_id] == pytest.approx(values["recip_rank"])
        assert ours.per_query["AP"][query_id] == pytest.approx(values["map"])
