"""Training samples from qrels + a hard-negative run, from a teacher run, and from triples."""

from __future__ import annotations

import pytest
import torch

from rayir.data import QrelsDataset
from rayir.data.datamodule import collate_rank_samples
from rayir.train.options import TrainingData

QUERIES = {"q1": "first", "q2": "second", "q3": "third"}
CORPUS = {f"d{i}": f"text {i}" for i in range(10)}
QRELS = {"q1": {"d0": 1, "d1": 2, "d5": 0}, "q2": {"d2": 1}, "q3": {"d9": 0}}
RUN = {"q1": {f"d{i}": 10.0 - i for i in range(10)}, "q2": {"d2": 5.0, "d3": 4.0, "d4": 3.0}}


def test_one_sample_per_judged_pair_with_unjudged_or_non_relevant_negatives_from_the_top():
    dataset = QrelsDataset(QRELS, QUERIES, CORPUS, run=RUN, num_negatives=2, depth=4, seed=3)
    pairs = sorted((s.query_id, s.doc_ids[0]) for s in dataset.samples)
    assert pairs == [("q1", "d0"), ("q1", "d1"), ("q2", "d2")]  # q3 has no relevant document
    for sample in dataset.samples:
        negatives = sample.doc_ids[1:]
        assert len(negatives) == 2 and len(set(negatives)) == 2
        top = [d for d, _ in sorted(RUN[sample.query_id].items(), key=lambda x: -x[1])][:4]
        assert all(d in top and QRELS[sample.query_id].get(d, 0) <= 0 for d in negatives)
        assert sample.targets == [1.0, 0.0, 0.0] and sample.docs[0] == CORPUS[sample.doc_ids[0]]
    again = QrelsDataset(QRELS, QUERIES, CORPUS, run=RUN, num_negatives=2, depth=4, seed=3)
    assert [s.doc_ids for s in again.samples] == [s.doc_ids for s in dataset.samples]  # seeded


def test_queries_without_enough_negatives_are_skipped_and_reported():
    dataset = QrelsDataset(QRELS, QUERIES, CORPUS, run=RUN, num_negatives=3, depth=5)
    assert dataset.skipped == ["q2"] and {s.query_id for s in dataset.samples} == {"q1"}


def test_positives_only_and_bad_settings():
    assert len(QrelsDataset(QRELS, QUERIES, CORPUS, num_negatives=0)) == 3
    with pytest.raises(ValueError, match="needs a run"):
        QrelsDataset(QRELS, QUERIES, CORPUS, num_negatives=1)
    with pytest.raises(ValueError, match="does not use"):
        TrainingData(triples="t.tsv", qrels="q.tsv").build()
    with pytest.raises(ValueError, match="teacher"):
        TrainingData(queries="x", corpus="y", targets="score").build()


def test_teacher_run_and_collation(tmp_path):
    run = tmp_path / "teacher.run"
    run.write_text("".join(f"q1 Q0 d{i} {i + 1} {9.0 - i} t\n" for i in range(5)))
    queries = tmp_path / "queries.tsv"
    queries.write_text("q1\tfirst\n")
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("".join(f"d{i}\ttext {i}\n" for i in range(5)))
    dataset = TrainingData(queries=str(queries), corpus=str(corpus), run=str(run), targets="score",
                           num_negatives=2).build()
    (sample,) = dataset.samples
    assert sample.doc_ids == ["d0", "d1", "d2"] and sample.targets == [9.0, 8.0, 7.0]
    batch = collate_rank_samples([sample, sample])
    assert batch.targets.shape == (2, 3) and batch.docs == ["text 0", "text 1", "text 2"] * 2
    assert torch.equal(batch.targets[0], torch.tensor([9.0, 8.0, 7.0]))
