"""Errors a person can act on: the command line prints one ``error:`` line naming the file, line,
id or setting, and exits with status 2 (130 on Ctrl-C), where these were tracebacks or retries."""

from __future__ import annotations

import errno
import gzip
from pathlib import Path

import pytest

from rayir.cli import main


@pytest.fixture(autouse=True)
def fresh_log_handler():
    """The CLI binds its log handler to the stderr of its first call; capsys swaps stderr per call."""
    import logging

    logging.getLogger("rayir").handlers.clear()
    yield
    logging.getLogger("rayir").handlers.clear()


def fails(capsys, command: str, status: int = 2) -> str:
    """Run ``rayir <command>`` (split like a shell); assert the exit status and one error line
    without a traceback."""
    import logging
    import shlex

    logging.getLogger("rayir").handlers.clear()
    with pytest.raises(SystemExit) as exit_:
        main(shlex.split(command))
    assert exit_.value.code == status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(("error:", "interrupted"))]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def bm25_output(tmp_path_factory, sample_collection) -> Path:
    out = tmp_path_factory.mktemp("cli") / "bm25"
    main(["index", "--corpus", str(sample_collection), "--output", str(out), "--model", "bm25", "--in_process", "true"])
    return out


def test_bad_documents_are_one_line_naming_file_and_line(capsys, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "a", "text": "fine"}\n{"_id": "b", "text": 5}\n')
    line = fails(capsys, f"encode --corpus {corpus} --model bm25 --output {tmp_path / 'e'} --in_process true")
    assert f"{corpus}:2: 'text' must be a string" in line

    packed = gzip.compress(b"".join(b'{"_id": "d%d", "text": "t"}\n' % i for i in range(3000)))
    truncated = tmp_path / "c.jsonl.gz"
    truncated.write_bytes(packed[: len(packed) // 2])
    line = fails(capsys, f"encode --corpus {truncated} --model bm25 --output {tmp_path / 'g'} --in_process true")
    assert str(truncated) in line and "truncated or corrupt" in line

    line = fails(capsys, f"encode --corpus {corpus} --model bm25 --output {tmp_path / 'h'} --encoding.batch_size 0")
    assert "batch_size must be >= 1" in line


def test_bad_judgements_and_paths_that_are_directories(capsys, tmp_path, bm25_output):
    run = tmp_path / "r.run"
    run.write_text("q1 Q0 d01 1 2.5 x\n")
    qrels = tmp_path / "q.qrels"
    qrels.write_text("q1 0 d01 1\nq1 0 d02 inf\n")
    line = fails(capsys, f"evaluate --run {run} --qrels {qrels}")
    assert f"{qrels}:2: relevance 'inf' is not a whole number" in line
    assert "run=" in fails(capsys, f"evaluate --run {tmp_path} --qrels {qrels}")
    # Before: found only when writing the run, after every query had been searched.
    line = fails(capsys, f"search --index {bm25_output / 'index'} --queries x.jsonl --output {tmp_path}")
    assert f"output={str(tmp_path)!r} is a directory" in line


def test_settings_that_do_not_apply_fail_early(capsys, tmp_path, sample_collection, tiny_bert_dir, bm25_output):
    line = fails(
        capsys,
        f"search --index {bm25_output / 'index'} --queries {sample_collection} --split test "
        f"--output {tmp_path / 'x.run'} --in_process true "
        "--serving.shard_options '{\"nprobe\": 8}'",
    )
    assert "shard_options ['nprobe'] do not apply to a sparse index" in line
    line = fails(
        capsys,
        f"index --corpus {sample_collection} --output {tmp_path / 'dense'} --model {tiny_bert_dir} "
        "--factory IVFbogus --in_process true",
    )
    assert "factory='IVFbogus' is not a Faiss index factory string" in line
    line = fails(
        capsys,
        f"index --corpus {sample_collection} --output {tmp_path / 'bm25'} --model bm25 --factory HNSW32 "
        "--in_process true",
    )
    assert "factory='HNSW32' does not apply to a sparse model: it takes inverted (or the default Flat)" in line
    assert not (tmp_path / "bm25" / "index").exists()  # nothing built; the encoding is kept for the next run
    assert (tmp_path / "bm25" / "embeddings" / "manifest.json").exists()


def test_unknown_ids_and_changed_embeddings(capsys, tmp_path, sample_collection, tiny_bert_dir, bm25_output):
    run = tmp_path / "first.run"
    run.write_text("q1 Q0 d01 1 2.0 x\nq1 Q0 nope 2 1.0 x\n")
    line = fails(
        capsys,
        f"re_rank --model {tiny_bert_dir} --kind bi --run {run} --output {tmp_path / 'o'} "
        f"--queries {sample_collection} --split test --corpus {sample_collection} --in_process true",
    )
    assert "1 candidate document(s) not in the corpus, e.g. ['nope']" in line

    shard = sorted((bm25_output / "embeddings" / "embeddings").glob("part-*.parquet"))[0]
    original = shard.read_bytes()
    shard.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    try:
        command = f"index --corpus {sample_collection} --output {bm25_output} --model bm25 --in_process true"
        line = fails(capsys, command)
        assert f"{shard}: differs from the checksum" in line
    finally:
        shard.write_bytes(original)


def test_full_disk_and_ctrl_c(capsys, tmp_path, monkeypatch):
    import rayir.atomic
    import rayir.comparison

    run, qrels = tmp_path / "r.run", tmp_path / "q.qrels"
    run.write_text("q1 Q0 d01 1 2.5 x\n")
    qrels.write_text("q1 0 d01 1\n")

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "m.json"))

    monkeypatch.setattr(rayir.atomic, "write_json", no_space)
    line = fails(capsys, f"evaluate --run {run} --qrels {qrels} --output {tmp_path / 'm.json'}")
    assert "No space left on device" in line and "m.json" in line

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rayir.comparison, "evaluate", interrupted)
    assert fails(capsys, f"evaluate --run {run} --qrels {qrels}", status=130).startswith("interrupted")


def test_help_is_plain_text_under_the_rayir_name(capsys):
    """``--help`` shows the docstrings without reStructuredText markup, and ``python -m rayir`` is ``rayir``."""
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    shown = capsys.readouterr().out
    assert shown.startswith("usage: rayir ") and "(<output>/index)" in shown
    assert "``" not in shown and ":mod:" not in shown


def test_a_config_before_the_stage_word_is_refused(capsys):
    """``rayir --config x.yaml index`` read the stage's keys at the top level and ran on nulls."""
    line = fails(capsys, "--config configs/index/sample-bm25.yaml index --print_config")
    assert "--config goes after the stage word" in line
