"""Local collections under an ir_datasets id: documents, queries, qrels, runs (scoreddocs) and
training pairs (docpairs) read by id everywhere, in this process and in others (no network)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rayir.data import TupleDataset, read_docs, read_qrels, read_queries, read_run, register_dataset
from rayir.errors import ConfigError

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
