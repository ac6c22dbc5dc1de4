"""Training samples from qrels + a hard-negative run, from a teacher run, and from triples."""

from __future__ import annotations

import pytest
import torch

from rayir.data import QrelsDataset
from rayir.data.datamodule import collate_rank_samples
from rayir.train.options import TrainingData
from tests.conftest import quiet_trainer

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
    dataset = TrainingData(
        queries=str(queries), corpus=str(corpus), run=str(run), targets="score", num_negatives=2
    ).build()
    (sample,) = dataset.samples
    assert sample.doc_ids == ["d0", "d1", "d2"] and sample.targets == [9.0, 8.0, 7.0]
    batch = collate_rank_samples([sample, sample])
    assert batch.targets.shape == (2, 3) and batch.docs == ["text 0", "text 1", "text 2"] * 2
    assert torch.equal(batch.targets[0], torch.tensor([9.0, 8.0, 7.0]))


def test_fresh_negatives_redraw_per_epoch_from_the_same_pool_and_epoch_zero_keeps_the_first_draw():
    fixed = QrelsDataset(QRELS, QUERIES, CORPUS, run=RUN, num_negatives=2, depth=8, seed=3)
    fresh = QrelsDataset(QRELS, QUERIES, CORPUS, run=RUN, num_negatives=2, depth=8, seed=3, fresh_negatives=True)
    first = [s.doc_ids for s in fresh.samples]
    assert first == [s.doc_ids for s in fixed.samples]
    fixed.set_epoch(1)
    assert [s.doc_ids for s in fixed.samples] == first  # without fresh_negatives nothing changes
    draws = []
    for epoch in (1, 2, 3):
        fresh.set_epoch(epoch)
        draws.append([s.doc_ids for s in fresh.samples])
        for sample in fresh.samples:
            top = [d for d, _ in sorted(RUN[sample.query_id].items(), key=lambda x: -x[1])][:8]
            negatives = sample.doc_ids[1:]
            assert len(set(negatives)) == 2 and all(
                d in top and QRELS[sample.query_id].get(d, 0) <= 0 for d in negatives
            )
            assert sample.docs == [CORPUS[d] for d in sample.doc_ids] and sample.doc_ids[0] in ("d0", "d1", "d2")
    assert draws[0] != first and len({str(d) for d in draws}) == 3  # q1 draws 2 of 6: repeats are unlikely
    fresh.set_epoch(2)
    assert [s.doc_ids for s in fresh.samples] == draws[1]  # seeded by epoch: every worker draws alike
    fresh.set_epoch(0)
    assert [s.doc_ids for s in fresh.samples] == first


def test_fresh_negatives_only_where_there_are_negatives_to_redraw():
    with pytest.raises(ValueError, match="num_negatives > 0"):
        QrelsDataset(QRELS, QUERIES, CORPUS, num_negatives=0, fresh_negatives=True)
    with pytest.raises(ValueError, match="fresh_negatives"):
        TrainingData(triples="t.tsv", fresh_negatives=True).build()
    with pytest.raises(ValueError, match="fresh_negatives"):
        TrainingData(queries="x", corpus="y", run="r", targets="score", fresh_negatives=True).build()


def test_lightning_tells_the_dataset_its_epoch_before_the_first_batch_is_drawn():
    """A real Lightning loop: every sample a step sees was fetched after ``set_epoch`` of its epoch."""
    import lightning

    from rayir.train.callbacks import SetDatasetEpoch

    class EpochStamped(torch.utils.data.Dataset):
        epoch = -1

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __len__(self) -> int:
            return 6

        def __getitem__(self, index: int) -> torch.Tensor:
            return torch.tensor([float(self.epoch)])

    class Recorder(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)
            self.seen: list[tuple[int, list[float]]] = []

        def training_step(self, batch, batch_idx):
            self.seen.append((self.current_epoch, batch.flatten().tolist()))
            return self.layer(batch).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    module = Recorder()
    loader = torch.utils.data.DataLoader(EpochStamped(), batch_size=2)
    trainer = quiet_trainer(max_epochs=3, callbacks=[SetDatasetEpoch()])
    trainer.fit(module, train_dataloaders=loader)
    assert [epoch for epoch, _ in module.seen] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert all(values == [float(epoch)] * 2 for epoch, values in module.seen)
