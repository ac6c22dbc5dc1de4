"""Local collections under an ir_datasets id: documents, queries, qrels, runs (scoreddocs) and
training pairs (docpairs) read by id everywhere, in this process and in others (no network)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rayir.data import TupleDataset, read_docs, read_qrels, read_queries, read_run, register_dataset
from rayir.errors import ConfigError
from tests.conftest import quiet_trainer

DOCS = {"d1": "glaciers melt in warm summers", "d2": "coffee and the heart", "d3": "earthquakes and faults"}
QUERIES = {"q1": "why do glaciers melt", "q2": "what causes earthquakes"}


@pytest.fixture
def local(tmp_path, monkeypatch):
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "irds"))
    (tmp_path / "docs.tsv").write_text("".join(f"{d}\t{t}\n" for d, t in DOCS.items()))
    (tmp_path / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in QUERIES.items()))
    (tmp_path / "qrels.txt").write_text("q1 0 d1 1\nq2 0 d3 2\n")
    (tmp_path / "bm25.run").write_text(
        "q1 Q0 d1 1 3.5 bm25\nq1 Q0 d2 2 1.0 bm25\nq2 Q0 d2 1 2.0 bm25\nq2 Q0 d3 2 1.5 bm25\n"
    )
    (tmp_path / "pairs.tsv").write_text("q1\td1\td2\nq2\td3\td1\n")
    name = f"rayir-test/{tmp_path.name}"
    source = register_dataset(
        name,
        docs=tmp_path / "docs.tsv",
        queries=tmp_path / "queries.tsv",
        qrels=tmp_path / "qrels.txt",
        scoreddocs=tmp_path / "bm25.run",
        docpairs=tmp_path / "pairs.tsv",
    )
    return source, tmp_path


def test_a_registered_collection_reads_by_id_as_its_files_do(local):
    source, root = local
    assert {d.doc_id: d.text for d in read_docs(source)} == DOCS
    assert {q.query_id: q.text for q in read_queries(source)} == QUERIES
    assert read_qrels(source) == read_qrels(root / "qrels.txt")
    assert read_run(source) == read_run(root / "bm25.run")
    pairs = TupleDataset(source, source, source)
    assert [(s.query_id, s.doc_ids, s.docs, s.targets) for s in pairs] == [
        ("q1", ["d1", "d2"], [DOCS["d1"], DOCS["d2"]], [1.0, 0.0]),
        ("q2", ["d3", "d1"], [DOCS["d3"], DOCS["d1"]], [1.0, 0.0]),
    ]


def test_other_processes_find_the_registration(local):
    source, _ = local
    code = f"from rayir.data import read_run; print(sorted(read_run({source!r})))"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=120)
    assert shown.stdout.strip() == "['q1', 'q2']", shown.stderr[-2000:]


def test_runs_by_id_re_rank_and_evaluate(local, tiny_bert_dir, capsys):
    from rayir import rerank
    from rayir.cli import main

    source, _ = local
    reranked = rerank(str(tiny_bert_dir), source, source, source, kind="bi", in_process=True)
    assert {q: set(d) for q, d in reranked.items()} == {"q1": {"d1", "d2"}, "q2": {"d2", "d3"}}
    main(["evaluate", "--run", source, "--qrels", source, "--measures", "RR@10"])
    assert '"RR@10": 0.75' in capsys.readouterr().out  # q1: d1 first (1.0); q2: d3 second (0.5)


def test_registration_refuses_what_ir_datasets_cannot_read(tmp_path, monkeypatch):
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path))
    (tmp_path / "docs.parquet").write_bytes(b"PAR1")
    with pytest.raises(ConfigError, match="ir_datasets reads docs as TSV or TREC files"):
        register_dataset("x/y", docs=tmp_path / "docs.parquet")
    with pytest.raises(FileNotFoundError, match="no such file"):
        register_dataset("x/y", qrels=tmp_path / "missing.txt")


# ----------------------------------------------------------------------------- streamed document pairs


def samples_of(dataset):
    return [(s.query_id, s.doc_ids, s.docs, s.targets) for s in dataset]


def test_document_pairs_by_id_stream_as_the_in_memory_reader_reads_them(local):
    from rayir.data.datasets import StreamedTupleDataset
    from rayir.train.options import TrainingData

    source, _ = local
    data = TrainingData(triples=source, queries=source, corpus=source)
    assert data.streamed and isinstance(data.build(), StreamedTupleDataset)
    assert samples_of(StreamedTupleDataset(source, source, source)) == samples_of(TupleDataset(source, source, source))
    skipped = StreamedTupleDataset(source, source, source)
    skipped.skip = 1
    assert [s.query_id for s in skipped] == ["q2"]


def test_streamed_pairs_are_read_lazily_and_split_evenly_over_workers(tmp_path, monkeypatch):
    """Tuples are read as they are trained on (a bad line far down does not stop the first
    samples), and each of two workers takes every other tuple, whole rounds only."""
    import torch.distributed as dist

    from rayir.data.datasets import StreamedTupleDataset
    from rayir.data.errors import DataFormatError

    pairs = tmp_path / "pairs.tsv"
    rows = [f"q{i % 2 + 1}\td{i % 3 + 1}\td{(i + 1) % 3 + 1}\n" for i in range(5)]
    pairs.write_text("".join(rows))
    dataset = StreamedTupleDataset(pairs, QUERIES, DOCS)
    shares = {}
    for rank in (0, 1):
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
        monkeypatch.setattr(dist, "get_world_size", lambda: 2)
        shares[rank] = [s.doc_ids for s in dataset]
    monkeypatch.undo()
    whole = [s.doc_ids for s in dataset]
    assert shares[0] == whole[0:4:2] and shares[1] == whole[1:4:2]  # the fifth tuple is a partial round
    pairs.write_text("".join(rows * 200) + "q1\tonly-one-field\n")
    first = next(iter(StreamedTupleDataset(pairs, QUERIES, DOCS)))
    assert first.doc_ids == ["d1", "d2"]
    with pytest.raises(DataFormatError, match=r"pairs.tsv:1001: expected"):
        list(StreamedTupleDataset(pairs, QUERIES, DOCS))


def test_streamed_pairs_name_an_unknown_id_and_read_ir_datasets_own_document_store(tmp_path, monkeypatch):
    import ir_datasets
    from ir_datasets.formats import TsvDocPairs, TsvDocs, TsvQueries
    from ir_datasets.util import LocalDownload

    from rayir.data.datasets import StreamedTupleDataset
    from rayir.data.irds import irds_doc_lookup
    from rayir.errors import UnknownIdError

    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "irds"))
    (tmp_path / "docs.tsv").write_text("".join(f"{d}\t{t}\n" for d, t in DOCS.items()))
    (tmp_path / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in QUERIES.items()))
    (tmp_path / "pairs.tsv").write_text("q1\td1\td2\nq2\td3\td9\n")
    name = f"rayir-store-test/{tmp_path.name}"  # an ir_datasets dataset of its own, not rayir's registry
    ir_datasets.registry.register(
        name,
        ir_datasets.Dataset(
            TsvDocs(LocalDownload(tmp_path / "docs.tsv")),
            TsvQueries(LocalDownload(tmp_path / "queries.tsv")),
            TsvDocPairs(LocalDownload(tmp_path / "pairs.tsv")),
        ),
    )
    lookup = irds_doc_lookup(f"irds:{name}")
    assert lookup is not None and lookup("d2") == DOCS["d2"] and lookup("d9") is None
    stream = iter(StreamedTupleDataset(f"irds:{name}", f"irds:{name}", f"irds:{name}"))
    assert next(stream).docs == [DOCS["d1"], DOCS["d2"]]
    with pytest.raises(UnknownIdError, match="tuple 2.*'d9'"):
        next(stream)


def test_training_on_streamed_pairs_resumes_after_the_last_checkpointed_batch(local, tmp_path):
    import lightning
    import torch

    from rayir.data.datamodule import RankDataModule
    from rayir.data.datasets import StreamedTupleDataset

    source, root = local
    distinct = [f"{q}\t{a}\t{b}\n" for q in QUERIES for a in DOCS for b in DOCS]  # 18 different tuples
    (root / "long.tsv").write_text("".join(distinct))
    seen: list[list[str]] = []

    class Recorder(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx):
            seen.append([batch.query_ids, batch.doc_ids])
            return self.weight.sum() * 0 + self.weight.square().sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def run(steps, **fit):
        trainer = quiet_trainer(
            max_steps=steps,
            enable_checkpointing=True,
            default_root_dir=tmp_path,
            callbacks=[lightning.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3)],
        )
        data = RankDataModule(lambda: StreamedTupleDataset(root / "long.tsv", source, source), batch_size=2)
        trainer.fit(Recorder(), datamodule=data, **fit)

    run(3)
    first = list(seen)
    seen.clear()
    run(6, ckpt_path=str(next((tmp_path / "ckpt").glob("*.ckpt"))))
    seen_after = list(seen)
    seen.clear()
    run(6)
    assert first + seen_after == seen  # 3 + 3 steps resumed = 6 steps in one go, no batch twice


def test_streamed_training_needs_max_steps(local, tmp_path):
    from rayir.losses import RankNet
    from rayir.train.options import TrainingData
    from rayir.train.ray_trainer import fit

    source, _ = local
    with pytest.raises(ValueError, match="streamed.*max_steps"):
        fit("unused", tmp_path / "out", TrainingData(triples=source, queries=source, corpus=source), [RankNet()])


def test_two_ray_train_workers_fit_on_document_pairs_streamed_by_id(ray_session, tiny_bert_dir, tmp_path):
    """The pairs stream inside each Ray Train worker (registered in the session's IR_DATASETS_HOME,
    which the workers share), each worker on its own half."""
    from rayir.losses import RankNet
    from rayir.train.options import Optimization, Scaling, TrainingData
    from rayir.train.ray_trainer import fit

    (tmp_path / "docs.tsv").write_text("".join(f"{d}\t{t}\n" for d, t in DOCS.items()))
    (tmp_path / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in QUERIES.items()))
    (tmp_path / "pairs.tsv").write_text("".join(f"{q}\t{a}\t{b}\n" for q in QUERIES for a in DOCS for b in DOCS))
    source = register_dataset(
        f"rayir-stream/{tmp_path.name}",
        docs=tmp_path / "docs.tsv",
        queries=tmp_path / "queries.tsv",
        docpairs=tmp_path / "pairs.tsv",
    )
    result = fit(
        str(tiny_bert_dir),
        tmp_path / "out",
        TrainingData(triples=source, queries=source, corpus=source),
        [RankNet()],
        kind="cross",
        optimization=Optimization(batch_size=2, max_steps=3, lr=1e-3),
        scaling=Scaling(num_workers=2),
    )
    assert result.steps == 3 and result.samples == 3 * 2 * 2
